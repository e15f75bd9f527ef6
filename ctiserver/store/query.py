"""Reading the event log back: the one query every report and test starts from."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

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
