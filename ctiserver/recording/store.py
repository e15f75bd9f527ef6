"""The recordings index and its access log (SQL; SQLite or PostgreSQL, same statements).

A row per recorded agent leg; `spool` (the spool base name) is unique, so a finalizer that runs twice
over the same files (a restart, two sweeps) indexes it once. Search joins what QC asks by: the
disposition and work order of the call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Float, Index, Integer, String, Table, and_, delete, exists, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..events import Kind
from ..store.schema import IdType, events, metadata

recordings = Table(
    "recordings",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("spool", String(120), nullable=False, unique=True),
    Column("call_id", String(80), nullable=False),
    Column("uniqueid", String(40), nullable=False),
    Column("agent_id", String(40), nullable=False),
    Column("queue", String(40)),
    Column("number", String(32)),
    Column("customer", String(40)),
    Column("start_ts", Float, nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("codec", String(20), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("path", String(300), nullable=False),  # relative to the archive root
    Column("created_ts", Float, nullable=False),
    Index("ix_recordings_start", "start_ts"),
    Index("ix_recordings_call", "call_id"),
    Index("ix_recordings_agent_start", "agent_id", "start_ts"),
)

recording_access = Table(
    "recording_access",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("recording_id", Integer, nullable=False),
    Column("user", String(20), nullable=False),
    Column("action", String(20), nullable=False),  # play | download
    Column("range", String(60)),
    Index("ix_recording_access_rec", "recording_id"),
)

COLUMNS = ("id", "call_id", "agent_id", "queue", "number", "customer", "start_ts", "duration_s", "codec", "size",
           "sha256")


@dataclass(frozen=True)
class Filters:
    """What a search narrows by (all optional; times are epoch seconds)."""

    start: float | None = None
    end: float | None = None
    agent: str | None = None
    queue: str | None = None
    customer: str | None = None
    number: str | None = None
    disposition: str | None = None
    workorder: int | None = None
    min_s: float | None = None
    max_s: float | None = None
    call_id: str | None = None


async def insert_recording(engine: AsyncEngine, row: dict[str, Any]) -> int | None:
    """The new row's id, or None when this spool name is indexed already."""
    try:
        async with engine.begin() as conn:
            res = await conn.execute(insert(recordings).values(**row))
            pk = res.inserted_primary_key
            return int(pk[0]) if pk else None
    except IntegrityError:
        return None


async def is_indexed(engine: AsyncEngine, spool: str) -> bool:
    async with engine.connect() as conn:
        return (await conn.execute(select(recordings.c.id).where(recordings.c.spool == spool))).first() is not None


_FACT_KINDS = (Kind.CALL_NEW, Kind.ACD_ENQUEUE, Kind.ACD_ANSWER, Kind.ACD_OFFER, Kind.OUT_ATTEMPT)  # what it reads


async def call_facts(conn: AsyncConnection, call_id: str, agent_id: str) -> dict[str, str | None]:
    """Queue and caller number of `agent_id`'s part in `call_id`, from the event log."""
    e = events
    rows = (await conn.execute(
        select(e.c.kind, e.c.agent_id, e.c.queue, e.c.data).where(e.c.call_id == call_id, e.c.kind.in_(_FACT_KINDS))
        .order_by(e.c.id)
    )).all()
    queue = number = dialled = None
    for kind, agent, q, data in rows:
        data = data or {}
        if kind == Kind.CALL_NEW and number is None:
            number = data.get("caller_num") or None
        elif kind == Kind.ACD_ENQUEUE and data.get("caller"):
            number = number or data.get("caller")
        elif kind in (Kind.ACD_ANSWER, Kind.ACD_OFFER) and agent == agent_id and q:
            queue = q
        elif kind in (Kind.ACD_ENQUEUE,) and q and queue is None:
            queue = q
        elif kind == Kind.OUT_ATTEMPT:  # a call we placed (campaign, ACD callback): the customer we dialled
            dialled = dialled or data.get("number") or None
            queue = queue or q
    return {"queue": queue, "number": dialled or number}


def _where(f: Filters) -> list[Any]:
    from ..web.tables import dispositions, work_orders

    r = recordings.c
    cond: list[Any] = []
    if f.start is not None:
        cond.append(r.start_ts >= f.start)
    if f.end is not None:
        cond.append(r.start_ts < f.end)
    for col, value in ((r.agent_id, f.agent), (r.queue, f.queue), (r.customer, f.customer), (r.call_id, f.call_id)):
        if value:
            cond.append(col == value)
    if f.number:
        cond.append(r.number.contains(f.number, autoescape=True))
    if f.min_s is not None:
        cond.append(r.duration_s >= f.min_s)
    if f.max_s is not None:
        cond.append(r.duration_s <= f.max_s)
    if f.disposition:
        d = dispositions.c
        cond.append(exists().where(and_(d.call_id == r.call_id, d.category == f.disposition)))
    if f.workorder is not None:
        w = work_orders.c
        cond.append(exists().where(and_(w.call_id == r.call_id, w.id == f.workorder)))
    return cond


async def search(engine: AsyncEngine, f: Filters, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    cols = [recordings.c[name] for name in COLUMNS]
    q = select(*cols).where(*_where(f)).order_by(recordings.c.start_ts.desc(), recordings.c.id.desc())
    async with engine.connect() as conn:
        rows = (await conn.execute(q.limit(limit).offset(offset))).mappings().all()
    return [dict(row) for row in rows]


async def get(engine: AsyncEngine, rec_id: int) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(recordings).where(recordings.c.id == rec_id))).mappings().first()
    return dict(row) if row else None


async def log_access(engine: AsyncEngine, rec_id: int, user: str, action: str, rng: str | None, ts: float) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(recording_access).values(ts=ts, recording_id=rec_id, user=user, action=action,
                                                           range=(rng or None) and rng[:60]))


async def access_log(engine: AsyncEngine, rec_id: int) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(recording_access).where(recording_access.c.recording_id == rec_id)
                                   .order_by(recording_access.c.id))).mappings().all()
    return [dict(row) for row in rows]


async def older_than(engine: AsyncEngine, before: float) -> list[dict[str, Any]]:
    """Recordings that started before `before`, with the disposition categories of their call."""
    from ..web.tables import dispositions

    async with engine.connect() as conn:
        rows = (await conn.execute(select(recordings.c.id, recordings.c.call_id, recordings.c.start_ts,
                                          recordings.c.path).where(recordings.c.start_ts < before))).mappings().all()
        ids = sorted({r["call_id"] for r in rows})
        cats: dict[str, set[str]] = {}
        for i in range(0, len(ids), 500):
            for call_id, category in (await conn.execute(
                    select(dispositions.c.call_id, dispositions.c.category)
                    .where(dispositions.c.call_id.in_(ids[i:i + 500])))).all():
                cats.setdefault(call_id, set()).add(category)
    return [{**dict(r), "categories": sorted(cats.get(r["call_id"], set()))} for r in rows]


async def delete_rows(engine: AsyncEngine, ids: list[int]) -> None:
    async with engine.begin() as conn:
        for i in range(0, len(ids), 500):
            await conn.execute(delete(recordings).where(recordings.c.id.in_(ids[i:i + 500])))
