"""Half-hour rollups (kpi/rollup.py) give the report the facts give: on random days, on SQLite and on
PostgreSQL, when they are built, when they are read back, and after the fact sink has changed the facts
under them (a late call from the same caller, a disposition after the hang-up)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.events import Event, Kind
from ctiserver.kpi.config import KpiConfig
from ctiserver.kpi.factsql import FACT_TABLES, call_rollups, rollup_buckets
from ctiserver.kpi.factstore import FactSink, rebuild
from ctiserver.kpi.report import build_report
from ctiserver.store.schema import events, metadata

from .test_kpi_facts_paths import day_events, state_st
from .test_kpi_properties import D0, call_st, events_of

BY = st.sampled_from([[], ["halfhour"], ["queue"], ["band", "tier"], ["day", "queue", "tier"]])


async def reset(engine: AsyncEngine, evs: list[Event]) -> None:
    """Fresh events and facts tables holding `evs` and their facts (as `facts rebuild` derives them)."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all, tables=[events, *FACT_TABLES])
        await conn.run_sync(metadata.create_all, tables=[events, *FACT_TABLES])
        if evs:
            await conn.execute(events.insert(), [{**e.as_row(), "event_key": f"k{i}"} for i, e in enumerate(evs)])
    if evs:
        await rebuild(engine, min(e.ts for e in evs), max(e.ts for e in evs) + 1)


async def both(engine: AsyncEngine, start: float, end: float, by: list[str], now: float) -> dict[str, Any]:
    """The report from the rollups (built now, then read back) after checking both equal the facts'."""
    cfg = KpiConfig()
    plain = await build_report(engine, cfg, start, end, by, now=now, rollups=False)
    built = await build_report(engine, cfg, start, end, by, now=now)
    again = await build_report(engine, cfg, start, end, by, now=now)
    assert built == plain
    assert again == plain
    return again


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(calls=st.lists(call_st, max_size=25), states=st.lists(state_st, max_size=10), by=BY,
       now_h=st.sampled_from([72.0, 12.0, 5.5]), start_h=st.sampled_from([0.0, -1.0]))
async def test_rollups_give_the_report_the_facts_give(engine: AsyncEngine, calls: list[dict[str, Any]],
                                                      states: list[tuple[str, float, str, str | None]],
                                                      by: list[str], now_h: float, start_h: float) -> None:
    await reset(engine, day_events(calls, states))
    await both(engine, D0 + start_h * 3600, D0 + 86400, by, D0 + now_h * 3600)


async def test_only_settled_half_hours_are_rolled_up(engine: AsyncEngine) -> None:
    calls = [{"at": h * 1800.0 + 60, "outcome": "answer", "wait": 12.0, "tier": "vip", "queue": "billing",
              "agent": "a1", "caller": f"13{h}", "talk": 100.0, "transfer": False} for h in range(48)]
    await reset(engine, [e for i, c in enumerate(calls) for e in events_of(i, c)])
    await both(engine, D0, D0 + 86400, ["halfhour"], now=D0 + 12 * 3600)
    async with engine.connect() as conn:
        built = (await conn.execute(select(func.count()).select_from(rollup_buckets))).scalar()
    assert built == 24 - 8  # max_call_s (4 h) before now: 12:00 - 4 h = 08:00, 16 half hours


async def test_the_fact_sink_drops_the_rollups_its_batch_changes(engine: AsyncEngine) -> None:
    first = {"at": 3600.0, "outcome": "answer", "wait": 10.0, "tier": "normal", "queue": "billing", "agent": "a1",
             "caller": "13800000001", "talk": 60.0, "transfer": False}
    await reset(engine, events_of(0, first))
    now = D0 + 3 * 86400
    before = await both(engine, D0, D0 + 86400, [], now)
    assert before["total"]["fcr_rate"] == 1.0
    # a second call from the same number five hours later (the first is no longer resolved first time),
    # and a disposition of the first call arriving late: both written as the event store writes a batch
    second = {**first, "at": 5 * 3600.0 + 1800}
    late = [*events_of(1, second), Event(Kind.DISPOSITION, D0 + 3 * 3600, "c0", "a1",
                                         data={"category": "bill", "resolved": False})]
    rows = [{**e.as_row(), "event_key": f"late{i}"} for i, e in enumerate(late)]
    async with engine.begin() as conn:
        await conn.execute(events.insert(), rows)
        await FactSink()(conn, rows)
        left = (await conn.execute(select(call_rollups.c.bucket))).scalars().all()
    assert int((D0 + 3600) // 1800) not in left
    after = await both(engine, D0, D0 + 86400, [], now)
    assert after["total"]["fcr_rate"] == 0.5
    assert after["total"]["calls_offered"] == 2
