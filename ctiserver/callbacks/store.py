"""ACD callbacks in the database (SQLite or PostgreSQL): one row per callback, through its whole life.

Durability is the point: the ACD engine lives in memory, so a kept place or a
scheduled callback must survive a CTI restart. A partial unique index allows one
open callback (pending, queued or dialing) per phone number, so a customer is
never called back twice for the same wait, even by two CTI processes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Column, Float, Index, Integer, String, Table, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..outbound.model import parse_ranges
from ..store.engine import reading
from ..store.schema import IdType, metadata
from .rules import FINAL, OPEN, CallbackStatus, CallbackView

_OPEN_SQL = "status IN ('pending', 'queued', 'dialing')"

callbacks = Table(
    "acd_callbacks",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("origin_call", String(80), nullable=False),  # the inbound call that asked for it
    Column("number", String(20), nullable=False),
    Column("skill", String(40), nullable=False),
    Column("tier", String(20), nullable=False),
    Column("reason", String(24), nullable=False),  # abandon | in_place | full | closed | max_wait ...
    Column("customer", JSON),
    Column("windows", String(200), nullable=False, default=""),  # its own calling windows ("" = the policy's)
    Column("recording", String(200), nullable=False, default=""),  # a voicemail the agent hears first
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),  # customer dialled this many times
    Column("created_ts", Float, nullable=False),
    Column("place_ts", Float, nullable=False),  # its place in the queue (a kept place is kept)
    Column("due_ts", Float, nullable=False),
    Column("next_ts", Float, nullable=False),
    Column("engine_call", String(80)),  # its id in the ACD while queued/dialing
    Column("channel_id", String(80)),  # the agent leg of the current/last try
    Column("agent_id", String(40)),
    Column("last_outcome", String(16)),
    Column("updated_ts", Float, nullable=False),
    Index("ix_acd_callbacks_status", "status", "next_ts"),
    Index("ix_acd_callbacks_origin", "origin_call"),
    Index("ux_acd_callbacks_open_number", "number", unique=True,
          sqlite_where=text(_OPEN_SQL), postgresql_where=text(_OPEN_SQL)),
)

TABLES = (callbacks,)


@dataclass(frozen=True, slots=True)
class CallbackRow:
    id: int
    origin_call: str
    number: str
    skill: str
    tier: str
    reason: str
    customer: dict[str, Any] | None
    windows: str
    recording: str
    status: str
    attempts: int
    created_ts: float
    place_ts: float
    due_ts: float
    next_ts: float
    engine_call: str | None
    channel_id: str | None
    agent_id: str | None
    last_outcome: str | None

    def view(self) -> CallbackView:
        return CallbackView(self.id, self.number, self.skill, self.tier, self.reason, self.status, self.attempts,
                            self.next_ts, self.due_ts, self.place_ts, parse_ranges(self.windows))

    def public(self) -> dict[str, Any]:
        """For the API: everything but the customer record."""
        return {k: getattr(self, k) for k in self.__slots__ if k != "customer"}


def _row(r: Any) -> CallbackRow:
    return CallbackRow(int(r.id), r.origin_call, r.number, r.skill, r.tier, r.reason, r.customer, r.windows or "",
                       r.recording or "", r.status,
                       int(r.attempts), float(r.created_ts), float(r.place_ts), float(r.due_ts), float(r.next_ts),
                       r.engine_call, r.channel_id, r.agent_id, r.last_outcome)


class CallbackStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create_tables(self) -> None:
        """For tests and tools on a bare database (the server runs the migrations)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda sync: metadata.create_all(sync, tables=list(TABLES)))

    async def add(self, *, origin_call: str, number: str, skill: str, tier: str, reason: str,
                  customer: dict[str, Any] | None, status: str, now: float, due_ts: float,
                  place_ts: float | None = None, engine_call: str | None = None, windows: str = "",
                  recording: str = "") -> int | None:
        """A new callback; None when this number already has an open one (that one stands)."""
        values = {"origin_call": origin_call, "number": number, "skill": skill, "tier": tier, "reason": reason,
                  "customer": customer, "windows": windows, "recording": recording, "status": status,
                  "attempts": 0, "created_ts": now,
                  "place_ts": now if place_ts is None else place_ts, "due_ts": due_ts, "next_ts": now,
                  "engine_call": engine_call, "updated_ts": now}
        try:
            async with self.engine.begin() as conn:
                res = await conn.execute(insert(callbacks).values(**values).returning(callbacks.c.id))
                return int(res.scalar_one())
        except IntegrityError:
            return None

    async def get(self, cb_id: int) -> CallbackRow | None:
        async with self.engine.connect() as conn:
            r = (await conn.execute(select(callbacks).where(callbacks.c.id == cb_id))).first()
        return _row(r) if r is not None else None

    async def open_for(self, number: str) -> CallbackRow | None:
        async with self.engine.connect() as conn:
            r = (await conn.execute(select(callbacks).where(callbacks.c.number == number,
                                                            callbacks.c.status.in_(OPEN)))).first()
        return _row(r) if r is not None else None

    async def with_status(self, *statuses: str, limit: int = 1000) -> list[CallbackRow]:
        async with reading(self.engine) as conn:
            rows = (await conn.execute(select(callbacks).where(callbacks.c.status.in_(statuses))
                                       .order_by(callbacks.c.due_ts, callbacks.c.id).limit(limit))).all()
        return [_row(r) for r in rows]

    async def recent(self, limit: int = 200) -> list[CallbackRow]:
        """Open callbacks first, then the latest closed ones (for the supervisors' list)."""
        async with self.engine.connect() as conn:
            open_rows = (await conn.execute(select(callbacks).where(callbacks.c.status.in_(OPEN))
                                            .order_by(callbacks.c.due_ts).limit(limit))).all()
            closed = (await conn.execute(select(callbacks).where(callbacks.c.status.in_(FINAL))
                                         .order_by(callbacks.c.updated_ts.desc()).limit(limit))).all()
        return [_row(r) for r in [*open_rows, *closed][:limit]]

    async def counts(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(callbacks.c.status, func.count()).group_by(callbacks.c.status))).all()
        return {str(s): int(n) for s, n in rows}

    async def _move(self, cb_id: int, expect: Sequence[str], now: float, **values: Any) -> bool:
        """Change a row only if it is still in one of the `expect` states (compare-and-set)."""
        async with self.engine.begin() as conn:
            res = await conn.execute(update(callbacks)
                                     .where(callbacks.c.id == cb_id, callbacks.c.status.in_(expect))
                                     .values(updated_ts=now, **values))
            return bool(res.rowcount)

    async def mark_queued(self, cb_id: int, engine_call: str, now: float) -> bool:
        return await self._move(cb_id, (CallbackStatus.PENDING, CallbackStatus.QUEUED), now,
                                status=CallbackStatus.QUEUED, engine_call=engine_call)

    async def mark_dialing(self, cb_id: int, channel_id: str, agent_id: str, now: float) -> bool:
        """The agent answered: the customer is dialled now (a try is counted before it starts)."""
        return await self._move(cb_id, (CallbackStatus.QUEUED,), now, status=CallbackStatus.DIALING,
                                channel_id=channel_id, agent_id=agent_id,
                                attempts=callbacks.c.attempts + 1)

    async def finish_try(self, cb_id: int, status: str, next_ts: float | None, outcome: str, now: float) -> bool:
        values: dict[str, Any] = {"status": status, "last_outcome": outcome}
        if status == CallbackStatus.PENDING:
            values.update(next_ts=next_ts, engine_call=None)
        return await self._move(cb_id, (CallbackStatus.DIALING,), now, **values)

    async def requeue(self, cb_id: int, now: float) -> bool:
        """Back to pending without a try (the ACD dropped it: a restart, a closed queue)."""
        return await self._move(cb_id, (CallbackStatus.QUEUED,), now, status=CallbackStatus.PENDING,
                                engine_call=None, next_ts=now)

    async def close(self, cb_id: int, status: str, now: float, *, outcome: str | None = None,
                    expect: Sequence[str] = (CallbackStatus.PENDING, CallbackStatus.QUEUED)) -> bool:
        values: dict[str, Any] = {"status": status}
        if outcome is not None:
            values["last_outcome"] = outcome
        return await self._move(cb_id, expect, now, **values)

    async def by_origin(self, origin_call: str) -> list[CallbackRow]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(callbacks).where(callbacks.c.origin_call == origin_call))).all()
        return [_row(r) for r in rows]
