"""Month partitions (migration 0016) and retention (store/retention.py) on real PostgreSQL, and retention on
SQLite: the migration keeps every row and every report, a dropped month takes only its own rows, a row for
a month far ahead is accepted, and the fact sink still never counts an event twice."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.clock import FakeClock
from ctiserver.config import Retention
from ctiserver.events import Event
from ctiserver.kpi.factsql import call_facts
from ctiserver.kpi.factstore import FactSink, rebuild
from ctiserver.kpi.report import build_report
from ctiserver.store.batch import insert_events
from ctiserver.store.engine import make_engine, migrate
from ctiserver.store.partitions import TABLES, partitions
from ctiserver.store.retention import RetentionJob
from ctiserver.store.schema import events
from ctiserver.store.writer import EventStore
from tests import pgutil

from .test_kpi_golden import D0, TZ, cfg, golden_day

PG_DB = f"ctitest_partitions_{os.getpid()}"
MONTHS = [(2026, 9), (2026, 10), (2026, 11)]  # local months, each with a copy of the golden day on its 15th
NOW = datetime(2026, 12, 10, 12, tzinfo=TZ).timestamp()


def local_month(ym: tuple[int, int]) -> tuple[float, float]:
    nxt = (ym[0] + ym[1] // 12, ym[1] % 12 + 1)
    return datetime(*ym, 1, tzinfo=TZ).timestamp(), datetime(*nxt, 1, tzinfo=TZ).timestamp()


def months_of_events() -> list[Event]:
    out = []
    for ym in MONTHS:
        shift = datetime(*ym, 15, tzinfo=TZ).timestamp() - D0  # whole days: the same local times of day
        tag = f"{ym[0]}{ym[1]:02d}-"
        out += [dataclasses.replace(e, ts=e.ts + shift, call_id=tag + e.call_id if e.call_id else None)
                for e in golden_day()]
    return out


async def add_events(engine: AsyncEngine, evs: list[Event]) -> None:
    rows = [{**e.as_row(), "event_key": f"p-{i}"} for i, e in enumerate(evs)]
    async with engine.begin() as conn:
        await conn.execute(events.insert(), rows)
    await rebuild(engine, min(r["ts"] for r in rows), max(r["ts"] for r in rows) + 1)


async def reports(engine: AsyncEngine) -> dict[tuple[int, int], Any]:
    return {ym: await build_report(engine, cfg(), *local_month(ym), ["queue"], now=NOW) for ym in MONTHS}


async def contents(engine: AsyncEngine) -> dict[str, list[str]]:
    out = {}
    async with engine.connect() as conn:
        for spec in TABLES:
            out[spec.table] = sorted(repr(tuple(r)) for r in await conn.execute(text(f"SELECT * FROM {spec.table}")))
    return out


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    yield await pgutil.fresh_database(PG_DB)
    await pgutil.drop_database(PG_DB)


async def test_the_migration_keeps_every_row_and_report_and_a_dropped_month_takes_only_its_own(
        pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    await migrate(pg_url, "0015")
    engine = make_engine(pg_url)
    try:
        await add_events(engine, months_of_events())
        before = await reports(engine)  # builds the settled half hours' rollups too
        rows = await contents(engine)
        assert all(rows[t] for t in ("events", "call_facts", "leg_facts", "agent_intervals", "call_rollups"))

        await migrate(pg_url)
        assert await contents(engine) == rows
        assert await reports(engine) == before
        async with engine.connect() as conn:
            for spec in TABLES:
                names = {p.name for p in await partitions(conn, spec)}
                assert {f"{spec.table}_p2026_09", f"{spec.table}_p2026_11", f"{spec.table}_default"} <= names
            empty_default = (await conn.execute(text("SELECT count(*) FROM events_default"))).scalar()
        assert empty_default == 0

        # Keep one month before the current one: September's partitions go, October's and November's stay.
        job = RetentionJob(lambda: engine, Retention(events_months=1, facts_months=1), FakeClock(NOW), TZ)
        with caplog.at_level(logging.INFO, logger="ctiserver.store.retention"):
            gone = await job.sweep_once()
        # (September's local report also marked rollups of 31 August's last UTC hours: that month goes too)
        assert {f"{s.table}_p2026_09" for s in TABLES} <= {d.what for d in gone} <= \
            {f"{s.table}_p2026_{m}" for s in TABLES for m in ("08", "09")}
        assert all(d.rows is None for d in gone)  # dropped whole, not a row deleted
        assert "dropped partition events_p2026_09" in caplog.text
        lo, hi = local_month((2026, 9))
        async with engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(events).where(
                events.c.ts >= lo, events.c.ts < hi))).scalar() == 0
            assert (await conn.execute(text("SELECT count(*) FROM rollup_buckets WHERE bucket < :b"),
                                       {"b": int(datetime(2026, 10, 1, tzinfo=TZ).timestamp() // 1800) - 16})
                    ).scalar() == 0
        after = await reports(engine)
        assert after[(2026, 10)] == before[(2026, 10)] and after[(2026, 11)] == before[(2026, 11)]
        assert after[(2026, 9)]["total"]["calls_offered"] == 0 < before[(2026, 9)]["total"]["calls_offered"]
        # That report built September's (empty) rollups again, into the DEFAULT partition: the next sweep
        # drops no partition, it deletes those few rows.
        again = await job.sweep_once()
        assert again and all(d.what.endswith("_default") and d.rows for d in again)
    finally:
        await engine.dispose()


async def test_rows_for_a_month_far_ahead_are_taken_and_move_into_their_month_when_it_is_made(
        pg_url: str, tmp_path: Path) -> None:
    await migrate(pg_url)
    engine = make_engine(pg_url)
    store = EventStore(pg_url, engine=engine, batch_size=50, journal_path=tmp_path / "journal")
    store.add_sink(FactSink())
    far = datetime(2031, 3, 3, 9, tzinfo=TZ).timestamp() - D0
    evs = [dataclasses.replace(e, ts=e.ts + far) for e in golden_day()]
    await store.start()
    try:
        for e in evs:
            store.append(e)
        await store.flush(timeout=60)
        async with engine.connect() as conn:
            held = (await conn.execute(text("SELECT count(*) FROM events_default"))).scalar()
            facts_held = (await conn.execute(text("SELECT count(*) FROM call_facts_default"))).scalar()
        assert held == len(evs) and facts_held > 0
        report = await build_report(engine, cfg(), D0 + far, D0 + far + 86400, ["queue"], now=D0 + far + 3 * 86400)
        assert report == await build_report([*evs], cfg(), D0 + far, D0 + far + 86400, ["queue"],
                                            now=D0 + far + 3 * 86400)

        # The daily job in that month makes its partition and moves the rows out of DEFAULT.
        job = RetentionJob(lambda: engine, Retention(), FakeClock(D0 + far + 86400 * 20), TZ)
        await job.sweep_once()
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM events_default"))).scalar() == 0
            assert (await conn.execute(text("SELECT count(*) FROM events_p2031_03"))).scalar() == len(evs)
            assert (await conn.execute(text("SELECT count(*) FROM call_facts_default"))).scalar() == 0
            names = {p.name for p in await partitions(conn, TABLES[0])}
        assert {"events_p2031_03", "events_p2031_04", "events_p2031_05", "events_p2031_06"} <= names
        assert await build_report(engine, cfg(), D0 + far, D0 + far + 86400, ["queue"],
                                  now=D0 + far + 3 * 86400) == report
    finally:
        await store.close()
        await engine.dispose()


async def test_a_replayed_batch_is_skipped_and_never_counted_twice_on_partitioned_tables(
        pg_url: str, tmp_path: Path) -> None:
    await migrate(pg_url)
    engine = make_engine(pg_url)
    store = EventStore(pg_url, engine=engine, batch_size=7, journal_path=tmp_path / "journal")
    store.add_sink(FactSink())
    evs = golden_day()
    await store.start()
    try:
        for e in evs:
            store.append(e)
        await store.flush(timeout=60)
    finally:
        await store.close()
    try:
        report = await build_report(engine, cfg(), D0, D0 + 86400, ["queue"], now=D0 + 3 * 86400)
        facts = await contents(engine)
        async with engine.connect() as conn:
            rows = [{k: v for k, v in r.items() if k != "id"}
                    for r in (await conn.execute(select(events).order_by(events.c.id))).mappings()]
        assert len(rows) == len(evs)
        # A journal replayed after a crash between the commit and the journal's truncate: the same rows
        # again, COPY refused on the (event_key, ts) key, the INSERT skips them; the sink changes nothing.
        async with engine.begin() as conn:
            await insert_events(conn, rows)
            await FactSink()(conn, rows)
        kept = ("events", "call_facts", "leg_facts", "agent_intervals")  # (the rewrite drops rollups: rebuilt)
        now_rows = await contents(engine)

        def no_ids(rows: dict[str, list[str]]) -> dict[str, list[str]]:  # an agent's recomputed intervals get new ids
            return {t: sorted(r.split(", ", 1)[1] if t == "agent_intervals" else r for r in rows[t]) for t in kept}
        assert no_ids(now_rows) == no_ids(facts)
        assert await build_report(engine, cfg(), D0, D0 + 86400, ["queue"], now=D0 + 3 * 86400) == report
        async with engine.connect() as conn:
            n, distinct = (await conn.execute(select(func.count(), func.count(call_facts.c.call_id.distinct())))).one()
        assert n == distinct > 0  # one fact per call: the (call_id, t0) key alone would not say so
    finally:
        await engine.dispose()


async def test_sqlite_retention_deletes_the_same_months_by_range(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    await migrate(url)
    engine = make_engine(url)
    try:
        await add_events(engine, months_of_events())
        before = await reports(engine)
        job = RetentionJob(lambda: engine, Retention(events_months=1, facts_months=2), FakeClock(NOW), TZ)
        gone = await job.sweep_once()
        # facts keep two months: September stays (only the rollup markers of 31 August's last UTC hours go)
        assert "events" in {d.table for d in gone} <= {"events", "rollup_buckets"}
        assert all(d.what == "rows" and d.rows for d in gone)
        lo, hi = local_month((2026, 9))
        async with engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(events).where(
                events.c.ts < hi))).scalar() == 0
            assert (await conn.execute(select(func.count()).select_from(call_facts).where(
                call_facts.c.t0 >= lo, call_facts.c.t0 < hi))).scalar() > 0
        job.rules = Retention(events_months=1, facts_months=1)
        gone = await job.sweep_once()
        assert {d.table for d in gone} >= {"call_facts", "leg_facts", "agent_intervals", "call_rollups",
                                           "rollup_buckets"}
        after = await reports(engine)
        assert after[(2026, 10)] == before[(2026, 10)] and after[(2026, 11)] == before[(2026, 11)]
        assert after[(2026, 9)]["total"]["calls_offered"] == 0
    finally:
        await engine.dispose()


async def test_the_job_sweeps_when_its_term_begins_and_survives_a_failing_round(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'j.db'}"
    await migrate(url)
    engine = make_engine(url)
    try:
        await add_events(engine, months_of_events())
        job = RetentionJob(lambda: engine, Retention(events_months=1, facts_months=1), FakeClock(NOW), TZ)
        async with job.run():
            await job.wait_rounds(1)  # the first round runs at once; the next is at 03:30 local tomorrow
        assert {d.table for d in job.dropped} >= {"events", "call_facts"}

        broken = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'no' / 'such' / 'x.db'}")
        failing = RetentionJob(lambda: broken, Retention(events_months=1), FakeClock(NOW), TZ)
        with caplog.at_level(logging.WARNING, logger="ctiserver.store.retention"):
            async with failing.run():
                await failing.wait_rounds(1)
        assert "monthly upkeep failed" in caplog.text and failing.dropped == []
        await broken.dispose()
    finally:
        await engine.dispose()
