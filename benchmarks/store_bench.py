"""Event store throughput: batched EventStore vs one INSERT per event, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/store_bench.py [--events 50000] [--single 3000] [--backend sqlite|postgres]

Figures printed (all measured in this run, on this machine):
  * single-row: each event in its own transaction (the naive writer) -- the floor
  * the driver alone, batches of 1000 rows per transaction, rows prepared beforehand: asyncpg
    `executemany` and asyncpg binary COPY on PostgreSQL, the stdlib's sqlite3 `executemany` on SQLite --
    the ceiling, what the database and driver can take with no event store around them
  * EventStore: append() N events then flush(), at three batch sizes (everything included: the event
    to row, the JSON text, the transaction, the commit), and its ratio to the driver alone
  * journal replay: N events spilled to disk while the database was away, then written
  * append(): the cost on the event loop per call (what an AMI callback pays)
Targets (issue 18): PostgreSQL >= 40,000 events/s, SQLite >= 25,000 events/s through EventStore.
PostgreSQL runs in a database of its own (ctibench_store_<pid>), dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import asyncpg

from ctiserver.events import Event, Kind
from ctiserver.store import jsontext
from ctiserver.store.batch import COLUMNS
from ctiserver.store.engine import make_engine
from ctiserver.store.schema import events
from ctiserver.store.writer import EventStore, insert_ignoring_duplicates

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
PG_DB: list[str] = []  # the bench database, while the PostgreSQL part runs
TICK = os.sysconf("SC_CLK_TCK")
TARGETS = {"sqlite": 25_000, "postgres": 40_000}
logging.getLogger("ctiserver.store").setLevel(logging.ERROR)  # the replay run spills on purpose


def make_event(i: int) -> Event:
    return Event(kind=Kind.IVR_NODE, ts=1_700_000_000.0 + i * 0.01, call_id=f"1700000000.{i // 20}",
                 queue="billing", tier="normal", server="pbx-a",
                 data={"node": f"menu_{i % 7}", "node_kind": "menu", "caller_name": "张三", "seq": i})


async def reset_table(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: events.drop(c, checkfirst=True))
            await conn.run_sync(lambda c: events.create(c))
    finally:
        await engine.dispose()


async def count_rows(url: str) -> int:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.exec_driver_sql("SELECT count(*) FROM events")).scalar_one())
    finally:
        await engine.dispose()


async def single_row(url: str, n: int) -> float:
    """Events/s when every event is its own INSERT and transaction."""
    await reset_table(url)
    engine = make_engine(url)
    stmt = insert_ignoring_duplicates(engine.dialect.name)
    try:
        t0 = time.perf_counter()
        for i in range(n):
            row = make_event(i).as_row()
            row["event_key"] = f"single:{i}"
            async with engine.begin() as conn:
                await conn.execute(stmt, [row])
        dt = time.perf_counter() - t0
    finally:
        await engine.dispose()
    assert await count_rows(url) == n
    return n / dt


async def backends() -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving the bench database (none on SQLite). The server
    runs on this machine: its work for us is part of what an event costs, and the wall clock on a busy
    machine says more about the other tenants than about us."""
    if not PG_DB:
        return {}
    admin = await asyncpg.connect(database="postgres", **PG)
    try:
        pids = [r["pid"] for r in await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", PG_DB[0])]
    finally:
        await admin.close()
    return {pid: cpu for pid in pids if (cpu := proc_cpu(pid)) is not None}


def proc_cpu(pid: int) -> float | None:
    """utime + stime of a process (fields 14 and 15 of /proc/<pid>/stat), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Cpu:
    """CPU seconds of this process (every thread: aiosqlite's too) plus the database's backends."""

    async def __aenter__(self) -> Cpu:
        self.seconds = 0.0
        self._db = await backends()
        self._me = time.process_time()
        return self

    async def __aexit__(self, *exc: object) -> None:
        me = time.process_time() - self._me
        db = await backends()
        self.seconds = me + sum(cpu - self._db.get(pid, 0.0) for pid, cpu in db.items())


async def batched(url: str, n: int, batch_size: int, journal: Path) -> tuple[float, float, float]:
    """(events/s through EventStore, events per CPU second, microseconds per append())."""
    await reset_table(url)
    store = EventStore(url, journal_path=journal, batch_size=batch_size, flush_interval_s=0.05)
    await store.start()
    try:
        evs = [make_event(i) for i in range(n)]
        async with Cpu() as cpu:
            t0 = time.perf_counter()
            for e in evs:
                store.append(e)
            t_append = time.perf_counter() - t0
            await store.flush(timeout=600)
            dt = time.perf_counter() - t0
    finally:
        await store.close()
    assert await count_rows(url) == n
    return n / dt, n / cpu.seconds, t_append / n * 1e6


async def replay(url: str, n: int, journal: Path) -> float:
    """Events/s written from the journal after an outage (journal filled by a store with no database)."""
    await reset_table(url)
    with tempfile.TemporaryDirectory() as d:
        dead = f"sqlite+aiosqlite:///{Path(d) / 'missing' / 'x.db'}"
        away = EventStore(dead, journal_path=journal, buffer_limit=1, retry_max_s=0.05, close_timeout_s=0)
        await away.start()
        for i in range(n):
            away.append(make_event(i))
        await away.close()  # everything it could not write is now in the journal
    store = EventStore(url, journal_path=journal, batch_size=500)
    t0 = time.perf_counter()
    await store.start()
    try:
        await store.flush(timeout=600)
        dt = time.perf_counter() - t0
    finally:
        await store.close()
    assert await count_rows(url) == n
    return n / dt


def records(n: int, prefix: str) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for i in range(n):
        r = make_event(i).as_row()
        out.append((r["ts"], r["kind"], r["call_id"], r["agent_id"], r["queue"], r["tier"], r["server"],
                    f"{prefix}:{i}", jsontext.dumps(r["data"], compact=True)))
    return out


async def driver_pg(url: str, dsn: dict[str, object], n: int, copy: bool) -> tuple[float, float]:
    """Events/s through asyncpg alone, 1000 rows per transaction (rows made before the clock starts)."""
    await reset_table(url)
    recs = records(n, "copy" if copy else "many")
    sql = (f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join(f'${i + 1}' for i in range(9))}) "
           "ON CONFLICT (event_key) DO NOTHING")
    conn = await asyncpg.connect(**dsn)
    try:
        async with Cpu() as cpu:
            t0 = time.perf_counter()
            for i in range(0, n, 1000):
                async with conn.transaction():
                    if copy:
                        await conn.copy_records_to_table("events", records=recs[i:i + 1000], columns=COLUMNS)
                    else:
                        await conn.executemany(sql, recs[i:i + 1000])
            dt = time.perf_counter() - t0
    finally:
        await conn.close()
    assert await count_rows(url) == n
    return n / dt, n / cpu.seconds


async def driver_sqlite(url: str, path: Path, n: int) -> tuple[float, float]:
    """Events/s through the stdlib's sqlite3 alone (WAL, synchronous=NORMAL as the engine sets), 1000 per commit."""
    await reset_table(url)
    recs = records(n, "many")
    sql = (f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * 9)}) "
           "ON CONFLICT (event_key) DO NOTHING")
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, n, 1000):
            with db:
                db.executemany(sql, recs[i:i + 1000])
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        db.close()
    assert await count_rows(url) == n
    return n / dt, n / cpu


