"""The facts are written with the events that make them (the event store's fact sink), idempotently, and
`ctiserver facts rebuild` re-derives them; on SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ctiserver.events import Event, Kind
from ctiserver.kpi.builder import FactBuilder
from ctiserver.kpi.cli import add_report_command, progress_bar
from ctiserver.kpi.config import KpiConfig
from ctiserver.kpi.factsql import FACT_TABLES, agent_intervals, call_facts, leg_facts
from ctiserver.kpi.factstore import FactSink
from ctiserver.kpi.report import build_report
from ctiserver.store.batch import DuplicateBatch, insert_events
from ctiserver.store.deferred import DeferredSinks
from ctiserver.store.journal import Pending
from ctiserver.store.schema import events, metadata, sink_marks
from ctiserver.store.writer import EventStore

from .conftest import load
from .test_kpi_golden import D0, golden_day

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"


async def table(engine: AsyncEngine, t: Any, order: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(t).order_by(*order))).mappings().all()
    return [{k: v for k, v in r.items() if k != "id"} for r in rows]


async def all_facts(engine: AsyncEngine) -> tuple[list[dict[str, Any]], ...]:
    return (await table(engine, call_facts, [call_facts.c.call_id]),
            await table(engine, leg_facts, [leg_facts.c.call_id, leg_facts.c.seq]),
            await table(engine, agent_intervals, [agent_intervals.c.agent, agent_intervals.c.t_start]))


def pure_facts(evs: list[Event]) -> tuple[list[dict[str, Any]], ...]:
    b = FactBuilder().add_all(evs)
    return (sorted((f.row() for f in b.call_facts()), key=lambda r: r["call_id"]),
            sorted((g.row() for g in b.leg_facts()), key=lambda r: (r["call_id"], r["seq"])),
            sorted((i.row() for i in b.agent_intervals()), key=lambda r: (r["agent"], r["t_start"])))


@pytest.mark.parametrize("deferred", [False, True], ids=["in-batch", "deferred"])
async def test_the_event_store_writes_the_facts_with_the_events(engine: AsyncEngine, tmp_path: Path,
                                                                deferred: bool) -> None:
    """In each batch's transaction, or deferred (every hour here: `flush()` runs it at once)."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all, tables=[events, *FACT_TABLES, sink_marks])
    evs = golden_day()
    store = EventStore(str(engine.url.render_as_string(hide_password=False)), engine=engine, batch_size=7,
                       journal_path=tmp_path / "journal")
    if deferred:
        store.add_deferred_sink(FactSink(), 3600.0)
    else:
        store.add_sink(FactSink())
    await store.start()
    try:
        for ev in evs:  # small batches: a call's events arrive over several transactions
            store.append(ev)
        await store.flush(timeout=60)
        assert await all_facts(engine) == pure_facts(evs)
        report = await build_report(engine, KpiConfig(), D0, D0 + 86400, ["agent"], now=D0 + 3 * 86400)
        assert report == await build_report(evs, KpiConfig(), D0, D0 + 86400, ["agent"], now=D0 + 3 * 86400)

        # A journal replay or a re-flushed batch: the same rows through the sink again change nothing.
        before = await all_facts(engine)
        async with engine.begin() as conn:
            rows = [dict(r) for r in (await conn.execute(select(events))).mappings()]
            await FactSink()(conn, rows)
        assert await all_facts(engine) == before

        # A disposition after the hang-up updates its call's fact.
        call = next(r for r in before[0] if r["t_ans"] is not None)
        late = Event(Kind.DISPOSITION, D0 + 86000, call["call_id"], "a1", data={"category": "x", "resolved": True})
        store.append(late)
        await store.flush(timeout=60)
        after = {r["call_id"]: r for r in (await all_facts(engine))[0]}
        assert after[call["call_id"]]["disposed"] == call["disposed"] + 1
        assert await all_facts(engine) == pure_facts([*evs, late])
    finally:
        await store.close()


