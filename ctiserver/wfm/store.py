"""The event store's ACD history for the forecast (the SQL edge of wfm/history.py)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..calendar import Calendar
from ..events import Event, Kind
from ..store.schema import events
from .history import KINDS, QueueHistory, build_history


async def history_from_store(engine: AsyncEngine, calendar: Calendar, first: dt.date,
                             until: dt.date) -> dict[str, QueueHistory]:
    """Per-queue history of local days [first, until) from the events table."""
    since_ts, until_ts = calendar.at(first), calendar.at(until)
    query = (select(events.c.kind, events.c.ts, events.c.queue, events.c.tier, events.c.data)
             .where(events.c.kind.in_([str(k) for k in KINDS]), events.c.ts >= since_ts, events.c.ts < until_ts)
             .order_by(events.c.ts))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return build_history(((str(k), float(ts), q, t, d if isinstance(d, dict) else None)
                          for k, ts, q, t, d in rows), calendar)


async def agent_states(engine: AsyncEngine, since: float, until: float) -> list[Event]:
    """The `agent.state` events of [since, until] (what adherence needs)."""
    query = (select(events.c.ts, events.c.agent_id, events.c.data)
             .where(events.c.kind == str(Kind.AGENT_STATE), events.c.ts >= since, events.c.ts <= until)
             .order_by(events.c.ts))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [Event(Kind.AGENT_STATE, float(ts), None, aid, None, None, None, d if isinstance(d, dict) else {})
            for ts, aid, d in rows]
