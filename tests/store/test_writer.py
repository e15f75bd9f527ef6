"""EventStore: batching, ordering, outages, spill journal, crashes and bad events, on both backends."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import exc as sa_exc
from sqlalchemy import insert, select

from ctiserver.clock import FakeClock
from ctiserver.events import Event, Kind
from ctiserver.store.engine import make_engine
from ctiserver.store.journal import Journal, JournalLocked, Pending, encode
from ctiserver.store.query import fetch_events
from ctiserver.store.schema import events
from ctiserver.store.writer import Backoff, EventStore, is_data_error

from .conftest import create_events_table, pg_url
from .tcpproxy import TcpProxy

HERE = Path(__file__).parent


class _Coded(Exception):
    """A driver error carrying a SQLSTATE, as asyncpg's do."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def ev(i: int, **kw: Any) -> Event:
    return Event(kind=kw.pop("kind", Kind.CALL_NEW), ts=kw.pop("ts", 1_700_000_000.0 + i),
                 call_id=kw.pop("call_id", f"call-{i % 50}"), data={"seq": i, **kw.pop("data", {})}, **kw)


async def db_rows(url: str) -> list[dict[str, Any]]:
    """Every row of `events` in insertion (id) order, read with a fresh engine."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            res = await conn.execute(select(events).order_by(events.c.id))
            return [dict(r._mapping) for r in res]
    finally:
        await engine.dispose()


def seqs(rows: list[dict[str, Any]]) -> list[int]:
    return [r["data"]["seq"] for r in rows]


async def wait_for(cond: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Poll `cond` (a behavioural wait, not a timing assertion: `limit` only stops a hung test)."""
    async with asyncio.timeout(limit):
        while not cond():  # noqa: ASYNC110 - the condition is another object's state, not an event we own
            await asyncio.sleep(0.01)
    assert cond(), what


@pytest.fixture
async def open_stores() -> AsyncIterator[list[EventStore]]:
    """Stores a test opened; closed at the end even if the test failed."""
    stores: list[EventStore] = []
    yield stores
    for store in stores:
        await store.close()


@pytest.fixture
def new_store(tmp_path: Path, open_stores: list[EventStore]) -> Callable[..., EventStore]:
    def make(url: str, **kw: Any) -> EventStore:
        kw.setdefault("journal_path", tmp_path / "journal.jsonl")
        store = EventStore(url, **kw)
        open_stores.append(store)
        return store
    return make


# --- the ordinary path ---------------------------------------------------------------


async def test_round_trip_keeps_every_field_and_chinese_text(store_url: str,
                                                            new_store: Callable[..., EventStore]) -> None:
    store = new_store(store_url)
    await store.start()
    sent = Event(kind=Kind.CALL_NEW, ts=1_700_000_123.25, call_id="1700000123.17", agent_id="8001",
                 queue="billing", tier="vip", server="pbx-a",
                 data={"caller_name": "张三（城东供电所）", "exten": "95598", "answered": False,
                       "path": ["菜单", "电费查询"], "amount": 12.5, "note": "line1\nline2 \"quoted\""})
    store.append(sent)
    await store.flush(timeout=30)
    got = await fetch_events(store.engine)
    assert got == [sent]
    rows = await db_rows(store_url)
    assert len(rows) == 1 and rows[0]["event_key"].endswith(":1")
    assert store.status()["written_total"] == 1 and store.status()["pending"] == 0


async def test_odd_values_in_data_are_stored_as_text(store_url: str,
                                                    new_store: Callable[..., EventStore]) -> None:
    store = new_store(store_url)
    await store.start()
    store.append(ev(0, data={"when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), (1, 2): {3: "三"},
                             "half_emoji": "\ud83d"}))
    await store.flush(timeout=30)
    [row] = await db_rows(store_url)
    assert row["data"] == {"seq": 0, "when": "2026-01-02 03:04:05+00:00", "(1, 2)": {"3": "三"},
                           "half_emoji": "\ud83d"}


async def test_events_go_in_batches_of_batch_size(store_url: str,
                                                  new_store: Callable[..., EventStore]) -> None:
    store = new_store(store_url, batch_size=100, flush_interval_s=60)
    inserts: list[int] = []  # rows per transaction (a sink runs once in each batch's transaction)
    commits: list[int] = []

    async def count(conn: Any, rows: Any) -> None:
        inserts.append(len(rows))

    store.add_sink(count)

    @sa_event.listens_for(store.engine.sync_engine, "commit")
    def committed(conn: Any) -> None:
        commits.append(1)

    await store.start()
    for i in range(1000):
        store.append(ev(i))
    # No flush(): full batches go at once, without waiting for the (one minute) interval.
    await wait_for(lambda: store.status()["written_total"] == 1000, "all written")
    assert inserts == [100] * 10 and len(commits) == 10
    assert seqs(await db_rows(store_url)) == list(range(1000))


