"""KPI fact sink benchmark: what the event store's fact sink costs per event, in CPU seconds of this process.

A live feed (calls of benchmarks/kpi_bench.py's generator, in time order, so the calls interleave) goes into
the events table in small batches, as the store writes it under a load test (a flush every 0.2 s at a few
hundred events/s: 20-50 events per batch). Three runs over the same rows, each on a fresh database:

* events only: the batch's insert, no sink (the floor);
* recompute (the baseline, the sink before 2026-12-04): every batch reads back all the events of the calls
  it touched, folds them, and replaces their facts; each agent's intervals are recomputed from its events;
* FactSink: folds the batch into the folds it keeps (kpi/factstore.py).

Both sinks must leave the same facts tables; the benchmark checks it. Not a test: nothing asserts a time.

    .venv/bin/python benchmarks/factsink_bench.py [--calls 3000] [--batch 25] [--pg]
    .venv/bin/python benchmarks/factsink_bench.py --partitions 13      # plain vs month-partitioned tables
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.kpi_bench import generate
from ctiserver.events import Kind
from ctiserver.kpi.builder import CALL_KINDS
from ctiserver.kpi.factsql import FACT_TABLES, agent_intervals, call_facts, leg_facts
from ctiserver.kpi.factstore import FactSink, refresh_agent, refresh_calls
from ctiserver.store.batch import COLUMNS, insert_events
from ctiserver.store.engine import migrate
from ctiserver.store.partitions import ensure_months
from ctiserver.store.schema import events, metadata

Sink = Callable[[AsyncConnection, Sequence[Mapping[str, Any]]], Awaitable[None]]


async def recompute(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """The sink before the incremental fold: read every touched call's events back, refold, replace."""
    calls = {r["call_id"] for r in rows if r.get("call_id") is not None and r.get("kind") in CALL_KINDS}
    agents: dict[str, float] = {}
    for r in rows:
        if r.get("kind") == Kind.AGENT_STATE and r.get("agent_id") is not None:
            agents[r["agent_id"]] = min(agents.get(r["agent_id"], r["ts"]), r["ts"])
    if calls:
        await refresh_calls(conn, calls)
    for agent, since in sorted(agents.items()):
        await refresh_agent(conn, agent, since)


def feed(calls: int) -> list[dict[str, Any]]:
    rows = sorted(generate(calls), key=lambda r: r[0])
    out = []
    for i, r in enumerate(rows):
        d = dict(zip(COLUMNS, r, strict=True))
        d["event_key"] = f"bench-{i}"
        d["data"] = json.loads(d["data"])
        out.append(d)
    return out


async def run(url: str, rows: list[dict[str, Any]], batch: int, sink: Sink | None,
              warm: int, months: int = 0) -> tuple[float, list[Any], float]:
    """Write `rows` in batches through `sink`; the CPU seconds (and wall seconds) of the batches after the
    first `warm` rows. `months` > 0: the tables as migrated (PostgreSQL: partitioned by month, migration 0016),
    with that many month partitions up to the feed's month, as retention would keep."""
    if months:
        await drop_pg(url)
        url = await pg_url()
        await migrate(url)
    engine = create_async_engine(url)
    try:
        if months:
            await ensure_months(engine, rows[0]["ts"] - (months - 1) * 31 * 86400, ahead=months)
        else:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.drop_all, tables=[events, *FACT_TABLES])
                await conn.run_sync(metadata.create_all, tables=[events, *FACT_TABLES])
        cpu = wall = 0.0
        for i in range(0, len(rows), batch):
            if i == warm:
                cpu, wall = time.process_time(), time.perf_counter()
            chunk = rows[i:i + batch]
            async with engine.begin() as conn:
                await insert_events(conn, chunk)
                if sink is not None:
                    await sink(conn, chunk)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return cpu, await snapshot(engine), wall
    finally:
        await engine.dispose()


async def snapshot(engine: AsyncEngine) -> list[Any]:
    out = []
    async with engine.connect() as conn:
        for t, order in ((call_facts, [call_facts.c.call_id]), (leg_facts, [leg_facts.c.call_id, leg_facts.c.seq]),
                         (agent_intervals, [agent_intervals.c.agent, agent_intervals.c.t_start])):
            out.append([{k: v for k, v in r.items() if k != "id"}
                        for r in (await conn.execute(select(t).order_by(*order))).mappings()])
    return out


