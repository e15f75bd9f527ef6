"""Reading the event log back: the one query every report and test starts from."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..calls.tracker import RecordedCall
from ..events import Event, Kind
from .schema import events


async def fetch_events(engine: AsyncEngine, *, call_id: str | None = None,
                       kinds: Iterable[str] | None = None, since: float | None = None,
                       until: float | None = None, limit: int | None = None) -> list[Event]:
    """Events matching every given filter, oldest first (by ts, then by insertion order).

    `since` is inclusive and `until` exclusive (epoch seconds), so consecutive
    windows [a, b), [b, c) never count an event twice. `kinds=[]` matches nothing.
    """
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    stmt = select(events.c.kind, events.c.ts, events.c.call_id, events.c.agent_id, events.c.queue,
                  events.c.tier, events.c.server, events.c.data)
    if call_id is not None:
        stmt = stmt.where(events.c.call_id == call_id)
    if kinds is not None:
        wanted = sorted(set([kinds] if isinstance(kinds, str) else kinds))
        if not wanted:
            return []
        stmt = stmt.where(events.c.kind.in_(wanted))
    if since is not None:
        stmt = stmt.where(events.c.ts >= since)
    if until is not None:
        stmt = stmt.where(events.c.ts < until)
    stmt = stmt.order_by(events.c.ts, events.c.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    async with engine.connect() as conn:
        result = await conn.execute(stmt)
        return [Event.from_row(dict(row._mapping)) for row in result]


async def last_agent_states(engine: AsyncEngine, *, since: float) -> dict[str, tuple[str, str | None]]:
    """Each agent's last logged state since `since`: agent id -> (state, reason) (for a restart)."""
    last = (select(func.max(events.c.id).label("id"))
            .where(events.c.kind == Kind.AGENT_STATE, events.c.ts >= since, events.c.agent_id.is_not(None))
            .group_by(events.c.agent_id)).subquery()
    stmt = select(events.c.agent_id, events.c.data).join(last, events.c.id == last.c.id)
    out: dict[str, tuple[str, str | None]] = {}
    async with engine.connect() as conn:
        for agent_id, data in await conn.execute(stmt):
            data = data if isinstance(data, dict) else {}
            state, reason = data.get("state"), data.get("reason")
            if isinstance(state, str):
                out[str(agent_id)] = (state, reason if isinstance(reason, str) else None)
    return out


async def recorded_calls(engine: AsyncEngine, call_ids: Iterable[str], *, server: str | None = None,
                         chunk: int = 500) -> dict[str, RecordedCall]:
    """What the log already holds about these calls (for a resync after a CTI restart): each call's
    first call.new time, the channels it recorded (call.new/call.leg) and those it saw answered.
    Calls with no call.new row are left out."""
    ids = sorted(set(call_ids))
    rows: list[tuple[str, str, float, Any]] = []
    kinds = (Kind.CALL_NEW, Kind.CALL_LEG, Kind.CALL_ANSWER)
    async with engine.connect() as conn:
        for i in range(0, len(ids), chunk):
            stmt = (select(events.c.call_id, events.c.kind, events.c.ts, events.c.data)
                    .where(events.c.kind.in_(kinds), events.c.call_id.in_(ids[i:i + chunk])))
            if server is not None:
                stmt = stmt.where(events.c.server == server)
            rows += [(str(r[0]), str(r[1]), float(r[2]), r[3]) for r in await conn.execute(stmt)]
    started: dict[str, float] = {}
    legs: dict[str, set[str]] = {}
    answered: dict[str, set[str]] = {}
    answered_at: dict[str, float] = {}
    for call_id, kind, ts, data in rows:
        uid = data.get("uniqueid") if isinstance(data, dict) else None
        if kind == Kind.CALL_NEW:
            started[call_id] = min(ts, started.get(call_id, ts))
        if kind == Kind.CALL_ANSWER:
            answered_at[call_id] = min(ts, answered_at.get(call_id, ts))
            if isinstance(uid, str):
                answered.setdefault(call_id, set()).add(uid)
        elif isinstance(uid, str):
            legs.setdefault(call_id, set()).add(uid)
    return {call_id: RecordedCall(ts, frozenset(legs.get(call_id, ())), frozenset(answered.get(call_id, ())),
                                  answered_at.get(call_id))
            for call_id, ts in started.items()}


OPEN_CALLS_LOOKBACK_S = 4 * 3600.0  # how far back a start (or a new HA term) looks for calls left open


async def open_calls(engine: AsyncEngine, since: float, until: float | None = None) -> dict[str, str | None]:
    """Calls the log shows begun (a call.new at `since` or later, before `until`) and never ended (no
    call.end): call id -> server. A CTI that starts (or a new HA term) closes those Asterisk no longer has."""
    e = events.c
    new_q = select(e.call_id, e.server).where(e.kind == Kind.CALL_NEW, e.ts >= since, e.call_id.is_not(None))
    if until is not None:
        new_q = new_q.where(e.ts < until)
    async with engine.connect() as conn:
        new = {str(r[0]): r[1] for r in await conn.execute(new_q)}
        ended = {str(r[0]) for r in await conn.execute(
            select(e.call_id).where(e.kind == Kind.CALL_END, e.ts >= since, e.call_id.is_not(None)))}
    return {c: s for c, s in new.items() if c not in ended}