async def test_a_partial_batch_goes_after_the_flush_interval(store_url: str,
                                                            new_store: Callable[..., EventStore]) -> None:
    store = new_store(store_url, batch_size=500, flush_interval_s=0.05)
    await store.start()
    for i in range(3):
        store.append(ev(i))
    await wait_for(lambda: store.status()["written_total"] == 3, "the partial batch written without flush()")
    assert seqs(await db_rows(store_url)) == [0, 1, 2]


async def test_an_idle_writer_still_honours_the_flush_interval(store_url: str,
                                                               new_store: Callable[..., EventStore]) -> None:
    store = new_store(store_url, batch_size=500, flush_interval_s=0.05)
    store.IDLE_PING_S = 3600.0  # after its first ping the writer would sleep an hour if not woken
    await store.start()
    await wait_for(lambda: store.status()["db_ok"], "first ping")
    await asyncio.sleep(0.1)  # the writer is now in its idle wait
    store.append(ev(0))
    await wait_for(lambda: store.status()["written_total"] == 1, "written one interval later, not an hour")


async def test_a_trickle_is_still_written_in_batches(store_url: str,
                                                    new_store: Callable[..., EventStore]) -> None:
    store = new_store(store_url, batch_size=1000, flush_interval_s=0.1)
    inserts: list[int] = []  # rows per transaction (a sink runs once in each batch's transaction)

    async def count(conn: Any, rows: Any) -> None:
        inserts.append(len(rows))

    store.add_sink(count)
    await store.start()
    for i in range(200):
        store.append(ev(i))
        await asyncio.sleep(0.001)
    await store.flush(timeout=30)
    assert sum(inserts) == 200
    assert len(inserts) <= 50  # one per flush interval, not one per event
    assert seqs(await db_rows(store_url)) == list(range(200))


async def test_flush_covers_events_appended_before_it_only(store_url: str,
                                                           new_store: Callable[..., EventStore]) -> None:
    store = new_store(store_url, batch_size=10, flush_interval_s=0.05)
    await store.start()
    await store.flush(timeout=5)  # nothing pending: returns at once
    for i in range(25):
        store.append(ev(i))
    await store.flush(timeout=30)
    assert len(await db_rows(store_url)) >= 25


async def test_a_replayed_key_is_stored_once(store_url: str, tmp_path: Path,
                                             new_store: Callable[..., EventStore]) -> None:
    # The situation after a crash between "inserted" and "journal truncated".
    items = [Pending(key=f"old-run:{i}", at=1.0, event=ev(i)) for i in range(10)]
    engine = make_engine(store_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(events), [p.row() for p in items[:6]])
    finally:
        await engine.dispose()
    journal = tmp_path / "journal.jsonl"
    journal.write_bytes(b"".join(encode(p) for p in items))
    store = new_store(store_url, journal_path=journal)
    await store.start()
    assert store.status()["journaled"] == 10
    await store.flush(timeout=30)
    rows = await db_rows(store_url)
    assert seqs(rows) == list(range(10))
    assert journal.read_bytes() == b""
    assert store.status()["journaled"] == 0


async def test_a_batch_whose_commit_went_through_unacknowledged_is_stored_once(
        store_url: str, new_store: Callable[..., EventStore]) -> None:
    """Memory batches go without a savepoint on PostgreSQL (their keys are new); if the table has some of
    them already (the commit went through, its acknowledgement was lost, the batch is sent again), the
    batch is sent once more as a replay: every event once, none refused."""
    store = new_store(store_url)
    run = store._run_id  # the keys the store will give its first events: <run>:1, <run>:2, ...
    engine = make_engine(store_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(events), [Pending(key=f"{run}:{i + 1}", at=1.0, event=ev(i)).row()
                                                for i in range(3)])
    finally:
        await engine.dispose()
    await store.start()
    for i in range(10):
        store.append(ev(i))
    await store.flush(timeout=30)
    assert seqs(await db_rows(store_url)) == list(range(10))
    assert store.status()["rejected_total"] == 0


# --- outages -------------------------------------------------------------------------


