"""Repair orders in the database. Each order has a random `token`: the crew's page is /crew/<token>
(sent to the crew's phone), so a crew acts on its own orders without a desktop login."""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from sqlalchemy import Column, Float, Index, Integer, String, Table, and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ..store.schema import IdType, metadata
from .engine import OPEN, Order

repair_orders = Table(
    "repair_orders",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("token", String(32), nullable=False, unique=True),
    Column("outage_id", Integer),
    Column("workorder_id", Integer),
    Column("crew", String(20), nullable=False),
    Column("area", String(60), nullable=False),
    Column("area_class", String(10), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("dispatched_ts", Float, nullable=False),
    Column("ack_ts", Float),
    Column("arrived_ts", Float),
    Column("reported_ts", Float),
    Column("restored_ts", Float),
    Column("expected_ts", Float),
    Column("cause", String(200), nullable=False, server_default=""),
    Column("location", String(200), nullable=False, server_default=""),
    Column("alerted", String(200), nullable=False, server_default=""),
    Column("dispatched_by", String(40), nullable=False, server_default=""),
    Column("updated_ts", Float, nullable=False),
    Index("ix_repair_orders_stage", "stage"),
    Index("ix_repair_orders_outage", "outage_id"),
)
TABLES = (repair_orders,)


class UnknownOrder(LookupError):
    pass


class ConcurrentChange(RuntimeError):
    pass


def _order(r: Any) -> Order:
    return Order(id=r.id, crew=r.crew, area=r.area, area_class=r.area_class, stage=r.stage,
                 dispatched_ts=r.dispatched_ts, ack_ts=r.ack_ts, arrived_ts=r.arrived_ts, reported_ts=r.reported_ts,
                 restored_ts=r.restored_ts, expected_ts=r.expected_ts, cause=r.cause, location=r.location,
                 alerted=frozenset(a for a in r.alerted.split(",") if a))


class RepairStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create_tables(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda sync: metadata.create_all(sync, tables=list(TABLES)))

    async def add(self, o: Order, *, outage_id: int | None, workorder_id: int | None, user: str) -> tuple[Order, str]:
        token = secrets.token_urlsafe(12)
        async with self.engine.begin() as conn:
            res = await conn.execute(insert(repair_orders).values(
                token=token, outage_id=outage_id, workorder_id=workorder_id, crew=o.crew, area=o.area,
                area_class=o.area_class, stage=o.stage, dispatched_ts=o.dispatched_ts, alerted="",
                dispatched_by=user, updated_ts=o.dispatched_ts))
            key = res.inserted_primary_key
            assert key is not None
        return replace(o, id=int(key[0])), token

    async def get(self, order_id: int) -> tuple[Order, dict[str, Any]]:
        async with self.engine.connect() as conn:
            r = (await conn.execute(select(repair_orders).where(repair_orders.c.id == order_id))).first()
        if r is None:
            raise UnknownOrder(f"no repair order {order_id}")
        return _order(r), dict(r._mapping)

    async def by_token(self, token: str) -> tuple[Order, dict[str, Any]]:
        async with self.engine.connect() as conn:
            r = (await conn.execute(select(repair_orders).where(repair_orders.c.token == token))).first()
        if r is None:
            raise UnknownOrder("no such repair order")
        return _order(r), dict(r._mapping)

    async def save(self, before: Order, after: Order, now: float) -> None:
        """Write `after` if the row is still at `before`'s stage and alerts (else ConcurrentChange)."""
        c = repair_orders.c
        async with self.engine.begin() as conn:
            res = await conn.execute(update(repair_orders).where(and_(
                c.id == before.id, c.stage == before.stage, c.alerted == ",".join(sorted(before.alerted)))).values(
                stage=after.stage, ack_ts=after.ack_ts, arrived_ts=after.arrived_ts, reported_ts=after.reported_ts,
                restored_ts=after.restored_ts, expected_ts=after.expected_ts, cause=after.cause,
                location=after.location, alerted=",".join(sorted(after.alerted)), updated_ts=now))
        if not res.rowcount:
            raise ConcurrentChange(f"repair order {before.id} changed meanwhile; try again")

    async def open_orders(self) -> list[Order]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(repair_orders).where(repair_orders.c.stage.in_(sorted(OPEN))))
            return [_order(r) for r in rows]

    async def board(self, since: float, limit: int = 500) -> list[dict[str, Any]]:
        """Open orders and those closed since `since`, newest first (the dispatch board)."""
        c = repair_orders.c
        q = (select(repair_orders).where((c.stage.in_(sorted(OPEN))) | (c.updated_ts >= since))
             .order_by(c.dispatched_ts.desc()).limit(limit))
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(q)]

    async def all_between(self, since: float, until: float) -> list[tuple[Order, dict[str, Any]]]:
        c = repair_orders.c
        q = select(repair_orders).where(and_(c.dispatched_ts >= since, c.dispatched_ts < until))
        async with self.engine.connect() as conn:
            return [(_order(r), dict(r._mapping)) for r in await conn.execute(q)]
