"""Targets from the customer tables (created here with the columns the IVR's tables have)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import Boolean, Column, Date, Integer, MetaData, Numeric, String, Table, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.customers.targets import SqlCustomerSource, billing_month_of
from ctiserver.outbound.contacts import targets_to_contacts

md = MetaData()
customers = Table("customers", md, Column("account", String(20), primary_key=True),
                  Column("name", String(100)), Column("tier", String(20)), Column("area", String(60)),
                  Column("category", String(30)), Column("arrears", Numeric(12, 2)), Column("due_date", Date),
                  Column("important", Boolean))
phones = Table("customer_phones", md, Column("id", Integer, primary_key=True), Column("phone", String(20)),
               Column("account", String(20)))


async def test_targets_by_area_and_by_arrears(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(md.drop_all)
        await conn.run_sync(md.create_all)
        await conn.execute(insert(customers), [
            {"account": "A1", "name": "张三", "tier": "vip", "area": "城东", "category": "residential",
             "arrears": Decimal("120.50"), "due_date": date(2026, 11, 15), "important": True},
            {"account": "A2", "name": "李四厂", "tier": "normal", "area": "城东", "category": "business",
             "arrears": Decimal("0"), "due_date": None, "important": False},
            {"account": "A3", "name": "王五", "tier": "blacklist", "area": "城西", "category": "residential",
             "arrears": Decimal("50"), "due_date": date(2026, 11, 15), "important": False},
            {"account": "A4", "name": "赵六", "tier": "normal", "area": "城西", "category": "residential",
             "arrears": Decimal("5"), "due_date": date(2026, 11, 15), "important": False},
        ])
        await conn.execute(insert(phones), [
            {"phone": "13800000001", "account": "A1"}, {"phone": "010-62345678", "account": "A1"},
            {"phone": "13800000002", "account": "A2"}, {"phone": "13800000003", "account": "A3"},
            {"phone": "13800000004", "account": "A4"}])
    src = SqlCustomerSource(engine)
    east = await src.customers_in_areas(["城东"])
    assert [(t.account, t.phone) for t in east] == [("A1", "010-62345678"), ("A1", "13800000001"),
                                                    ("A2", "13800000002")]
    report = targets_to_contacts(east, "outage_notice")
    assert [(c.number, c.priority) for c in report.accepted] == [("01062345678", 10), ("13800000001", 10),
                                                                 ("13800000002", 0)]
    owing = await src.customers_in_arrears(Decimal("10"), date(2026, 11, 23))
    assert sorted(t.account for t in owing) == ["A1", "A1", "A3"]  # one target per phone
    report = targets_to_contacts(owing, "arrears_reminder")
    assert {c.account for c in report.accepted} == {"A1"}
    assert [p.reason for p in report.excluded] == ["13800000003 belongs to a blacklisted customer"]
    assert report.accepted[0].variables["billing_month"] == "2026-10"
    assert await src.customers_in_arrears(Decimal("10"), date(2026, 11, 15)) == []  # not yet overdue
    async with engine.begin() as conn:
        await conn.run_sync(md.drop_all)


def test_billing_month() -> None:
    assert billing_month_of(date(2026, 1, 10)) == "2025-12"
    assert billing_month_of(None) == ""