@pytest.mark.postgres
async def test_database_cut_while_events_flow_loses_and_duplicates_nothing(
        pg_proxy: TcpProxy, new_store: Callable[..., EventStore], tmp_path: Path) -> None:
    store = new_store(pg_url(pg_proxy.port), batch_size=200, flush_interval_s=0.02, retry_max_s=0.2)
    await store.start()
    total = 5000
    for i in range(total):
        store.append(ev(i))
        if i % 100 == 99:
            await asyncio.sleep(0.005)  # events arrive over time, as from AMI
        if i == 1500:
            await pg_proxy.cut("refuse")
            await wait_for(lambda: not store.status()["db_ok"], "the store noticed the outage")
        if i == 3500:
            assert store.status()["pending"] > 0 and store.status()["last_error"]
            await pg_proxy.restore()
    await store.flush(timeout=60)
    rows = await db_rows(pg_url())
    assert seqs(rows) == list(range(total))  # every event once, in order
    assert len({r["event_key"] for r in rows}) == total
    st = store.status()
    assert st["db_ok"] and st["pending"] == 0 and st["written_total"] == total


@pytest.mark.postgres
async def test_a_hanging_database_is_survived_too(pg_proxy: TcpProxy,
                                                  new_store: Callable[..., EventStore]) -> None:
    # Half-open link: no error, just silence. Timeouts turn it into an outage.
    # The driver's own timeouts stay long (30 s); the store's write timeout is what saves us.
    store = new_store(pg_url(pg_proxy.port), batch_size=50, flush_interval_s=0.02, retry_max_s=0.2,
                      write_timeout_s=0.3)
    await store.start()
    for i in range(100):
        store.append(ev(i))
    await store.flush(timeout=30)
    await pg_proxy.cut("hang")
    for i in range(100, 300):
        store.append(ev(i))
    await wait_for(lambda: not store.status()["db_ok"], "the silent database counted as down")
    await pg_proxy.cut("refuse")  # drop the stalled links, as a real server restart would
    await pg_proxy.restore()
    await store.flush(timeout=60)
    assert seqs(await db_rows(pg_url())) == list(range(300))


