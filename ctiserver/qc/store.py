"""QC inspection tasks (SQL): the month's sample, scores, acknowledgements, appeals and decisions; the
calls a sample is drawn from (recorded calls with their ratings, dispositions and transfers)."""

from __future__ import annotations

from collections.abc import Iterable
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
    Text,
    UniqueConstraint,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..events import Kind
from ..recording.store import recordings
from ..store.schema import IdType, events, metadata
from ..web.tables import dispositions
from .sampling import CallFacts, Pick

qc_tasks = Table(
    "qc_tasks",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("month", String(7), nullable=False),
    Column("agent_id", String(40), nullable=False),
    Column("call_id", String(80), nullable=False),
    Column("recording_id", Integer),
    Column("queue", String(40)),
    Column("reason", String(20), nullable=False),
    Column("due_ts", Float, nullable=False),
    Column("status", String(16), nullable=False),  # open | scored | acknowledged | appealed | decided
    Column("reviewer", String(20)),
    Column("score", Float),
    Column("passed", Boolean),
    Column("fatal", Boolean),
    Column("items", JSON),  # {"marks": {...}, "deductions": {...}, "fatal": [...], "sections": {...}}
    Column("comments", JSON),  # [{"at_s": 12.5, "text": "...", "by": "3001"}]
    Column("scored_ts", Float),
    Column("ack_ts", Float),
    Column("appeal_text", Text),
    Column("appeal_ts", Float),
    Column("decision", String(16)),  # upheld | revised
    Column("decision_note", Text),
    Column("decided_by", String(20)),
    Column("decided_ts", Float),
    Column("created_ts", Float, nullable=False),
    UniqueConstraint("month", "agent_id", "call_id", name="uq_qc_tasks_call"),
    Index("ix_qc_tasks_month_agent", "month", "agent_id"),
)


async def month_calls(engine: AsyncEngine, start: float, end: float) -> list[CallFacts]:
    """Recorded agent calls of [start, end) with what sampling asks: rating, dispositions, transfer."""
    r = recordings.c
    async with engine.connect() as conn:
        rows = (await conn.execute(select(r.id, r.call_id, r.agent_id, r.queue, r.start_ts, r.duration_s)
                                   .where(r.start_ts >= start, r.start_ts < end))).all()
        ids = sorted({row.call_id for row in rows})
        ratings: dict[str, int] = {}
        transferred: set[str] = set()
        cats: dict[str, set[str]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for call_id, kind, data in (await conn.execute(
                    select(events.c.call_id, events.c.kind, events.c.data).where(
                        events.c.call_id.in_(chunk), events.c.kind.in_([Kind.SURVEY_RATING, Kind.ACD_TRANSFER])))):
                if kind == Kind.SURVEY_RATING and isinstance((data or {}).get("rating"), int):
                    ratings[call_id] = min(ratings.get(call_id, 5), data["rating"])
                elif kind == Kind.ACD_TRANSFER:
                    transferred.add(call_id)
            for call_id, category in await conn.execute(select(dispositions.c.call_id, dispositions.c.category)
                                                        .where(dispositions.c.call_id.in_(chunk))):
                cats.setdefault(call_id, set()).add(category)
    return [CallFacts(row.call_id, row.agent_id, row.start_ts, row.duration_s, row.queue, row.id,
                      ratings.get(row.call_id), frozenset(cats.get(row.call_id, set())), row.call_id in transferred)
            for row in rows]


async def create_tasks(engine: AsyncEngine, month: str, picks: Iterable[Pick], now: float) -> int:
    """Tasks for the picks not already in the month (running the sample again adds none twice)."""
    n = 0
    for p in picks:
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(qc_tasks).values(
                    month=month, agent_id=p.call.agent_id, call_id=p.call.call_id, recording_id=p.call.recording_id,
                    queue=p.call.queue, reason=p.reason, due_ts=p.due_ts, status="open", comments=[],
                    created_ts=now))
            n += 1
        except IntegrityError:
            pass
    return n


async def tasks(engine: AsyncEngine, *, month: str | None = None, agent: str | None = None,
                status: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    t = qc_tasks.c
    cond = [c == v for c, v in ((t.month, month), (t.agent_id, agent), (t.status, status)) if v]
    async with engine.connect() as conn:
        rows = (await conn.execute(select(qc_tasks).where(*cond).order_by(t.due_ts, t.id).limit(limit))).mappings()
        return [dict(r) for r in rows]


async def task(engine: AsyncEngine, task_id: int) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(qc_tasks).where(qc_tasks.c.id == task_id))).mappings().first()
    return dict(row) if row else None


async def change(engine: AsyncEngine, task_id: int, expect: tuple[str, ...], **values: Any) -> bool:
    """Update the task if its status is one of `expect` (a compare-and-set: two clicks, one change)."""
    async with engine.begin() as conn:
        res = await conn.execute(update(qc_tasks).where(qc_tasks.c.id == task_id, qc_tasks.c.status.in_(expect))
                                 .values(**values))
        return bool(res.rowcount)


async def month_scores(engine: AsyncEngine, month: str) -> list[dict[str, Any]]:
    """The scored tasks of a month (the final score: a revised decision's, else the reviewer's)."""
    t = qc_tasks.c
    async with engine.connect() as conn:
        rows = (await conn.execute(select(t.agent_id, t.queue, t.score, t.passed, t.fatal)
                                   .where(t.month == month, t.score.is_not(None)))).mappings()
        return [dict(r) for r in rows]
