"""Outages in the database: the outage itself, its audit trail, the fault calls attached to it, and the
IVR's read rows kept in step in the same transaction (so the next call's lookup sees the change).

The IVR reads the `outages` table (ctiserver/customers/data.py: one row per area, with kind, reason,
start, end and expected restoration). An entered outage writes one such row per affected area (its
`outage_id` says whose), rewritten on every update and ended (end_ts) when the outage closes. We use
lightweight `table()` constructs for the customer tables, as outbound's targets do.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    and_,
    column,
    delete,
    func,
    insert,
    or_,
    select,
    table,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..store.schema import IdType, metadata
from .model import Customer, Outage, OutageIn, Scope

outage_records = Table(
    "outage_records",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("kind", String(12), nullable=False),
    Column("cause", String(200), nullable=False),
    Column("scope", JSON, nullable=False),
    Column("start_ts", Float, nullable=False),
    Column("expected_restore_ts", Float),
    Column("end_ts", Float),
    Column("status", String(8), nullable=False),  # open | closed
    Column("created_by", String(40), nullable=False),
    Column("created_ts", Float, nullable=False),
    Column("updated_ts", Float, nullable=False),
    Index("ix_outage_records_status", "status", "start_ts"),
)

outage_audit = Table(
    "outage_audit",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("outage_id", Integer, nullable=False),
    Column("ts", Float, nullable=False),
    Column("user", String(40), nullable=False),
    Column("action", String(12), nullable=False),  # add | update | close
    Column("data", JSON, nullable=False),
    Index("ix_outage_audit_outage", "outage_id"),
)

outage_reports = Table(
    "outage_reports",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("outage_id", Integer, nullable=False),
    Column("ts", Float, nullable=False),
    Column("call_id", String(80), nullable=False, server_default=""),
    Column("account", String(20), nullable=False, server_default=""),
    Column("number", String(32), nullable=False, server_default=""),
    Column("workorder_id", Integer),
    Index("ix_outage_reports_outage", "outage_id"),
)
TABLES = (outage_records, outage_audit, outage_reports)

# The IVR's read rows (defined in ctiserver/customers/data.py) and the customer tables.
ivr_outages = table("outages", column("id", Integer), column("area", String), column("kind", String),
                    column("reason", String), column("start_ts", Float), column("end_ts", Float),
                    column("expected_restore_ts", Float), column("outage_id", Integer))
customers = table("customers", column("account", String), column("name", String), column("area", String),
                  column("important", Boolean))
phones = table("customer_phones", column("phone", String), column("account", String))


class UnknownOutage(LookupError):
    pass


class OutageClosed(ValueError):
    pass


def _scope(raw: Any) -> Scope:
    return Scope.model_validate(json.loads(raw) if isinstance(raw, str) else raw)


def _outage(r: Any, reports: int = 0) -> Outage:
    return Outage(id=r.id, kind=r.kind, cause=r.cause, scope=_scope(r.scope), start_ts=r.start_ts,
                  expected_restore_ts=r.expected_restore_ts, end_ts=r.end_ts, status=r.status,
                  created_by=r.created_by, created_ts=r.created_ts, updated_ts=r.updated_ts, reports=reports)


class OutageStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create_tables(self) -> None:
        """For tests without Alembic; the server migrates."""
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda sync: metadata.create_all(sync, tables=list(TABLES)))

    async def _areas(self, conn: AsyncConnection, scope: Scope) -> list[str]:
        """The areas the IVR is told about: the scope's areas, and those of its listed accounts."""
        areas = list(dict.fromkeys(scope.areas))
        if scope.accounts:
            for i in range(0, len(scope.accounts), 500):
                rows = await conn.execute(select(customers.c.area).distinct()
                                          .where(customers.c.account.in_(scope.accounts[i:i + 500])))
                areas += [r.area for r in rows if r.area and r.area not in areas]
        return areas

    async def _sync_ivr(self, conn: AsyncConnection, outage_id: int, o: OutageIn, end_ts: float | None) -> None:
        await conn.execute(delete(ivr_outages).where(ivr_outages.c.outage_id == outage_id))
        areas = await self._areas(conn, o.scope)
        if areas:
            await conn.execute(insert(ivr_outages), [
                {"area": a, "kind": o.kind, "reason": o.cause, "start_ts": o.start_ts, "end_ts": end_ts,
                 "expected_restore_ts": o.expected_restore_ts, "outage_id": outage_id} for a in areas])

    async def add(self, o: OutageIn, user: str, now: float) -> Outage:
        async with self.engine.begin() as conn:
            res = await conn.execute(insert(outage_records).values(
                kind=o.kind, cause=o.cause, scope=o.scope.model_dump(), start_ts=o.start_ts,
                expected_restore_ts=o.expected_restore_ts, end_ts=None, status="open", created_by=user,
                created_ts=now, updated_ts=now))
            key = res.inserted_primary_key
            assert key is not None
            oid = int(key[0])
            await self._sync_ivr(conn, oid, o, None)
            await conn.execute(insert(outage_audit).values(outage_id=oid, ts=now, user=user, action="add",
                                                           data=o.model_dump()))
        return await self.get(oid)

    async def get(self, oid: int) -> Outage:
        async with self.engine.connect() as conn:
            r = (await conn.execute(select(outage_records).where(outage_records.c.id == oid))).first()
            if r is None:
                raise UnknownOutage(f"no outage {oid}")
            n = (await conn.execute(select(func.count()).select_from(outage_reports)
                                    .where(outage_reports.c.outage_id == oid))).scalar() or 0
        return _outage(r, int(n))

    async def update(self, oid: int, o: OutageIn, user: str, now: float, changed: dict[str, Any]) -> Outage:
        async with self.engine.begin() as conn:
            res = await conn.execute(update(outage_records).where(and_(
                outage_records.c.id == oid, outage_records.c.status == "open")).values(
                cause=o.cause, scope=o.scope.model_dump(), start_ts=o.start_ts,
                expected_restore_ts=o.expected_restore_ts, updated_ts=now))
            if not res.rowcount:
                await self._missing_or_closed(conn, oid)
            await self._sync_ivr(conn, oid, o, None)
            await conn.execute(insert(outage_audit).values(outage_id=oid, ts=now, user=user, action="update",
                                                           data=changed))
        return await self.get(oid)

    async def close(self, oid: int, user: str, now: float, end_ts: float) -> Outage:
        async with self.engine.begin() as conn:
            res = await conn.execute(update(outage_records).where(and_(
                outage_records.c.id == oid, outage_records.c.status == "open")).values(
                status="closed", end_ts=end_ts, updated_ts=now))
            if not res.rowcount:
                await self._missing_or_closed(conn, oid)
            await conn.execute(update(ivr_outages).where(ivr_outages.c.outage_id == oid).values(end_ts=end_ts))
            await conn.execute(insert(outage_audit).values(outage_id=oid, ts=now, user=user, action="close",
                                                           data={"end_ts": end_ts}))
        return await self.get(oid)

    async def _missing_or_closed(self, conn: AsyncConnection, oid: int) -> None:
        status = (await conn.execute(select(outage_records.c.status)
                                     .where(outage_records.c.id == oid))).scalar()
        if status is None:
            raise UnknownOutage(f"no outage {oid}")
        raise OutageClosed(f"outage {oid} is closed: it cannot change")

    async def listing(self, *, status: str | None = None, limit: int = 200) -> list[Outage]:
        q = select(outage_records).order_by(outage_records.c.start_ts.desc()).limit(limit)
        if status is not None:
            q = q.where(outage_records.c.status == status)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
            grouped = await conn.execute(select(outage_reports.c.outage_id, func.count())
                                         .group_by(outage_reports.c.outage_id))
            counts = {int(k): int(v) for k, v in grouped.all()}
        return [_outage(r, int(counts.get(r.id, 0))) for r in rows]

    async def audit(self, oid: int) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(outage_audit).where(outage_audit.c.outage_id == oid)
                                      .order_by(outage_audit.c.id))
            return [{"ts": r.ts, "user": r.user, "action": r.action, "data": r.data} for r in rows]

    async def open_for(self, *, area: str = "", account: str = "", now: float) -> Outage | None:
        """The open outage under way that covers this customer (by area or listed account), else None;
        the one started last when several do."""
        c = outage_records.c
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(outage_records).where(and_(
                c.status == "open", c.start_ts <= now, or_(c.end_ts.is_(None), c.end_ts > now)))
                .order_by(c.start_ts.desc()))).all()
        for r in rows:
            o = _outage(r)
            if o.scope.covers(area=area, account=account):
                return await self.get(o.id)
        return None

    async def attach_report(self, oid: int, now: float, *, call_id: str = "", account: str = "",
                            number: str = "", workorder_id: int | None = None) -> int:
        """A fault call about this outage; the count of reports attached to it now."""
        async with self.engine.begin() as conn:
            await conn.execute(insert(outage_reports).values(outage_id=oid, ts=now, call_id=call_id,
                                                             account=account, number=number,
                                                             workorder_id=workorder_id))
            n = (await conn.execute(select(func.count()).select_from(outage_reports)
                                    .where(outage_reports.c.outage_id == oid))).scalar()
        return int(n or 0)

    async def attach_workorder(self, oid: int, now: float, workorder_id: int, *, call_id: str = "",
                               account: str = "", number: str = "") -> tuple[int, bool]:
        """A work order (from the desktop) about this outage: the report of its call gets the order (the IVR
        attached the call already), else a new report. (The count of reports now, whether anything changed:
        an order attached before is not counted twice.)"""
        r = outage_reports.c
        async with self.engine.begin() as conn:
            status = (await conn.execute(select(outage_records.c.status).where(outage_records.c.id == oid))).scalar()
            if status is None:
                raise UnknownOutage(f"no outage {oid}")
            if status != "open":
                raise OutageClosed(f"outage {oid} is closed: nothing more attaches to it")
            changed = True
            if (await conn.execute(select(r.id).where(and_(r.outage_id == oid, r.workorder_id == workorder_id)))
                    ).first() is not None:
                changed = False
            elif call_id and (await conn.execute(update(outage_reports).where(and_(
                    r.outage_id == oid, r.call_id == call_id, r.workorder_id.is_(None))).values(
                    workorder_id=workorder_id))).rowcount:
                pass
            else:
                await conn.execute(insert(outage_reports).values(outage_id=oid, ts=now, call_id=call_id,
                                                                 account=account, number=number,
                                                                 workorder_id=workorder_id))
            n = (await conn.execute(select(func.count()).select_from(outage_reports)
                                    .where(r.outage_id == oid))).scalar()
        return int(n or 0), changed

    async def reporters(self, oid: int) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(outage_reports).where(outage_reports.c.outage_id == oid))
            return [dict(r._mapping) for r in rows]

    async def customers_in(self, scope: Scope) -> list[Customer]:
        """Every customer phone the scope covers (areas and listed accounts; feeders and transformer codes
        need those columns in the customer data, which it does not carry yet)."""
        conds = []
        if scope.areas:
            conds.append(customers.c.area.in_(scope.areas))
        if scope.accounts:
            conds.append(customers.c.account.in_(scope.accounts))
        if not conds:
            return []
        q = (select(customers.c.account, customers.c.name, customers.c.area, customers.c.important, phones.c.phone)
             .join(phones, phones.c.account == customers.c.account).where(or_(*conds)))
        async with self.engine.connect() as conn:
            return [Customer(r.account, r.name or "", r.phone, r.area or "", bool(r.important))
                    for r in await conn.execute(q)]


def public(o: Outage) -> dict[str, Any]:
    """An outage as the API and the CLI show it."""
    return {"id": o.id, "kind": o.kind, "cause": o.cause, "scope": o.scope.model_dump(), "start_ts": o.start_ts,
            "expected_restore_ts": o.expected_restore_ts, "end_ts": o.end_ts, "status": o.status,
            "created_by": o.created_by, "created_ts": o.created_ts, "updated_ts": o.updated_ts,
            "reports": o.reports}
