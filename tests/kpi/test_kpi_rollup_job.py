"""The leader's rollup builder (kpi/rollup_job.py): its rules on hand-set times, and its rounds on SQLite
and PostgreSQL: the settled half hours of the kept days are built before any report asks, a report then
builds nothing and equals the report over the facts, and a half hour whose facts changed is built again."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.clock import FakeClock
from ctiserver.events import Event, Kind
from ctiserver.kpi import rollup_job
from ctiserver.kpi.config import KpiConfig, Rollups
from ctiserver.kpi.facts import HALF_HOUR
from ctiserver.kpi.factsql import rollup_buckets
from ctiserver.kpi.factstore import FactSink
from ctiserver.kpi.report import build_report
from ctiserver.kpi.rollup import ensure, settled_until
from ctiserver.kpi.rollup_job import RollupJob, due_span, next_round_at
from ctiserver.store.schema import events

from .test_kpi_properties import D0, events_of
from .test_kpi_rollup import reset

H = 3600.0


def cfg(days: int = 35) -> KpiConfig:
    return KpiConfig(rollups=Rollups(build_days=days))


# ------------------------------------------------------------------------------------------- rules

def test_the_span_ends_at_the_first_half_hour_not_settled_and_starts_build_days_back() -> None:
    now = D0 + 12 * H + 600  # 12:10 local; max_call_s 4 h: settled up to 08:00
    b0, b1 = due_span(cfg(2), now)  # type: ignore[misc]
    assert b1 == int((D0 + 8 * H) // HALF_HOUR) == settled_until(cfg(2), now)
    assert b0 * HALF_HOUR >= now - 2 * 86400 > (b0 - 1) * HALF_HOUR
    assert due_span(cfg(0), now) is None  # off: only reports build them
    assert due_span(cfg(2), now, not_before=D0 + 7 * H)[0] == int((D0 + 7 * H) // HALF_HOUR)  # type: ignore[index]
    assert due_span(cfg(2), now, not_before=now) is None  # retention keeps nothing settled


def test_the_next_round_is_just_after_the_next_half_hour_settles() -> None:
    now = D0 + 12 * H + 600  # the half hour 08:00-08:30 settles at 12:30
    assert next_round_at(cfg(), now) == D0 + 12.5 * H + rollup_job.SLACK_S
    assert next_round_at(cfg(), D0 + 12.5 * H + rollup_job.SLACK_S) == D0 + 13 * H + rollup_job.SLACK_S
    assert settled_until(cfg(), next_round_at(cfg(), now)) == settled_until(cfg(), now) + 1


# ------------------------------------------------------------------------------------------ rounds

def day_of_calls() -> list[Event]:
    calls = [{"at": h * 1800.0 + 60, "outcome": "answer", "wait": 12.0, "tier": "vip", "queue": "billing",
              "agent": "a1", "caller": f"13{h:03d}", "talk": 100.0, "transfer": False} for h in range(48)]
    return [e for i, c in enumerate(calls) for e in events_of(i, c)]


async def buckets(engine: AsyncEngine) -> set[int]:
    async with engine.connect() as conn:
        return {r[0] for r in await conn.execute(select(rollup_buckets.c.bucket))}


async def test_settled_half_hours_are_rolled_up_before_a_report_asks(engine: AsyncEngine) -> None:
    await reset(engine, day_of_calls())
    clock = FakeClock(D0 + 18 * H)  # settled: the day's first 14 h
    job = RollupJob(lambda: engine, cfg(2), clock)
    async with job.run():
        await job.wait_rounds(1)
    span = due_span(cfg(2), clock.now())
    assert span is not None
    first = int((D0 + 60) // HALF_HOUR)  # the day's first call: nothing before it is built
    assert await buckets(engine) == set(range(first, span[1]))
    assert job.built == span[1] - first
    # the day's report: the settled part read from what the job built, nothing built on the way, and the
    # same figures as straight over the facts
    start, end = D0, D0 + 86400
    assert await ensure(engine, cfg(2), int(start // HALF_HOUR), span[1], clock.now()) == 0
    assert await build_report(engine, cfg(2), start, end, ["halfhour"], now=clock.now()) == \
        await build_report(engine, cfg(2), start, end, ["halfhour"], now=clock.now(), rollups=False)
    # the next round, half an hour later: one more half hour settled, only that one built
    clock.set(next_round_at(cfg(2), clock.now()))
    assert await job.round_once() == 1
    assert await buckets(engine) == set(range(first, span[1] + 1))


async def test_a_half_hour_whose_facts_changed_is_built_again_by_the_next_round(engine: AsyncEngine) -> None:
    await reset(engine, day_of_calls())
    clock = FakeClock(D0 + 30 * H)
    job = RollupJob(lambda: engine, cfg(2), clock)
    built = await job.round_once()
    assert built > 0
    # a late disposition of the 03:00 call: the fact sink rewrites that call's fact and drops its rollup
    late = Event(Kind.DISPOSITION, D0 + 29 * H, "c6", "a1", data={"category": "bill", "resolved": False})
    rows = [{**late.as_row(), "event_key": "late"}]
    async with engine.begin() as conn:  # as the event store writes a batch
        await conn.execute(events.insert(), rows)
        await FactSink()(conn, rows)
    kept = set(range(int((D0 + 60) // HALF_HOUR), due_span(cfg(2), clock.now())[1]))  # type: ignore[index]
    gone = kept - await buckets(engine)
    assert gone  # (the call's own half hour, and its caller's earlier calls' if any)
    assert await job.round_once() == len(gone)
    assert not kept - await buckets(engine)


async def test_a_failed_round_is_logged_and_the_next_one_runs(engine: AsyncEngine, caplog: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    await reset(engine, day_of_calls())
    monkeypatch.setattr(rollup_job, "RETRY_S", 0.01)
    calls = {"n": 0}

    def flaky() -> AsyncEngine:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("connection refused")
        return engine

    job = RollupJob(flaky, cfg(2), FakeClock(D0 + 18 * H))
    with caplog.at_level(logging.WARNING, logger="ctiserver.kpi.rollup_job"):
        async with job.run():
            await job.wait_rounds(2)
    assert "KPI rollups: a round failed (connection refused); again in 0 s" in caplog.text
    assert job.built > 0


async def test_nothing_is_built_before_the_first_call(engine: AsyncEngine) -> None:
    await reset(engine, [])
    job = RollupJob(lambda: engine, cfg(2), FakeClock(D0 + 18 * H))
    assert await job.round_once() == 0
    assert await buckets(engine) == set()


async def test_off_when_build_days_is_0(engine: AsyncEngine) -> None:
    await reset(engine, day_of_calls())
    job = RollupJob(lambda: engine, cfg(0), FakeClock(D0 + 18 * H))
    async with job.run():
        assert await job.round_once() == 0
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(rollup_buckets))).scalar() == 0