async def test_batches_the_mark_covers_go_alone(engine: AsyncEngine, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a batch has set the deferred sinks' mark, later batches of events no older need nothing else in
    their transaction: on PostgreSQL each goes as one COPY that commits itself, with no BEGIN and no COMMIT.
    The facts are those of every event all the same (and a crash loses none: the mark covers those batches,
    test_deferred_facts_catch_up_after_a_crash)."""
    import asyncpg

    counts = {"begin": 0, "copy": 0}
    start, copy = asyncpg.transaction.Transaction.start, asyncpg.connection.Connection.copy_records_to_table

    async def counted_start(self: Any) -> Any:
        counts["begin"] += 1
        return await start(self)

    async def counted_copy(self: Any, *args: Any, **kw: Any) -> Any:
        counts["copy"] += 1
        return await copy(self, *args, **kw)

    monkeypatch.setattr(asyncpg.transaction.Transaction, "start", counted_start)
    monkeypatch.setattr(asyncpg.connection.Connection, "copy_records_to_table", counted_copy)
    evs, _ = await fresh_day(engine)
    store = EventStore(str(engine.url.render_as_string(hide_password=False)), engine=engine, batch_size=7,
                       journal_path=tmp_path / "journal")
    store.add_deferred_sink(FactSink(), 3600.0)
    await store.start()
    counts.update(begin=0, copy=0)
    try:
        for ev in evs:  # in time order, as a live feed: no batch is older than the first
            store.append(ev)
        await store.flush(timeout=60)
        written = dict(counts)
        assert await all_facts(engine) == pure_facts(evs)
    finally:
        await store.close()
    if engine.dialect.name == "postgresql":
        counts = written
        assert counts["copy"] >= len(evs) // 7
        # 20 batches; transactions: the mark read at start, the first batch (it sets the mark), the sinks' run
        # the flush asks for (it clears the mark), the last, partial batch (it sets the mark again) and the
        # sinks' run: no other batch
        assert counts["begin"] <= 5, counts


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ctiserver")
    add_report_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_facts_rebuild_rederives_what_was_lost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    evs = golden_day()

    async def fill_and_wipe() -> tuple[list[dict[str, Any]], ...]:
        engine = create_async_engine(url)
        await load(engine, evs)
        facts = await all_facts(engine)
        async with engine.begin() as conn:
            for t in FACT_TABLES:
                await conn.execute(t.delete())
        await engine.dispose()
        return facts

    async def facts_now() -> tuple[list[dict[str, Any]], ...]:
        engine = create_async_engine(url)
        try:
            return await all_facts(engine)
        finally:
            await engine.dispose()

    before = asyncio.run(fill_and_wipe())
    assert before == pure_facts(evs)
    code = run_cli(["facts", "rebuild", "--config", str(REPO_CONFIG), "--url", url,
                    "--from", "2026-11-22", "--to", "2026-11-25"])
    assert code == 0
    out = capsys.readouterr()
    assert "[##############################] 100%" in out.err
    assert "facts rebuilt:" in out.out
    assert asyncio.run(facts_now()) == before
    assert run_cli(["facts", "rebuild", "--config", str(REPO_CONFIG), "--url", url, "--from", "yesterday"]) == 2


def test_progress_bar() -> None:
    assert progress_bar(0.5, 10) == "[#####-----]  50%"


async def test_the_sink_keeps_folds_yet_follows_the_table(engine: AsyncEngine) -> None:
    """The live sink folds batches into the folds it keeps, and still ends with the facts a fresh fold of the
    table gives when the table changed behind it: another node's events, a rolled-back batch, a replay,
    a kept fold evicted, agent states from elsewhere."""
    from ctiserver.store.batch import insert_events

    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all, tables=[events, *FACT_TABLES])
    evs = sorted(golden_day(), key=lambda e: e.ts)  # as a live feed: the calls interleave
    rows = [{**e.as_row(), "event_key": f"n1-{i}"} for i, e in enumerate(evs)]
    sink = FactSink(max_calls=3)  # small: some calls are evicted and read back

    async def write(batch: list[dict[str, Any]], via: FactSink | None = None) -> None:
        async with engine.begin() as conn:
            await insert_events(conn, batch)
            await (via or sink)(conn, batch)

    for i in range(0, len(rows) // 2, 5):
        await write(rows[i:i + 5])
    # A replay of a batch already written, through the same sink.
    await write(rows[:5])
    # Another node writes a disposition for a kept call and a state for a kept agent (each with more events
    # to come here), through its own sink.
    half = len(rows) // 2
    later = rows[half:]
    kept_call = next(r["call_id"] for r in later if r["call_id"] in sink._kept)
    other = [{**Event(Kind.DISPOSITION, D0 + 40000, kept_call, "a9", data={"resolved": True}).as_row(),
              "event_key": "n2-0"}]
    agent, start = next((a, t) for a, t in sink._agents.items()
                        if any(r["kind"] == Kind.AGENT_STATE and r["agent_id"] == a for r in later))
    t_next = min(r["ts"] for r in later if r["kind"] == Kind.AGENT_STATE and r["agent_id"] == agent)
    other.append({**Event(Kind.AGENT_STATE, (start + t_next) / 2, None, agent, data={"state": "ready"}).as_row(),
                  "event_key": "n2-1"})
    await write(other, via=FactSink())
    # A batch whose transaction is rolled back after the sink ran: it is written again later.
    for i in range(half, half + 30, 5):
        await write(rows[i:i + 5])
    doomed = rows[half + 30:half + 35]
    with pytest.raises(RuntimeError):
        async with engine.begin() as conn:
            await insert_events(conn, doomed)
            await sink(conn, doomed)
            raise RuntimeError("the commit failed")
    for i in range(half + 30, len(rows), 5):
        await write(rows[i:i + 5])
    assert sink.reloads > 0
    all_evs = [*evs, *(Event.from_row(r) for r in other)]
    assert await all_facts(engine) == pure_facts(all_evs)


async def marks(engine: AsyncEngine) -> dict[str, float | None]:
    async with engine.connect() as conn:
        return {r.writer: r.pending_since for r in await conn.execute(select(sink_marks))}


async def commit(engine: AsyncEngine, deferred: DeferredSinks, rows: list[dict[str, Any]]) -> None:
    """One batch as the event store writes it: the events and the deferred sinks' mark (the events alone, one
    COPY on PostgreSQL, once the mark covers them), then `committed`."""
    try:
        async with engine.begin() as conn:
            alone = deferred.covered(rows)
            await insert_events(conn, rows, fresh=True, alone=alone)
            if not alone:
                await deferred.in_batch(conn, rows)
    except DuplicateBatch:  # some rows are in already: sent again as a replay
        deferred.rolled_back()
        async with engine.begin() as conn:
            await insert_events(conn, rows)
            await deferred.in_batch(conn, rows)
    deferred.committed(rows)


async def fresh_day(engine: AsyncEngine) -> tuple[list[Event], list[dict[str, Any]]]:
    """Empty tables, and the golden day's events as a live feed (in time order) with the writer's keys."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all, tables=[events, *FACT_TABLES, sink_marks])
    evs = sorted(golden_day(), key=lambda e: e.ts)
    return evs, [Pending(f"run1:{i}", e.ts, e).row() for i, e in enumerate(evs)]


