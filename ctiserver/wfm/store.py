"""The event store's ACD history for the forecast (the SQL edge of wfm/history.py)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..calendar import Calendar
from ..events import Event, Kind
from ..outages.store import outage_records, outage_reports
from ..store.schema import events
from .history import KINDS, QueueHistory, build_history
from .outage_days import OutageSpan


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


async def outage_spans(engine: AsyncEngine, since: float, until: float) -> list[OutageSpan]:
    """Outage records that overlap [since, until), with the count of fault calls attached to each."""
    c = outage_records.c
    reports = (select(outage_reports.c.outage_id, func.count().label("n"))
               .group_by(outage_reports.c.outage_id).subquery())
    query = (select(c.id, c.kind, c.cause, c.start_ts, c.end_ts, c.expected_restore_ts, reports.c.n)
             .outerjoin(reports, reports.c.outage_id == c.id)
             .where(c.start_ts < until, or_(c.end_ts.is_(None), c.end_ts >= since)).order_by(c.start_ts))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [OutageSpan(int(i), str(k), str(cause), float(s), None if e is None else float(e),
                       None if x is None else float(x), int(n or 0)) for i, k, cause, s, e, x, n in rows]
