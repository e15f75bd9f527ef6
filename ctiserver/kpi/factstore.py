"""Keeping the facts tables in step with the events: the writer's sink and `facts rebuild`.

A fact is a function of all the events of its call (or agent). `facts rebuild` recomputes the facts of a
range from the events table. The live sink folds each batch into the folds it keeps of the calls and agents
it wrote recently (one definition: kpi/builder.py's fold) and replaces their facts by id, in the batch's
transaction; it reads a call's events from the table only when it holds no fold for it, or when the table
holds a different number of that call's events than it folded (another node wrote some, a transaction was
rolled back): then it reloads. A replayed journal or a re-flushed batch changes nothing (events already
folded are known by their key), and an event that arrives late (a disposition after the hang-up) simply
updates its call's fact.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import BindParameter

from ..events import Event, Kind
from ..store.schema import events
from .builder import CALL_KINDS, LEG_KINDS, FactBuilder, intervals_of, json_str
from .factsql import agent_intervals, call_facts, leg_facts
from .rollup import invalidate_calls, invalidate_from, invalidate_range

log = logging.getLogger("ctiserver.kpi.facts")

CHUNK = 500  # call ids per statement (well under SQLite's 32766 bound parameters)
AGENT_NEXT_LOOKAHEAD_S = 31 * 86400.0
_CALL_KINDS = sorted(CALL_KINDS)

# The sink's statements, built once: building and coercing a statement cost SQLAlchemy more than running it.
_IDS: BindParameter[list[str]] = bindparam("ids", expanding=True)
_COUNT_EVENTS = (select(events.c.call_id, func.count())
                 .where(events.c.call_id.in_(_IDS), events.c.kind.in_(_CALL_KINDS)).group_by(events.c.call_id))
_DELETE_CALLS = delete(call_facts).where(call_facts.c.call_id.in_(_IDS))
_DELETE_LEGS = delete(leg_facts).where(leg_facts.c.call_id.in_(_IDS))
_CLOSE_INTERVAL = (update(agent_intervals)
                   .where(agent_intervals.c.agent == bindparam("b_agent"),
                          agent_intervals.c.t_start == bindparam("b_start"), agent_intervals.c.t_end.is_(None))
                   .values(t_end=bindparam("b_end")))
_OPEN_INTERVALS = (select(agent_intervals.c.agent, agent_intervals.c.t_start)
                   .where(tuple_(agent_intervals.c.agent, agent_intervals.c.t_start)
                          .in_(bindparam("keys", expanding=True)), agent_intervals.c.t_end.is_(None)))
_INSERT_CALLS, _INSERT_LEGS, _INSERT_INTERVALS = insert(call_facts), insert(leg_facts), insert(agent_intervals)


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
            .where(e.call_id.in_(chunk), e.kind.in_(_CALL_KINDS)).order_by(e.ts, e.id))
        b = FactBuilder().add_all(_event(r) for r in result)
        facts = [f.row() for f in b.call_facts()]
        legs = [g.row() for g in b.leg_facts()]
        await invalidate_calls(conn, chunk, facts, legs)
        await conn.execute(delete(call_facts).where(call_facts.c.call_id.in_(chunk)))
        await conn.execute(delete(leg_facts).where(leg_facts.c.call_id.in_(chunk)))
        if facts:
            await conn.execute(insert(call_facts), facts)
        if legs:
            await conn.execute(insert(leg_facts), legs)
        n += len(facts)
    return n


async def refresh_agent(conn: AsyncConnection, agent: str, since: float) -> float | None:
    """Recompute `agent`'s state intervals from the state in force at `since` onwards; return the start of
    the interval now in force (None if the agent has none)."""
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
    ivs = intervals_of(agent, marks)
    if ivs:
        await conn.execute(insert(agent_intervals), [iv.row() for iv in ivs])
    return ivs[-1].t_start if ivs else None


def _state(data: Any) -> tuple[str | None, str | None]:
    d = data if isinstance(data, dict) else {}
    return json_str(d, "state"), json_str(d, "reason")


class FactSink:
    """Called by the event store with committed batches of events: deferred, every `facts_interval_s`, in a
    transaction of its own (store/deferred.py), or inside each batch's own transaction (interval 0).

    Keeps the folds of the last `max_calls` calls it wrote and the interval in force of each agent, so a
    batch costs a count of its calls' events and the facts' writes, not a read of every event of every
    call it touches (docs/performance.md, "KPI fact sink")."""

    name = "kpi_facts"

    def __init__(self, max_calls: int = 5000) -> None:
        self.max_calls = max_calls
        self._folds = FactBuilder()  # the kept calls' events, folded
        self._kept: dict[str, tuple[int, set[str]]] = {}  # call -> (events folded, their keys); oldest first
        self._agents: dict[str, float] = {}  # agent -> start of its interval in force (t_end still empty)
        self.reloads = 0  # calls read back from the events table (a miss or a mismatch)

    async def __call__(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        try:
            await self._write(conn, rows)
        except BaseException:
            self.clear()  # the transaction may be rolled back: what was kept may not be in the tables
            raise

    def clear(self) -> None:
        """Forget every kept fold (the next batch of each call reads its events again)."""
        self._folds = FactBuilder()
        self._kept.clear()
        self._agents.clear()

    async def catch_up(self, conn: AsyncConnection, since: float) -> None:
        """Recompute the facts of every call and agent with an event at `since` or later (the store lost
        track of what it had derived: a crash, a failure; store/deferred.py)."""
        self.clear()
        e = events.c
        calls = [r[0] for r in await conn.execute(
            select(e.call_id).distinct().where(e.ts >= since, e.call_id.is_not(None), e.kind.in_(_CALL_KINDS)))]
        n = await refresh_calls(conn, calls)
        agents = sorted(r[0] for r in await conn.execute(
            select(e.agent_id).distinct().where(e.kind == Kind.AGENT_STATE, e.ts >= since,
                                                e.agent_id.is_not(None))))
        if agents:
            await invalidate_from(conn, since)
        for agent in agents:
            await refresh_agent(conn, agent, since)
        log.info("KPI facts caught up from ts %.3f: %d calls, %d agents", since, n, len(agents))

    async def _write(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        calls: dict[str, list[Mapping[str, Any]]] = {}
        agents: dict[str, list[tuple[float, int, str | None, str | None]]] = {}
        for i, r in enumerate(rows):
            kind = r.get("kind")
            if kind in CALL_KINDS and r.get("call_id") is not None:
                calls.setdefault(r["call_id"], []).append(r)
            elif kind == Kind.AGENT_STATE and r.get("agent_id") is not None:
                agents.setdefault(r["agent_id"], []).append((r["ts"], i, *_state(r.get("data"))))
        if calls:
            await self._write_calls(conn, calls)
        if agents:
            await self._write_agents(conn, agents)

    async def _write_calls(self, conn: AsyncConnection, calls: dict[str, list[Mapping[str, Any]]]) -> None:
        ids = list(calls)
        missing: list[str] = []
        legs_changed: set[str] = set()
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i:i + CHUNK]
            counts: dict[str, int] = dict((await conn.execute(_COUNT_EVENTS, {"ids": chunk})).all())
            for call in chunk:
                n, keys = self._kept.pop(call) if call in self._kept else (0, set())
                folded = []
                for r in calls[call]:
                    key = r.get("event_key")
                    if key is None or key not in keys:
                        n += 1
                        if key is not None:
                            keys.add(key)
                        folded.append(r)
                if counts.get(call) == n:  # the table holds what is kept plus this batch: fold it in
                    for r in folded:
                        self._folds.add(_row_event(r))
                        if r["kind"] in LEG_KINDS:
                            legs_changed.add(call)
                    self._kept[call] = (n, keys)  # now the newest
                else:  # not kept, or the table changed behind the fold: read it back
                    self._folds.forget(call)
                    missing.append(call)
        for i in range(0, len(missing), CHUNK):
            await self._load(conn, missing[i:i + CHUNK])
        legs_changed.update(missing)
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i:i + CHUNK]
            facts, legs = [], []
            for call in chunk:
                fact, call_legs = self._folds.facts_of(call)
                if fact is not None:
                    facts.append(fact.row())
                if call in legs_changed:
                    legs += [g.row() for g in call_legs]
            await invalidate_calls(conn, chunk, facts, legs)
            await conn.execute(_DELETE_CALLS, {"ids": chunk})
            if facts:
                await conn.execute(_INSERT_CALLS, facts)
            leg_ids = [c for c in chunk if c in legs_changed]
            if leg_ids:
                await conn.execute(_DELETE_LEGS, {"ids": leg_ids})
            if legs:
                await conn.execute(_INSERT_LEGS, legs)
        while len(self._kept) > self.max_calls:
            oldest = next(iter(self._kept))
            del self._kept[oldest]
            self._folds.forget(oldest)

    async def _load(self, conn: AsyncConnection, ids: list[str]) -> None:
        """Fold the events the table holds of `ids` (this batch's among them) and keep the folds."""
        e = events.c
        result = await conn.execute(
            select(e.ts, e.kind, e.call_id, e.agent_id, e.queue, e.tier, e.data, e.event_key)
            .where(e.call_id.in_(ids), e.kind.in_(_CALL_KINDS)).order_by(e.ts, e.id))
        kept: dict[str, tuple[int, set[str]]] = {c: (0, set()) for c in ids}
        for r in result:
            n, keys = kept[r.call_id]
            if r.event_key is not None:
                keys.add(r.event_key)
            kept[r.call_id] = (n + 1, keys)
            self._folds.add(_event(r))
        self.reloads += len(ids)
        self._kept.update(kept)

    async def _write_agents(self, conn: AsyncConnection,
                            agents: dict[str, list[tuple[float, int, str | None, str | None]]]) -> None:
        """Close each agent's interval in force and add the new ones, in three statements for the batch; an
        agent whose interval in force is not the one kept (first seen, another writer, a mark out of order, a
        replay) is recomputed from its events."""
        for marks in agents.values():
            marks.sort()
        await invalidate_from(conn, min(marks[0][0] for marks in agents.values()))  # usually nothing settled
        fast = {agent: start for agent in agents
                if (start := self._agents.pop(agent, None)) is not None and agents[agent][0][0] > start}
        if fast:
            open_now = set((await conn.execute(_OPEN_INTERVALS, {"keys": list(fast.items())})).all())
            fast = {agent: start for agent, start in fast.items() if (agent, start) in open_now}
        if fast:
            await conn.execute(
                _CLOSE_INTERVAL,
                [{"b_agent": agent, "b_start": start, "b_end": agents[agent][0][0]} for agent, start in fast.items()])
            rows = []
            for agent in fast:
                ivs = intervals_of(agent, agents[agent])
                rows += [iv.row() for iv in ivs]
                self._agents[agent] = ivs[-1].t_start
            await conn.execute(_INSERT_INTERVALS, rows)
        for agent in sorted(set(agents) - set(fast)):
            latest = await refresh_agent(conn, agent, agents[agent][0][0])
            if latest is not None:
                self._agents[agent] = latest


def _row_event(r: Mapping[str, Any]) -> Event:
    data = r.get("data")
    return Event(r["kind"], r["ts"], r["call_id"], r.get("agent_id"), r.get("queue"), r.get("tier"), None,
                 data if isinstance(data, dict) else {})


async def rebuild(engine: AsyncEngine, t0: float, t1: float,
                  progress: Callable[[float], None] | None = None, step_s: float = 86400.0) -> dict[str, int]:
    """Re-derive every fact of the calls and agent states with events in [t0, t1), a day at a time."""
    e, a = events.c, agent_intervals.c
    total = max(t1 - t0, 1.0)
    calls = 0
    t = t0
    async with engine.begin() as conn:
        await invalidate_range(conn, t0, t1)
    while t < t1:
        u = min(t + step_s, t1)
        async with engine.begin() as conn:
            ids = [r[0] for r in await conn.execute(
                select(e.call_id).distinct().where(e.ts >= t, e.ts < u, e.call_id.is_not(None),
                                                   e.kind.in_(_CALL_KINDS)))]
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
