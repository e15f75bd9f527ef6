"""One definition, three paths: random hotline days give the same per-bucket sums (and so the same report)
whether the facts are summed in Python (kpi/sums.py), by SQLite or by PostgreSQL over the facts tables
(kpi/factsql.py), and the same report as the old SQL straight over the events (kpi/compute.py)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.events import Event, Kind
from ctiserver.kpi.builder import FactBuilder
from ctiserver.kpi.compute import fetch_facts
from ctiserver.kpi.config import KpiConfig
from ctiserver.kpi.facts import Facts, Window
from ctiserver.kpi.factsql import FACT_TABLES, agent_intervals, call_facts, leg_facts
from ctiserver.kpi.metrics import assemble
from ctiserver.kpi.source import pure_fact_sums, report_queries
from ctiserver.store.schema import events, metadata

from .test_kpi_properties import D0, call_st, events_of

STATES = ("available", "on_call", "wrap_up", "not_ready", "logged_out", "ringing")
state_st = st.tuples(st.sampled_from(["a1", "a2", "a3"]), st.floats(-2 * 86400, 86400 + 7200),
                     st.sampled_from(STATES), st.sampled_from([None, "lunch", "training"]))
DIMS = st.sampled_from([[], ["queue"], ["tier"], ["agent"], ["queue", "tier", "agent"]])


def day_events(calls: list[dict[str, Any]], states: list[tuple[str, float, str, str | None]]) -> list[Event]:
    evs = [e for i, c in enumerate(calls) for e in events_of(i, c)]
    evs += [Event(Kind.AGENT_STATE, D0 + t, None, agent, data={"state": s, "reason": r})
            for agent, t, s, r in states]
    evs.append(Event(Kind.DISPOSITION, D0 + 100, "c0", "a1", data={"category": "bill", "resolved": True}))
    return evs


def window(now: float) -> Window:
    cfg = KpiConfig()
    return Window.build(D0, D0 + 86400, now, cfg.zone(), 3 * 86400)


def summed(rows: Iterable[dict[str, Any]], value_keys: Iterable[str] | None = None) -> dict[Any, dict[str, int]]:
    """Rows -> {(hh, dims..., [state]): {sum: value}} with duplicate keys added up (SQL's split rows)."""
    out: dict[Any, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        key = tuple(sorted((k, v) for k, v in r.items() if k == "hh" or k.startswith("d_") or k == "state"))
        for k, v in r.items():
            if k != "hh" and not k.startswith("d_") and k != "state":
                out[key][k] += int(v or 0)
    return {k: dict(v) for k, v in out.items()}


async def sql_sums(engine: AsyncEngine, b: FactBuilder, cfg: KpiConfig, win: Window, dims: list[str]) -> Facts:
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all, tables=[events, *FACT_TABLES])
        for t in FACT_TABLES:
            await conn.execute(t.delete())
        for table, facts in ((call_facts, b.call_facts()), (leg_facts, b.leg_facts()),
                             (agent_intervals, b.agent_intervals())):
            if facts:
                await conn.execute(table.insert(), [f.row() for f in facts])
    async with engine.connect() as conn:
        queries = {k: q for k, q in report_queries(cfg, win, dims).items() if k in ("calls", "legs", "agent_time")}
        return await fetch_facts(conn, cfg, win, dims, queries)


@pytest.mark.parametrize("now_offset", [3 * 86400.0, 43200.0])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(calls=st.lists(call_st, max_size=20), states=st.lists(state_st, max_size=15), dims=DIMS)
async def test_sql_over_facts_equals_the_pure_sums(engine: AsyncEngine, now_offset: float,
                                                   calls: list[dict[str, Any]],
                                                   states: list[tuple[str, float, str, str | None]],
                                                   dims: list[str]) -> None:
    cfg = KpiConfig()
    win = window(D0 + now_offset)  # two days later, and in the middle of the day (calls still waiting)
    b = FactBuilder().add_all(day_events(calls, states))
    pure = pure_fact_sums(b, cfg, win, dims)
    sql = await sql_sums(engine, b, cfg, win, dims)
    assert summed(sql.calls) == summed(pure.calls)
    assert summed(sql.legs) == summed(pure.legs)
    assert summed(sql.agent_time) == summed(pure.agent_time)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls=st.lists(call_st, max_size=20), states=st.lists(state_st, max_size=15),
       by=st.sampled_from([[], ["halfhour"], ["band", "tier"], ["queue"], ["agent"]]))
async def test_the_facts_give_the_report_the_events_sql_gave(calls: list[dict[str, Any]],
                                                             states: list[tuple[str, float, str, str | None]],
                                                             by: list[str]) -> None:
    """The fact builder keeps the definitions of the SQL over raw events it replaces (kpi/compute.py)."""
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import StaticPool

    cfg = KpiConfig()
    win = window(D0 + 3 * 86400)
    evs = day_events(calls, states)
    ent = list(dict.fromkeys([*[d for d in by if d in ("queue", "tier", "agent")], "tier"]))
    engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all, tables=[events])
            if evs:
                await conn.execute(events.insert(), [e.as_row() for e in evs])
        async with engine.connect() as conn:
            old = await fetch_facts(conn, cfg, win, ent)  # every family straight over the events
    finally:
        await engine.dispose()
    new = pure_fact_sums(FactBuilder().add_all(evs), cfg, win, ent)
    new.dispositions, new.workorders, new.outbound = old.dispositions, old.workorders, old.outbound
    new.survey, new.ratings, new.revisits = old.survey, old.ratings, old.revisits
    assert strip(assemble(new, cfg, win, by)) == strip(assemble(old, cfg, win, by))


# Figures the SQL over raw events never had: the not-ready reasons (state intervals carry them) and how many
# agents were offered an answered call.
NEW_ONLY = ("not_ready_by_reason_s", "answered_by_offers")


def strip(report: dict[str, Any]) -> dict[str, Any]:
    for m in [report["total"], *(r["metrics"] for r in report["rows"])]:
        for k in NEW_ONLY:
            m.pop(k, None)
    return report