async def test_deferred_facts_catch_up_after_a_crash(engine: AsyncEngine) -> None:
    """A writer dies with batches committed and their facts not yet derived: its mark says since when. The
    next process on the same journal (the same writer) finds the mark in its first batch and catches up from
    the events table before anything else; then the facts are those of every event and the mark is clear."""
    evs, rows = await fresh_day(engine)
    first = DeferredSinks("host:/var/journal", every_s=3600.0)
    first.add(FactSink())
    half = len(rows) // 2
    for i in range(0, half, 7):
        await commit(engine, first, rows[i:i + 7])
    await first.run(engine)  # the first half's facts are derived...
    assert await marks(engine) == {"host:/var/journal": None}
    for i in range(half, len(rows), 7):
        await commit(engine, first, rows[i:i + 7])
    # ... the second half's are not: the process dies here, with the oldest of them marked
    assert await marks(engine) == {"host:/var/journal": rows[half]["ts"]}
    assert len((await all_facts(engine))[0]) < len(pure_facts(evs)[0])

    again = DeferredSinks("host:/var/journal", every_s=3600.0)
    again.add(FactSink())
    assert not again.due(0.0)
    call = next(e.call_id for e in evs if e.kind == Kind.ACD_ANSWER)
    late = Event(Kind.DISPOSITION, evs[-1].ts + 60, call, "a1", data={"category": "x", "resolved": True})
    await commit(engine, again, [Pending("run2:0", late.ts, late).row()])
    assert again.due(0.0)  # a catch-up is due at once
    await again.run(engine)
    assert await all_facts(engine) == pure_facts([*evs, late])
    assert await marks(engine) == {"host:/var/journal": None}
    assert again.done_rows == again.committed_rows == 1