@pytest.mark.postgres
async def test_close_while_the_database_hangs_is_bounded_and_keeps_everything(
        pg_proxy: TcpProxy, tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    store = EventStore(pg_url(pg_proxy.port), journal_path=journal, batch_size=50, flush_interval_s=0.02,
                       spill_after_s=3600, write_timeout_s=0.5, close_timeout_s=0.5)
    await store.start()
    for i in range(20):
        store.append(ev(i))
    await store.flush(timeout=30)
    await pg_proxy.cut("hang")
    for i in range(20, 520):
        store.append(ev(i))
    await asyncio.sleep(0.1)  # let the writer get stuck on the silent database
    async with asyncio.timeout(20):  # a hang here would be the bug; the real bound is a few seconds
        await store.close()
    assert len(journal.read_bytes().splitlines()) == 500
    await pg_proxy.cut("refuse")
    await pg_proxy.restore()
    again = EventStore(pg_url(), journal_path=journal)
    await again.start()
    try:
        await again.flush(timeout=30)
    finally:
        await again.close()
    assert seqs(await db_rows(pg_url())) == list(range(520))


@pytest.mark.postgres
async def test_tiny_buffer_spills_to_the_journal_and_replays_in_order(
        pg_proxy: TcpProxy, new_store: Callable[..., EventStore], tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    store = new_store(pg_url(pg_proxy.port), batch_size=20, flush_interval_s=0.02, buffer_limit=10,
                      spill_after_s=3600, retry_max_s=0.1, journal_path=journal)
    await store.start()
    for i in range(30):
        store.append(ev(i))
    await store.flush(timeout=30)
    await pg_proxy.cut()
    for i in range(30, 530):
        store.append(ev(i, data={"caller_name": "李四"}))
    await wait_for(lambda: store.status()["journaled"] == 490, "all but buffer_limit events on disk")
    lines = journal.read_bytes().splitlines()
    assert len(lines) == 490
    assert json.loads(lines[0])["e"]["data"] == {"seq": 30, "caller_name": "李四"}  # the oldest spill first
    assert store.status()["pending"] == 500
    await pg_proxy.restore()
    for i in range(530, 560):  # appended while the journal is being replayed: they queue behind it
        store.append(ev(i))
    await store.flush(timeout=60)
    assert seqs(await db_rows(pg_url())) == list(range(560))
    assert journal.read_bytes() == b""
    assert store.status()["journaled"] == 0


async def test_sqlite_outage_spills_and_recovers(tmp_path: Path,
                                                 new_store: Callable[..., EventStore]) -> None:
    # For SQLite "unreachable" means the file cannot be opened (volume not mounted yet).
    url = f"sqlite+aiosqlite:///{tmp_path / 'later' / 'events.db'}"
    store = new_store(url, batch_size=20, flush_interval_s=0.02, buffer_limit=5, spill_after_s=3600,
                      retry_max_s=0.1)
    await store.start()
    for i in range(100):
        store.append(ev(i))
    await wait_for(lambda: store.status()["journaled"] == 95 and store.status()["last_error"] is not None,
                   "spilled past buffer_limit")
    assert "unable to open database file" in store.status()["last_error"]
    (tmp_path / "later").mkdir()
    await create_events_table(url)
    await store.flush(timeout=30)
    assert seqs(await db_rows(url)) == list(range(100))


@pytest.mark.postgres
async def test_a_long_outage_moves_memory_to_disk(pg_proxy: TcpProxy,
                                                  new_store: Callable[..., EventStore]) -> None:
    clock = FakeClock(1_000.0)
    store = new_store(pg_url(pg_proxy.port), flush_interval_s=0.02, retry_max_s=0.05, spill_after_s=2.0,
                      clock=clock)
    await store.start()
    await pg_proxy.cut()
    for i in range(50):
        store.append(ev(i))
    await wait_for(lambda: store.status()["last_error"] is not None, "outage noticed")
    assert store.status()["journaled"] == 0  # a blip: memory is enough
    clock.jump(2.5)
    for i in range(50, 60):
        store.append(ev(i))
    await wait_for(lambda: store.status()["journaled"] == 50, "the old events now on disk")
    st = store.status()
    assert st["pending"] == 60 and st["lag_s"] == 2.5 and st["db_ok"] is False
    await pg_proxy.restore()
    await store.flush(timeout=30)
    assert seqs(await db_rows(pg_url())) == list(range(60))
    assert store.status()["lag_s"] == 0.0


@pytest.mark.postgres
async def test_flush_gives_up_after_its_timeout_while_the_database_is_down(
        pg_proxy: TcpProxy, new_store: Callable[..., EventStore]) -> None:
    store = new_store(pg_url(pg_proxy.port), flush_interval_s=0.02, retry_max_s=0.05)
    await store.start()
    await pg_proxy.cut()
    store.append(ev(0))
    with pytest.raises(TimeoutError):
        await store.flush(timeout=0.3)
    assert store.status()["pending"] == 1
    await pg_proxy.restore()
    await store.flush(timeout=30)
    assert seqs(await db_rows(pg_url())) == [0]


@pytest.mark.postgres
async def test_close_during_an_outage_leaves_events_for_the_next_start(
        pg_proxy: TcpProxy, tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    first = EventStore(pg_url(pg_proxy.port), journal_path=journal, flush_interval_s=0.02, retry_max_s=0.05,
                       close_timeout_s=0.5, spill_after_s=3600)
    await first.start()
    for i in range(10):
        first.append(ev(i))
    await first.flush(timeout=30)
    await pg_proxy.cut()
    for i in range(10, 200):
        first.append(ev(i))
    await first.close()
    assert len(journal.read_bytes().splitlines()) == 190
    first.append(ev(200))  # a late callback after close: kept, not lost
    assert len(journal.read_bytes().splitlines()) == 191
    await pg_proxy.restore()

    second = EventStore(pg_url(), journal_path=journal)
    await second.start()
    try:
        await second.flush(timeout=30)
    finally:
        await second.close()
    assert seqs(await db_rows(pg_url())) == list(range(201))
    assert journal.read_bytes() == b""


async def test_a_killed_process_loses_nothing_it_had_journaled(store_url: str, tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    dead_db = f"sqlite+aiosqlite:///{tmp_path / 'unmounted' / 'x.db'}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(HERE / "crashy.py"), dead_db, str(journal), "3000",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line, (await proc.stderr.read()).decode()
        assert json.loads(line)["journaled"] == 3000
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # The lock died with the process: a new store takes the journal over and replays it.
    store = EventStore(store_url, journal_path=journal)
    await store.start()
    try:
        await store.flush(timeout=60)
    finally:
        await store.close()
    rows = await db_rows(store_url)
    assert seqs(rows) == list(range(3000))
    assert {r["data"]["caller_name"] for r in rows} == {"张三"}


async def test_a_second_store_on_the_same_journal_is_refused(store_url: str, tmp_path: Path,
                                                             new_store: Callable[..., EventStore]) -> None:
    first = new_store(store_url)
    await first.start()
    second = EventStore(store_url, journal_path=tmp_path / "journal.jsonl")
    with pytest.raises(JournalLocked, match="in use by another process"):
        await second.start()
    await second.close()


# --- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize(("bad", "reason"), [
    (Event(kind="x" * 41, ts=1.0), "kind is 41 characters, the limit is 40"),
    (Event(kind="", ts=1.0), "kind must be a non-empty string"),
    (Event(kind="call.new", ts=math.nan), "ts must be a finite number"),
    (Event(kind="call.new", ts=1.0, call_id="c\x00"), "call_id contains a NUL character"),
    (Event(kind="call.new", ts=1.0, agent_id="\ud800"), "agent_id is not valid Unicode text"),
    (Event(kind="call.new", ts=1.0, queue=7), "queue must be a string"),  # type: ignore[arg-type]
    (Event(kind="call.new", ts=1.0, data=["a"]), "data must be a dict"),  # type: ignore[arg-type]
    (Event(kind="call.new", ts=1.0, data={"x": math.inf}), "Out of range float values are not JSON compliant"),
])
async def test_a_bad_event_is_set_aside_and_the_rest_flow(store_url: str, tmp_path: Path, bad: Event,
                                                          reason: str,
                                                          new_store: Callable[..., EventStore]) -> None:
    store = new_store(store_url, batch_size=10, flush_interval_s=0.02)
    await store.start()
    for i in range(5):
        store.append(ev(i))
    store.append(bad)  # never raises
    for i in range(5, 10):
        store.append(ev(i))
    await store.flush(timeout=30)
    assert seqs(await db_rows(store_url)) == list(range(10))
    rejected = [json.loads(x) for x in (tmp_path / "journal.jsonl.rejected").read_text().splitlines()]
    assert len(rejected) == 1 and reason in rejected[0]["error"]
    st = store.status()
    assert st["rejected_total"] == 1 and st["written_total"] == 10 and st["pending"] == 0


async def test_unreadable_journal_lines_are_kept_aside(store_url: str, tmp_path: Path,
                                                       new_store: Callable[..., EventStore]) -> None:
    journal = tmp_path / "journal.jsonl"
    good = [Pending(key=f"prev:{i}", at=5.0, event=ev(i)) for i in range(4)]
    journal.write_bytes(encode(good[0]) + b"{not json\n" + encode(good[1]) + b'{"k":"prev:x"}\n'
                        + encode(good[2]) + b"\n" + encode(good[3]) + b'{"k":"prev:9","at":1,"e":{"ki')
    store = new_store(store_url, journal_path=journal)
    await store.start()
    await store.flush(timeout=30)
    assert seqs(await db_rows(store_url)) == [0, 1, 2, 3]
    rejected = [json.loads(x) for x in journal.with_name("journal.jsonl.rejected").read_text().splitlines()]
    assert [r["error"].split(":")[0] for r in rejected] == [
        "not JSON", "missing append time 'at'", "empty line", "not JSON"]
    assert rejected[3]["event"] == '{"k":"prev:9","at":1,"e":{"ki\n'
    assert journal.read_bytes() == b""
    assert store.status()["rejected_total"] == 4


def test_store_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        EventStore("sqlite:///x.db", journal_path=tmp_path / "j", batch_size=0)
    with pytest.raises(ValueError, match="flush_interval_s"):
        EventStore("sqlite:///x.db", journal_path=tmp_path / "j", flush_interval_s=0)


async def test_flush_before_start_is_a_clear_error(store_url: str, tmp_path: Path) -> None:
    store = EventStore(store_url, journal_path=tmp_path / "j")
    store.append(ev(0))
    with pytest.raises(RuntimeError, match="before start"):
        await store.flush(timeout=1)
    await store.close()


async def test_status_before_any_contact_is_not_ok(tmp_path: Path,
                                                   new_store: Callable[..., EventStore]) -> None:
    store = new_store(pg_url(port=1, db="nowhere"), retry_max_s=0.05)
    assert store.status()["db_ok"] is False and store.status()["pending"] == 0
    await store.start()
    await wait_for(lambda: store.status()["last_error"] is not None, "the idle ping failed")
    assert store.status()["db_ok"] is False


async def test_journal_codec_round_trips_and_explains_bad_lines(tmp_path: Path) -> None:
    plain = Pending(key="run:1", at=12.5, event=ev(1, data={"名字": "王五"}))
    assert "王五".encode() in encode(plain)  # readable, not \\u-escaped
    odd = Pending(key="run:2", at=13.0, event=ev(2, data={"half_emoji": "\ud83d"}))
    journal = Journal(tmp_path / "j.jsonl")
    journal.open()
    journal.append([plain, odd])
    got = journal.read(0, 10)
    assert got.items == [plain, odd] and got.bad == [] and got.offset == journal.size()
    assert journal.read(got.offset, 10).items == []
    journal.close()


async def test_events_appended_to_a_store_that_never_started_are_kept(store_url: str, tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    store = EventStore(store_url, journal_path=journal)
    for i in range(1000):
        store.append(ev(i))
    await store.close()  # e.g. the server failed to start after features had begun appending
    assert len(journal.read_bytes().splitlines()) == 1000
    again = EventStore(store_url, journal_path=journal)
    await again.start()
    try:
        await again.flush(timeout=30)
    finally:
        await again.close()
    assert seqs(await db_rows(store_url)) == list(range(1000))


async def test_flush_after_close_says_so(store_url: str, tmp_path: Path) -> None:
    store = EventStore(store_url, journal_path=tmp_path / "j")
    await store.start()
    await store.close()
    store.append(ev(0))  # kept in the journal, see test_close_during_an_outage...
    with pytest.raises(RuntimeError, match="closed"):
        await store.flush(timeout=1)


def test_backoff_doubles_to_its_ceiling_and_resets() -> None:
    b = Backoff(0.05, 0.5)
    assert [b.failure() for _ in range(6)] == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
    b.success()
    assert b.failure() == 0.05


@pytest.mark.parametrize(("exc", "bad_row"), [
    (sa_exc.DataError("INSERT", {}, Exception("value too long")), True),
    (sa_exc.IntegrityError("INSERT", {}, Exception("not null")), True),
    (sa_exc.StatementError("bind failed", "INSERT", {}, TypeError("not JSON")), True),
    (sa_exc.DBAPIError("INSERT", {}, _Coded("22P02")), True),  # invalid text representation
    (sa_exc.DBAPIError("INSERT", {}, _Coded("23502")), True),  # not-null violation
    (sa_exc.DBAPIError("INSERT", {}, _Coded("57P01")), False),  # admin shutdown
    (sa_exc.DBAPIError("INSERT", {}, _Coded("42P01")), False),  # table missing: migrate, then retry
    (sa_exc.OperationalError("INSERT", {}, Exception("database is locked")), False),
    (ConnectionRefusedError(111, "refused"), False),
    (TimeoutError(), False),
])
def test_bad_rows_are_told_from_outages(exc: BaseException, bad_row: bool) -> None:
    assert is_data_error(exc) is bad_row


async def test_events_wait_for_a_database_that_is_not_migrated_yet(db_url: str,
                                                                  new_store: Callable[..., EventStore]) -> None:
    # Deploy order mistakes happen: the server starts before `ctiserver db migrate`.
    store = new_store(db_url, flush_interval_s=0.02, retry_max_s=0.05)
    await store.start()
    for i in range(40):
        store.append(ev(i))
    await wait_for(lambda: store.status()["last_error"] is not None, "the missing table noticed")
    st = store.status()
    assert st["db_ok"] is False and st["pending"] == 40
    assert "events" in st["last_error"]  # no such table: events / relation "events" does not exist
    await create_events_table(db_url)
    await store.flush(timeout=30)
    assert seqs(await db_rows(db_url)) == list(range(40))


@pytest.mark.postgres
async def test_an_outage_is_logged_once_not_per_retry(pg_proxy: TcpProxy, new_store: Callable[..., EventStore],
                                                      caplog: pytest.LogCaptureFixture) -> None:
    store = new_store(pg_url(pg_proxy.port), flush_interval_s=0.01, retry_max_s=0.02)
    await store.start()
    store.append(ev(0))
    await store.flush(timeout=30)
    caplog.set_level("INFO", logger="ctiserver.store")
    await pg_proxy.cut()
    for i in range(1, 30):
        store.append(ev(i))
        await asyncio.sleep(0.02)  # long enough for several retries
    await pg_proxy.restore()
    await store.flush(timeout=30)
    messages = [r.getMessage() for r in caplog.records if r.name == "ctiserver.store"]
    assert sum("database unreachable" in m for m in messages) == 1
    assert sum("database reachable again" in m for m in messages) == 1
    assert seqs(await db_rows(pg_url())) == list(range(30))
