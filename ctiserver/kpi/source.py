"""Where a report's facts come from.

* The event store (an engine, in parallel, or one connection): calls, agent legs and agent state time
  are summed by the database over the facts tables (kpi/factsql.py, kept by the event store's
  fact sink or `ctiserver facts rebuild`); dispositions, work orders, outbound, surveys and
  satisfaction callbacks over the events (kpi/compute.py).
* A list of events (the simulator's, a test's): the fact builder folds them in Python and kpi/sums.py
  sums them, the pure path; only the events of the smaller families go through an in-memory SQLite
  for their queries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from ..events import Event, Kind
from ..store.schema import events
from .builder import FactBuilder
from .compute import family_queries, fetch_facts, fetch_facts_parallel
from .config import KpiConfig
from .facts import AGENT_DIMS, CALL_DIMS, LEG_DIMS, Facts, Window
from .factsql import agent_time_sums_query, call_sums_query, leg_sums_query
from .rollup import ensure, rest_window, rollup_queries, rollup_span, whole_half_hour_zone
from .sums import agent_time_sums, call_sums, leg_sums

Source = AsyncEngine | AsyncConnection | Iterable[Event]
FACT_FAMILIES = ("calls", "legs", "agent_time")
# the kinds the families still read from the events table need (kpi/compute.py)
EVENT_FAMILY_KINDS = frozenset((Kind.DISPOSITION, Kind.WORKORDER, Kind.OUT_ATTEMPT, Kind.OUT_RESULT,
                                Kind.SURVEY_RATING, Kind.WORKORDER_CALLBACK, Kind.SMS, Kind.REPAIR, Kind.QC))


def report_queries(cfg: KpiConfig, win: Window, dims: Sequence[str], *, facts: bool = True) -> dict[str, Any]:
    """Every family's statement: the fact families over the facts tables (or only the others)."""
    queries = {k: q for k, q in family_queries(cfg, win, dims).items() if k not in FACT_FAMILIES}
    if facts:
        queries["calls"] = call_sums_query(cfg, win, [d for d in dims if d in CALL_DIMS])
        queries["legs"] = leg_sums_query(win, [d for d in dims if d in LEG_DIMS])
        queries["agent_time"] = agent_time_sums_query(cfg, win, [d for d in dims if d in AGENT_DIMS])
    return queries


async def fetch_report_facts(source: Source, cfg: KpiConfig, win: Window, dims: Sequence[str],
                             *, rollups: bool = True) -> Facts:
    """The facts of `win` summed by the entity dimensions `dims`, from whichever source was given.

    From an engine, the settled half hours of the calls, legs and agent time families come from the half-hour
    rollups (kpi/rollup.py, built here when missing) unless `rollups` is False."""
    if isinstance(source, AsyncEngine):
        span = rollup_span(cfg, win, dims) if rollups else None
        if span is None:
            return await fetch_facts_parallel(source, cfg, win, dims, report_queries(cfg, win, dims))
        b0, b1 = span
        await ensure(source, cfg, b0, b1, win.now)
        queries = report_queries(cfg, win, dims)
        rest = rest_window(win, b1)
        if rest.start < rest.end:
            queries["calls"] = call_sums_query(cfg, rest, [d for d in dims if d in CALL_DIMS])
            queries["legs"] = leg_sums_query(rest, [d for d in dims if d in LEG_DIMS])
        else:
            del queries["calls"], queries["legs"]
        for name, q in rollup_queries(cfg, b0, b1, dims).items():
            if name == "agent_time":
                if not whole_half_hour_zone(win):
                    continue
                queries["agent_time"] = agent_time_sums_query(cfg, rest, [d for d in dims if d in AGENT_DIMS])
                if rest.start >= rest.end:
                    del queries["agent_time"]
            queries[f"{name}_rollup"] = q
        return await fetch_facts_parallel(source, cfg, win, dims, queries)
    if isinstance(source, AsyncConnection):
        return await fetch_facts(source, cfg, win, dims, report_queries(cfg, win, dims))
    return await _facts_from_events(source, cfg, win, dims)


def pure_fact_sums(builder: FactBuilder, cfg: KpiConfig, win: Window, dims: Sequence[str]) -> Facts:
    """The fact families summed in Python (the pure path)."""
    return Facts(calls=call_sums(builder.call_facts(), cfg, win, [d for d in dims if d in CALL_DIMS]),
                 legs=leg_sums(builder.leg_facts(), win, [d for d in dims if d in LEG_DIMS]),
                 agent_time=agent_time_sums(builder.agent_intervals(), cfg, win,
                                            [d for d in dims if d in AGENT_DIMS]))


async def _facts_from_events(evs: Iterable[Event], cfg: KpiConfig, win: Window, dims: Sequence[str]) -> Facts:
    builder = FactBuilder()
    rest: list[dict[str, Any]] = []
    for ev in evs:
        builder.add(ev)
        if ev.kind in EVENT_FAMILY_KINDS:
            rest.append(ev.as_row())
    out = pure_fact_sums(builder, cfg, win, dims)
    engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sc: events.metadata.create_all(sc, tables=[events]))
            for i in range(0, len(rest), 5000):
                await conn.execute(events.insert(), rest[i:i + 5000])
        async with engine.connect() as conn:
            other = await fetch_facts(conn, cfg, win, dims, report_queries(cfg, win, dims, facts=False))
    finally:
        await engine.dispose()
    other.calls, other.legs, other.agent_time = out.calls, out.legs, out.agent_time
    return other