class _FailsOnce(FactSink):
    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def __call__(self, conn: Any, rows: Any) -> None:
        if not self.failed:
            self.failed = True
            raise ValueError("a bug in the sink")
        await super().__call__(conn, rows)


async def test_a_deferred_sink_that_fails_catches_up_at_its_next_run(
        engine: AsyncEngine, caplog: pytest.LogCaptureFixture) -> None:
    """A failure on the data loses neither the events nor, in the end, their facts: the rows are dropped
    from memory, the mark still covers them, and the next run derives everything since the mark."""
    evs, rows = await fresh_day(engine)
    deferred = DeferredSinks("w", every_s=3600.0)
    deferred.add(_FailsOnce())
    for i in range(0, len(rows), 50):
        await commit(engine, deferred, rows[i:i + 50])
    await deferred.run(engine)
    assert "deferred sink failed (ValueError: a bug in the sink)" in caplog.text
    assert deferred.failures == 1 and await all_facts(engine) == ([], [], [])
    assert await marks(engine) == {"w": rows[0]["ts"]}
    assert not deferred.due(0.0) and deferred.due(float("inf"))  # again after every_s, not in a loop
    await deferred.run(engine)
    assert await all_facts(engine) == pure_facts(evs)
    assert await marks(engine) == {"w": None}


async def test_a_store_that_writes_nothing_still_catches_up_what_its_last_run_left(
        engine: AsyncEngine, tmp_path: Path) -> None:
    """A node that died as the leader comes back as a standby: it records no events, yet its store reads its
    mark when it starts and derives the facts its last run left behind; `flush()` waits for that."""
    from ctiserver.store.deferred import writer_key

    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all, tables=[events, *FACT_TABLES, sink_marks])
    evs = golden_day()
    journal = tmp_path / "journal"
    async with engine.begin() as conn:
        await insert_events(conn, [Pending(f"old:{i}", e.ts, e).row() for i, e in enumerate(evs)])
        await conn.execute(sink_marks.insert().values(writer=writer_key(journal), sink="kpi_facts",
                                                      pending_since=min(e.ts for e in evs)))
    store = EventStore(str(engine.url.render_as_string(hide_password=False)), engine=engine,
                       journal_path=journal)
    store.add_deferred_sink(FactSink(), 3600.0)
    await store.start()
    try:
        await store.flush(timeout=60)
        assert await all_facts(engine) == pure_facts(evs)
        assert await marks(engine) == {writer_key(journal): None}
    finally:
        await store.close()