async def pg_url() -> str:
    import asyncpg

    name = f"ctibench_factsink_{os.getpid()}"
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def drop_pg(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=3000)
    p.add_argument("--batch", type=int, default=25, help="events per batch (transaction)")
    p.add_argument("--pg", action="store_true", help="PostgreSQL at 127.0.0.1:5432 (default: a SQLite file)")
    p.add_argument("--warm", type=float, default=0.3,
                   help="share of the feed written before the clock starts (agents and calls already known, "
                        "as in a server that has run a while)")
    p.add_argument("--partitions", type=int, default=0, metavar="MONTHS",
                   help="PostgreSQL only: FactSink on unpartitioned tables, then on tables partitioned by month "
                        "(this many months made) instead of the three runs; prints wall time too")
    args = p.parse_args()
    rows = feed(args.calls)
    if args.partitions:
        await partitions(args, rows)
        return
    warm = int(len(rows) * args.warm) // args.batch * args.batch
    if args.pg:
        url = await pg_url()
    else:
        url = f"sqlite+aiosqlite:////tmp/factsink_bench_{os.getpid()}.db"
    print(f"{len(rows):,} events of {args.calls:,} calls, batches of {args.batch}, the last {len(rows) - warm:,} "
          f"timed, {url.split(':')[0]}; "
          f"load average {tuple(round(x, 2) for x in os.getloadavg())}")
    try:
        floor, _, _ = await run(url, rows, args.batch, None, warm)
        old, old_facts, _ = await run(url, rows, args.batch, recompute, warm)
        new_sink = FactSink()
        new, new_facts, _ = await run(url, rows, args.batch, new_sink, warm)
    finally:
        if args.pg:
            await drop_pg(url)
        else:
            os.unlink(url.split("///", 1)[1])
    n = len(rows) - warm
    print(f"{'run':<28}{'CPU s':>8}{'events/CPU s':>14}{'sink us/event':>15}")
    for name, cpu in (("events only (floor)", floor), ("recompute sink (baseline)", old), ("FactSink", new)):
        sink_us = (cpu - floor) / n * 1e6
        print(f"{name:<28}{cpu:>8.2f}{n / cpu:>14,.0f}{sink_us if cpu is not floor else 0:>15.1f}")
    print(f"sink CPU, FactSink / recompute: {(new - floor) / (old - floor):.2f} "
          f"({(old - floor) / max(new - floor, 1e-9):.1f}x less); whole batch: {old / new:.2f}x the events/CPU s; "
          f"calls read back: {new_sink.reloads}; same facts: {old_facts == new_facts}")


async def partitions(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    """FactSink on the plain tables vs the same on month-partitioned ones (every statement that names no
    time, such as the sink's look-ups by call id, probes each partition's index)."""
    warm = int(len(rows) * args.warm) // args.batch * args.batch
    url = await pg_url()
    n = len(rows) - warm
    print(f"{len(rows):,} events of {args.calls:,} calls, batches of {args.batch}, the last {n:,} timed, "
          f"postgresql; load average {tuple(round(x, 2) for x in os.getloadavg())}")
    try:
        floor, _, floor_wall = await run(url, rows, args.batch, None, warm)
        plain, plain_facts, plain_wall = await run(url, rows, args.batch, FactSink(), warm)
        part, part_facts, part_wall = await run(url, rows, args.batch, FactSink(), warm, args.partitions)
        pfloor, _, pfloor_wall = await run(url, rows, args.batch, None, warm, args.partitions)
    finally:
        await drop_pg(url)
    print(f"{'run':<44}{'CPU s':>8}{'wall s':>8}{'events/wall s':>15}")
    for name, cpu, wall in (("events only, plain tables", floor, floor_wall),
                            ("FactSink, plain tables (baseline)", plain, plain_wall),
                            (f"events only, {args.partitions} month partitions", pfloor, pfloor_wall),
                            (f"FactSink, {args.partitions} month partitions", part, part_wall)):
        print(f"{name:<44}{cpu:>8.2f}{wall:>8.2f}{n / wall:>15,.0f}")
    print(f"wall, partitioned / plain: events only {pfloor_wall / floor_wall:.2f}, with the sink "
          f"{part_wall / plain_wall:.2f}; same facts: {plain_facts == part_facts}")


if __name__ == "__main__":
    asyncio.run(main())
