"""Retention at scale: a month of 1,000,000 calls' events and facts removed by DROP (partitions) vs DELETE.

The month is the one benchmarks/kpi_month_bench.py builds (the events `kpi_bench.generate` makes, folded
into facts by the fact builder; `--cache` reuses the folded facts). Two PostgreSQL databases get the same
rows:

* partitioned: migrated to the newest revision (month partitions, migration 0016), the month's partitions
  made by `store.partitions.ensure_months`; the retention job's own `drop_before` removes the month
  (DETACH + DROP of each table's partitions that end by the bound),
* baseline: the tables as they were before (unpartitioned, `metadata.create_all`): one
  `DELETE FROM t WHERE <time> < bound` per table, each committed (what a retention without partitions does),
  then the `VACUUM` that reclaims the dead rows (autovacuum's work later, if not ours now).

It prints each table's time both ways and the ratio. The local month (Asia/Shanghai) starts 8 hours into
the previous UTC month, so the month's rows sit in two UTC partitions: both go. Not a test: nothing here
asserts a time.

    .venv/bin/python benchmarks/retention_bench.py --cache /tmp/month.pickle       # 1,000,000 calls
    .venv/bin/python benchmarks/retention_bench.py --calls 20000 --no-events
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kpi_bench import COLUMNS, START, _cols, generate
from kpi_month_bench import END, make_facts

from ctiserver.kpi.factsql import ROLLUP_TABLES, agent_intervals, call_facts, leg_facts
from ctiserver.store.engine import make_engine, migrate
from ctiserver.store.partitions import TABLES, drop_before, ensure_months, month_of, month_start
from ctiserver.store.schema import events, metadata

DB_PART, DB_BASE = "ctitest_retention_bench_part", "ctitest_retention_bench_base"
BOUND = month_start(month_of(END + 86400 * 2))  # the UTC month after the generated month: everything before goes
FACT_TABLES = (call_facts, leg_facts, agent_intervals)


async def fresh(name: str) -> str:
    admin = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def drop_db(name: str) -> None:
    admin = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def load(name: str, facts: dict[str, list[tuple[object, ...]]], calls: int, with_events: bool) -> int:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database=name)
    n_events = 0
    try:
        for table in FACT_TABLES:
            records = facts[table.name]
            for i in range(0, len(records), 200_000):
                await conn.copy_records_to_table(table.name, records=records[i:i + 200_000], columns=_cols(table))
        if with_events:
            chunk: list[tuple[object, ...]] = []
            for row in generate(calls):
                chunk.append(row)
                if len(chunk) == 200_000:
                    await conn.copy_records_to_table("events", records=chunk, columns=COLUMNS)
                    n_events += len(chunk)
                    chunk = []
            if chunk:
                await conn.copy_records_to_table("events", records=chunk, columns=COLUMNS)
                n_events += len(chunk)
        for table in (*FACT_TABLES, events):
            await conn.execute(f"VACUUM ANALYZE {table.name}")
    finally:
        await conn.close()
    return n_events


async def counts(engine: AsyncEngine) -> dict[str, int]:
    out = {}
    async with engine.connect() as conn:
        for spec in TABLES:
            out[spec.table] = int((await conn.execute(text(f"SELECT count(*) FROM {spec.table}"))).scalar() or 0)
    return out


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--cache", type=Path, help="the folded facts (a pickle, kpi_month_bench.py's format)")
    ap.add_argument("--no-events", dest="events", action="store_false", help="facts only")
    ap.add_argument("--keep", action="store_true", help="keep the two databases afterwards")
    ap.add_argument("--migration", action="store_true",
                    help="instead: time migration 0016 on a database at 0015 holding the month")
    args = ap.parse_args(argv)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    facts, fold_s = make_facts(args.calls, args.cache)
    print(f"facts: {len(facts[call_facts.name]):,} calls, {len(facts[leg_facts.name]):,} legs, "
          f"{len(facts[agent_intervals.name]):,} agent intervals (folded in {fold_s:.0f} s)")
    if args.migration:
        url = await fresh(DB_BASE)
        try:
            await migrate(url, "0015")
            n_events = await load(DB_BASE, facts, args.calls, args.events)
            t = time.perf_counter()
            await migrate(url)
            print(f"migration 0016 of {n_events:,} events and the month's facts: {time.perf_counter() - t:.1f} s")
        finally:
            if not args.keep:
                await drop_db(DB_BASE)
        return 0

    part_url = await fresh(DB_PART)
    await migrate(part_url)
    part = make_engine(part_url, statement_timeout_s=None)
    await ensure_months(part, START)  # the generated month's partitions (and the next ones)
    base_url = await fresh(DB_BASE)
    base = make_engine(base_url, statement_timeout_s=None)
    async with base.begin() as c:
        await c.run_sync(metadata.create_all, tables=[events, *FACT_TABLES, *ROLLUP_TABLES])
    try:
        for name in (DB_PART, DB_BASE):
            t = time.perf_counter()
            n_events = await load(name, facts, args.calls, args.events)
            print(f"[{name}] loaded {n_events:,} events and the facts in {time.perf_counter() - t:.0f} s")
        before = await counts(part)
        assert before == await counts(base), "the two databases must hold the same rows"
        print(f"rows: {', '.join(f'{k} {v:,}' for k, v in before.items() if v)}")

        drop_s: dict[str, float] = {}
        for spec in TABLES:
            t = time.perf_counter()
            gone = await drop_before(part, spec, BOUND)
            drop_s[spec.table] = time.perf_counter() - t
            assert all(d.rows is None or d.what.endswith("_default") for d in gone)
        delete_s: dict[str, float] = {}
        vacuum_s: dict[str, float] = {}
        raw = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database=DB_BASE)
        try:
            for spec in TABLES:
                t = time.perf_counter()
                await raw.execute(f"DELETE FROM {spec.table} WHERE {spec.column} < {BOUND // spec.unit}")
                delete_s[spec.table] = time.perf_counter() - t
                # what the DELETE leaves to (auto)vacuum: the dead rows and their index entries
                t = time.perf_counter()
                await raw.execute(f"VACUUM {spec.table}")
                vacuum_s[spec.table] = time.perf_counter() - t
        finally:
            await raw.close()
        left = await counts(part)
        assert left == await counts(base) and not any(left.values()), left

        print(f"\n{'table':<20} {'rows':>12} {'DETACH+DROP':>12} {'DELETE':>9} {'+VACUUM':>9} "
              f"{'DELETE/DROP':>12} {'(+VACUUM)':>10}")
        for spec in TABLES:
            n = before[spec.table]
            if not n:
                continue
            d, x, v = drop_s[spec.table], delete_s[spec.table], vacuum_s[spec.table]
            print(f"{spec.table:<20} {n:>12,} {d * 1000:>9.0f} ms {x:>7.2f} s {v:>7.2f} s {x / d:>11.1f}x "
                  f"{(x + v) / d:>9.1f}x")
        rows = sum(before.values())
        d, x, v = sum(drop_s.values()), sum(delete_s.values()), sum(vacuum_s.values())
        print(f"{'all (incl. empty)':<20} {rows:>12,} {d * 1000:>9.0f} ms {x:>7.2f} s {v:>7.2f} s {x / d:>11.1f}x "
              f"{(x + v) / d:>9.1f}x")
    finally:
        await part.dispose()
        await base.dispose()
        if not args.keep:
            await drop_db(DB_PART)
            await drop_db(DB_BASE)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
