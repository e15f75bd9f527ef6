"""Keeping the facts tables in step with the events: the writer's sink and `facts rebuild`.

A fact is a function of all the events of its call (or agent), so both recompute the facts of the calls
and agents an event batch touched, from the events table, in the same transaction as the batch, and
replace them by id: a replayed journal or a re-flushed batch changes nothing, and an event that arrives
late (a disposition after the hang-up) simply updates its call's fact.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..events import Event, Kind
from ..store.schema import events
from .builder import CALL_KINDS, FactBuilder, intervals_of, json_str
from .factsql import agent_intervals, call_facts, leg_facts

log = logging.getLogger("ctiserver.kpi.facts")

CHUNK = 500  # call ids per statement (well under SQLite's 32766 bound parameters)
AGENT_NEXT_LOOKAHEAD_S = 31 * 86400.0


def _event(row: Any) -> Event:
    return Event(row.kind, row.ts, row.call_id, row.agent_id, row.queue, row.tier, None,
                  row.data if isinstance(row.data, dict) else {})


async def refresh_calls(conn: AsyncConnection, call_ids: Iterable[str]) -> int:
    """Recompute the call and leg facts of `call_ids` from their events; return how many calls."""
    ids = sorted(set(call_ids))
    n = 0
    e = events.c
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i:i + CHUNK]
        result = await conn.execute(
            select(e.ts, e.kind, e.call_id, e.agent_id, e.queue, e.tier, e.data)
            .where(e.call_id.in_(chunk), e.kind.in_(sorted(CALL_KINDS))).order_by(e.ts, e.id))
        b = FactBuilder().add_all(_event(r) for r in result)
        facts = b.call_facts()
        legs = b.leg_facts()
        await conn.execute(delete(call_facts).where(call_facts.c.call_id.in_(chunk)))
        await conn.execute(delete(leg_facts).where(leg_facts.c.call_id.in_(chunk)))
        if facts:
            await conn.execute(insert(call_facts), [f.row() for f in facts])
        if legs:
            await conn.execute(insert(leg_facts), [g.row() for g in legs])
        n += len(facts)
    return n


async def refresh_agent(conn: AsyncConnection, agent: str, since: float) -> None:
    """Recompute `agent`'s state intervals from the state in force at `since` onwards."""
    a, e = agent_intervals.c, events.c
    prev = (await conn.execute(select(func.max(a.t_start)).where(a.agent == agent, a.t_start < since))).scalar()
    if prev is None:  # no interval yet (a first start, or facts never built): the event log says
        prev = (await conn.execute(select(func.max(e.ts)).where(
            e.kind == Kind.AGENT_STATE, e.agent_id == agent, e.ts < since))).scalar()
    start = since if prev is None else min(prev, since)
    result = await conn.execute(
        select(e.ts, e.id, e.data).where(e.kind == Kind.AGENT_STATE, e.agent_id == agent, e.ts >= start)
        .order_by(e.ts, e.id))
    marks = [(r.ts, r.id, *_state(r.data)) for r in result]
    await conn.execute(delete(agent_intervals).where(a.agent == agent, a.t_start >= start))
    rows = [iv.row() for iv in intervals_of(agent, marks)]
    if rows:
        await conn.execute(insert(agent_intervals), rows)


def _state(data: Any) -> tuple[str | None, str | None]:
    d = data if isinstance(data, dict) else {}
    return json_str(d, "state"), json_str(d, "reason")


class FactSink:
    """Called by the event store inside the transaction that inserts a batch (see store/writer.py)."""

    async def __call__(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        calls = {r["call_id"] for r in rows if r.get("call_id") is not None and r.get("kind") in CALL_KINDS}
        agents: dict[str, float] = {}
        for r in rows:
            if r.get("kind") == Kind.AGENT_STATE and r.get("agent_id") is not None:
                agents[r["agent_id"]] = min(agents.get(r["agent_id"], r["ts"]), r["ts"])
        if calls:
            await refresh_calls(conn, calls)
        for agent, since in sorted(agents.items()):
            await refresh_agent(conn, agent, since)


async def rebuild(engine: AsyncEngine, t0: float, t1: float,
                  progress: Callable[[float], None] | None = None, step_s: float = 86400.0) -> dict[str, int]:
    """Re-derive every fact of the calls and agent states with events in [t0, t1), a day at a time."""
    e, a = events.c, agent_intervals.c
    total = max(t1 - t0, 1.0)
    calls = 0
    t = t0
    while t < t1:
        u = min(t + step_s, t1)
        async with engine.begin() as conn:
            ids = [r[0] for r in await conn.execute(
                select(e.call_id).distinct().where(e.ts >= t, e.ts < u, e.call_id.is_not(None),
                                                   e.kind.in_(sorted(CALL_KINDS))))]
            calls += await refresh_calls(conn, ids)
        if progress is not None:
            progress((u - t0) / total * 0.8)
        t = u
    intervals = 0
    async with engine.begin() as conn:
        rows = (await conn.execute(
            select(e.agent_id, e.ts, e.id, e.data)
            .where(e.kind == Kind.AGENT_STATE, e.ts >= t0, e.ts < t1, e.agent_id.is_not(None))
            .order_by(e.agent_id, e.ts, e.id))).all()
        nexts = dict((await conn.execute(
            select(e.agent_id, func.min(e.ts))
            .where(e.kind == Kind.AGENT_STATE, e.ts >= t1, e.ts < t1 + AGENT_NEXT_LOOKAHEAD_S,
                   e.agent_id.is_not(None)).group_by(e.agent_id))).all())
        per: dict[str, list[tuple[float, int, str | None, str | None]]] = {}
        for r in rows:
            per.setdefault(r.agent_id, []).append((r.ts, r.id, *_state(r.data)))
        await conn.execute(delete(agent_intervals).where(a.t_start >= t0, a.t_start < t1))
        batch: list[dict[str, Any]] = []
        for agent, marks in per.items():
            ivs = intervals_of(agent, marks)
            if ivs and ivs[-1].t_end is None:
                ivs[-1].t_end = nexts.get(agent)
            batch += [iv.row() for iv in ivs]
            # the state in force when the range starts now ends at the agent's first state in it
            before = select(func.max(a.t_start)).where(a.agent == agent, a.t_start < t0).scalar_subquery()
            await conn.execute(update(agent_intervals).where(and_(a.agent == agent, a.t_start == before))
                               .values(t_end=marks[0][0]))
            if len(batch) >= 5000:
                await conn.execute(insert(agent_intervals), batch)
                intervals += len(batch)
                batch = []
        if batch:
            await conn.execute(insert(agent_intervals), batch)
            intervals += len(batch)
    if progress is not None:
        progress(1.0)
    return {"calls": calls, "agent_intervals": intervals}