async def bench(name: str, url: str, n: int, n_single: int, tmp: Path, dsn: dict[str, object] | None = None,
                path: Path | None = None) -> None:
    base = await single_row(url, n_single)
    print(f"{name:9s} single-row INSERT+COMMIT   {base:8,.0f} ev/s wall                 (floor, {n_single:,} events)")
    if dsn is not None:
        ceiling, ceiling_cpu = await driver_pg(url, dsn, n, copy=False)
        print(f"{name:9s} asyncpg executemany       {ceiling:8,.0f} ev/s wall {ceiling_cpu:8,.0f} /CPU s  "
              "(driver alone, 1000 per transaction)")
        ceiling, ceiling_cpu = await driver_pg(url, dsn, n, copy=True)
        print(f"{name:9s} asyncpg COPY              {ceiling:8,.0f} ev/s wall {ceiling_cpu:8,.0f} /CPU s  "
              "(driver alone, 1000 per transaction)")
    else:
        assert path is not None
        ceiling, ceiling_cpu = await driver_sqlite(url, path, n)
        print(f"{name:9s} sqlite3 executemany       {ceiling:8,.0f} ev/s wall {ceiling_cpu:8,.0f} /CPU s  "
              "(driver alone, 1000 per commit)")
    best = best_cpu = 0.0
    for bs in (200, 1000, 5000):
        rate, rate_cpu, per_append = await batched(url, n, bs, tmp / f"{name}-{bs}.jsonl")
        best, best_cpu = max(best, rate), max(best_cpu, rate_cpu)
        print(f"{name:9s} EventStore batch={bs:<5d}   {rate:8,.0f} ev/s wall {rate_cpu:8,.0f} /CPU s  "
              f"x{rate / base:5.1f} floor; {rate / ceiling:4.2f} (wall), {rate_cpu / ceiling_cpu:4.2f} (CPU) of the "
              f"driver alone; append() {per_append:.2f} us")
    rate = await replay(url, n, tmp / f"{name}-replay.jsonl")
    print(f"{name:9s} journal replay            {rate:8,.0f} ev/s wall                 x{rate / base:5.1f} floor, "
          f"{rate / ceiling:4.2f} of the driver alone")
    print(f"{name:9s} target >= {TARGETS[name]:,} ev/s through EventStore: best {best:,.0f}/s wall, "
          f"{best_cpu:,.0f} per CPU second (ours + the database's) -> "
          f"{'met' if best >= TARGETS[name] else 'met per CPU second only' if best_cpu >= TARGETS[name] else 'NOT met'}"
          f" (load average {os.getloadavg()[0]:.1f})")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--single", type=int, default=3_000)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    args = ap.parse_args()
    print(f"{args.events:,} events per batched run, {args.single:,} for the single-row baseline")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.backend in ("sqlite", "both"):
            await bench("sqlite", f"sqlite+aiosqlite:///{tmp / 'bench.db'}", args.events, args.single, tmp,
                        path=tmp / "bench.db")
        if args.backend in ("postgres", "both"):
            db = f"ctibench_store_{os.getpid()}"
            admin = await asyncpg.connect(database="postgres", **PG)
            try:
                await admin.execute(f'CREATE DATABASE "{db}"')
                try:
                    url = f"postgresql+asyncpg://{PG['user']}@{PG['host']}:{PG['port']}/{db}"
                    PG_DB.append(db)
                    await bench("postgres", url, args.events, args.single, tmp, dsn={**PG, "database": db})
                finally:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            finally:
                await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
