"""Month KPI report at scale: 1,000,000 calls' facts in SQLite and in PostgreSQL, then reports.

The facts are made by the fact builder itself (kpi/builder.py, fed the month of events that
benchmarks/kpi_bench.py generates: tiers, five queues, abandons, IVR self-service, two daily peaks,
flat hours and quiet nights) and bulk-inserted into the facts tables; no events table is needed.
For each database it times, in the same run:

* before: the report straight over the facts tables (the query the report used before the rollups),
* the first report after the load (it builds the missing half-hour rollups, kpi/rollup.py),
* after: the same report again, from the rollups (what every later report pays),
* one day by half hour, from the rollups,

and prints after/before. Not a test: nothing here asserts a time. Targets (issue 14): the month by
half hour < 5 s, a day < 200 ms.

    .venv/bin/python benchmarks/kpi_month_bench.py                 # 1,000,000 calls, both databases
    .venv/bin/python benchmarks/kpi_month_bench.py --calls 50000 --db sqlite
    .venv/bin/python benchmarks/kpi_month_bench.py --cache /tmp/month.pickle   # fold once, rerun quickly
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kpi_bench import DAYS, START, FactFolder, _cols, generate

from ctiserver.kpi.config import KpiConfig
from ctiserver.kpi.factsql import ROLLUP_TABLES, agent_intervals, call_facts, leg_facts
from ctiserver.kpi.report import build_report
from ctiserver.store.schema import events, metadata

PG_DB = "ctitest_kpi_month_bench"
END = START + DAYS * 86400
DAY0 = START + 14 * 86400


def make_facts(calls: int, cache: Path | None = None) -> tuple[dict[str, list[tuple[object, ...]]], float]:
    """The month's facts, folded by the fact builder (or read from `cache`, a previous run's pickle)."""
    if cache is not None and cache.exists():
        with cache.open("rb") as f:
            cached = pickle.load(f)  # our own file from an earlier run of this script
        if cached["calls"] == calls:
            return cached["facts"], cached["fold_s"]
    folder = FactFolder()
    t = time.perf_counter()
    for row in generate(calls):
        folder.add(row)
    ivs = folder.intervals()
    facts = {call_facts.name: folder.calls, leg_facts.name: folder.legs, agent_intervals.name: ivs}
    fold_s = time.perf_counter() - t
    if cache is not None:
        with cache.open("wb") as f:
            pickle.dump({"calls": calls, "facts": facts, "fold_s": fold_s}, f)
    return facts, fold_s


async def load_sqlite(path: Path, facts: dict[str, list[tuple[object, ...]]]) -> str:
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_async_engine(url)
    async with engine.begin() as c:
        await c.run_sync(metadata.create_all, tables=[events, call_facts, leg_facts, agent_intervals, *ROLLUP_TABLES])
    await engine.dispose()
    db = sqlite3.connect(path)
    try:
        for table in (call_facts, leg_facts, agent_intervals):
            cols = _cols(table)
            db.executemany(f"INSERT INTO {table.name} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                           facts[table.name])
        db.commit()
        db.execute("ANALYZE")
    finally:
        db.close()
    return url


async def load_pg(facts: dict[str, list[tuple[object, ...]]]) -> str:
    admin = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{PG_DB}"')
    finally:
        await admin.close()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_DB}"
    engine = create_async_engine(url)
    async with engine.begin() as c:
        await c.run_sync(metadata.create_all, tables=[events, call_facts, leg_facts, agent_intervals, *ROLLUP_TABLES])
    await engine.dispose()
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database=PG_DB)
    try:
        for table in (call_facts, leg_facts, agent_intervals):
            records = facts[table.name]
            for i in range(0, len(records), 200_000):
                await conn.copy_records_to_table(table.name, records=records[i:i + 200_000], columns=_cols(table))
            await conn.execute(f"VACUUM ANALYZE {table.name}")
    finally:
        await conn.close()
    return url


async def timed(f: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = await f()
    return time.perf_counter() - t, out


async def bench(name: str, url: str, calls: int) -> dict[str, float]:
    cfg = KpiConfig()
    engine: AsyncEngine = create_async_engine(url)
    out: dict[str, float] = {}
    try:
        def month(rollups: bool) -> Callable[[], Awaitable[Any]]:
            async def run() -> Any:
                return await build_report(engine, cfg, START, END, ["halfhour"], now=END + 86400, rollups=rollups)
            return run

        def day(rollups: bool) -> Callable[[], Awaitable[Any]]:
            async def run() -> Any:
                return await build_report(engine, cfg, DAY0, DAY0 + 86400, ["halfhour"], now=END + 86400,
                                          rollups=rollups)
            return run

        out["before"], old = await timed(month(False))
        out["first"], _ = await timed(month(True))
        out["after"], new = await timed(month(True))
        out["day"], _ = await timed(day(True))
        out["day_before"], _ = await timed(day(False))
        same = old["total"] == new["total"] and old["rows"] == new["rows"]
        tot = new["total"]
        print(f"[{name}] month by half hour, before (straight over the facts): {out['before']:6.2f} s")
        print(f"[{name}] first report (builds the rollups):                {out['first']:6.2f} s")
        print(f"[{name}] month by half hour, after (rollups):                {out['after']:6.2f} s "
              f"= {out['before'] / out['after']:.1f}x faster; same report: {same}")
        print(f"[{name}] one day by half hour: {out['day'] * 1000:.0f} ms (before: {out['day_before'] * 1000:.0f} ms)")
        print(f"[{name}] offered={tot['calls_offered']:,} SL={tot['service_level']} ASA={tot['asa_s']} s "
              f"abandon={tot['abandon_rate']} ({calls:,} calls generated)")
    finally:
        await engine.dispose()
    return out


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--db", choices=("both", "sqlite", "postgresql"), default="both")
    ap.add_argument("--cache", type=Path, help="keep the folded facts in this file (a pickle) for the next run")
    args = ap.parse_args(argv)
    if args.calls < 1:
        ap.error("--calls must be at least 1")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    facts, fold_s = make_facts(args.calls, args.cache)
    print(f"fact builder: {len(facts[call_facts.name]):,} call facts, {len(facts[leg_facts.name]):,} leg facts, "
          f"{len(facts[agent_intervals.name]):,} agent intervals in {fold_s:.1f} s")
    if args.db in ("both", "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            url = await load_sqlite(Path(tmp) / "facts.db", facts)
            print(f"[sqlite] bulk insert: {time.perf_counter() - t:.1f} s")
            await bench("sqlite", url, args.calls)
    if args.db in ("both", "postgresql"):
        t = time.perf_counter()
        url = await load_pg(facts)
        print(f"[postgresql] COPY: {time.perf_counter() - t:.1f} s")
        await bench("postgresql", url, args.calls)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
