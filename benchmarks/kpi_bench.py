"""KPI benchmark: N calls of events (default 1,000,000 over 30 days) in PostgreSQL, then reports.

Prints the load time, the time the fact builder takes to fold the month's events into facts (what
the event store's fact sink spreads over the month), a baseline (one aggregate scan of the same
month's events: the least a report straight over the events must pay), the one-month report from
the facts by half hour, by day+tier and in total, one day's report, and the report/baseline ratio.
Not a test: nothing here asserts a time.

    .venv/bin/python benchmarks/kpi_bench.py                # 1,000,000 calls
    .venv/bin/python benchmarks/kpi_bench.py --calls 50000  # a quick run
    .venv/bin/python benchmarks/kpi_bench.py --reuse        # skip generation if the data is there
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctiserver.events import Event
from ctiserver.kpi.builder import FactBuilder, intervals_of
from ctiserver.kpi.compute import fetch_facts_parallel
from ctiserver.kpi.config import KpiConfig
from ctiserver.kpi.facts import Window
from ctiserver.kpi.factsql import FACT_TABLES, agent_intervals, call_facts, leg_facts
from ctiserver.kpi.metrics import assemble
from ctiserver.kpi.report import build_report
from ctiserver.store.schema import events, metadata

DB = "ctitest_kpi_bench"
TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 10, 1, tzinfo=TZ).timestamp()
DAYS = 30
TIERS = (("normal", 0.85), ("priority", 0.08), ("vip", 0.05), ("blacklist", 0.02))
QUEUES = ("billing", "fault", "outage", "complaint", "business")
AGENTS = 400
COLUMNS = ("ts", "kind", "call_id", "agent_id", "queue", "tier", "server", "event_key", "data")

Row = tuple[float, str, str | None, str | None, str | None, str | None, str | None, str | None, str]


def _shape(hour: float) -> float:
    """Relative arrival intensity by local hour: two peaks (morning, afternoon), quiet nights."""
    if 9 <= hour < 12 or 15 <= hour < 19:
        return 3.0
    if 8 <= hour < 22:
        return 1.6
    return 0.25


def generate(calls: int, seed: int = 95598) -> Iterator[Row]:
    """Events of `calls` inbound calls spread over the month, with agent states and some outbound."""
    rng = random.Random(seed)
    weights = [_shape((i % 48) / 2) for i in range(DAYS * 48)]
    total_w = sum(weights)
    tier_names = [t for t, _ in TIERS]
    tier_w = [w for _, w in TIERS]
    n = 0
    for slot, w in enumerate(weights):
        count = round(calls * w / total_w) if slot < len(weights) - 1 else calls - n
        count = min(count, calls - n)
        base = START + slot * 1800
        for _ in range(count):
            n += 1
            cid = f"c{n}"
            t = base + rng.random() * 1800
            caller = f"13{rng.randrange(10**9):09d}"
            tier = rng.choices(tier_names, tier_w)[0]
            queue = rng.choice(QUEUES)
            yield (t, "call.new", cid, None, None, None, "pbx1", None,
                   json.dumps({"caller_num": caller, "direction": "inbound"}))
            yield (t + 1, "ivr.start", cid, None, None, None, "pbx1", None, json.dumps({"caller": caller}))
            t_ivr = t + 1 + rng.expovariate(1 / 40)
            if rng.random() < 0.12:
                yield (t_ivr, "ivr.end", cid, None, None, None, "pbx1", None, '{"outcome": "self_service"}')
                continue
            yield (t_ivr, "ivr.end", cid, None, None, None, "pbx1", None, '{"outcome": "agent"}')
            yield (t_ivr, "acd.enqueue", cid, None, queue, tier, "pbx1", None, json.dumps({"caller": caller}))
            wait = rng.expovariate(1 / 25)
            patience = rng.expovariate(1 / 90)
            if patience < wait:
                yield (t_ivr + patience, "acd.abandon", cid, None, queue, tier, "pbx1", None,
                       json.dumps({"wait_s": round(patience, 3)}))
                continue
            agent = f"a{rng.randrange(AGENTS)}"
            t_off = t_ivr + max(0.0, wait - 6)
            t_ans = t_ivr + wait
            talk = rng.expovariate(1 / 150)
            hold = rng.choice((0.0, 0.0, 0.0, rng.expovariate(1 / 30)))
            t_end = t_ans + talk + hold
            wrap = 30 + rng.random() * 40
            yield (t_off, "acd.offer", cid, agent, queue, tier, "pbx1", None, '{"ring_timeout_s": 12}')
            yield (t_off, "agent.state", cid, agent, queue, tier, "pbx1", None, '{"state": "ringing"}')
            yield (t_ans, "acd.answer", cid, agent, queue, tier, "pbx1", None,
                   json.dumps({"wait_s": round(wait, 3), "ring_s": round(t_ans - t_off, 3)}))
            yield (t_ans, "agent.state", cid, agent, queue, tier, "pbx1", None, '{"state": "on_call"}')
            yield (t_end, "acd.complete", cid, agent, queue, tier, "pbx1", None,
                   json.dumps({"talk_s": round(talk, 3), "hold_s": round(hold, 3)}))
            yield (t_end, "agent.state", cid, agent, queue, tier, "pbx1", None, '{"state": "wrap_up"}')
            yield (t_end + wrap, "agent.state", None, agent, None, None, "pbx1", None, '{"state": "available"}')
            if rng.random() < 0.3:
                yield (t_end + 5, "disposition", cid, agent, queue, tier, "pbx1", None,
                       json.dumps({"category": queue, "resolved": rng.random() < 0.85}))


class FactFolder:
    """Folds the generated rows into fact records as they stream past (a call's rows come together)."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.legs: list[tuple[object, ...]] = []
        self.states: dict[str, list[tuple[float, int, str | None, str | None]]] = {}
        self._cur: str | None = None
        self._b = FactBuilder()
        self._n = 0
        self.seconds = 0.0

    def add(self, row: Row) -> None:
        t = time.perf_counter()
        ts, kind, cid, agent, queue, tier, server, _key, data = row
        self._n += 1
        if kind == "agent.state":
            d = json.loads(data)
            self.states.setdefault(agent or "", []).append((ts, self._n, d.get("state"), d.get("reason")))
        else:
            if cid != self._cur:
                self._flush()
                self._cur = cid
            self._b.add(Event(kind, ts, cid, agent, queue, tier, server, json.loads(data)))
        self.seconds += time.perf_counter() - t

    def _flush(self) -> None:
        for f in self._b.call_facts():
            r = f.row()
            self.calls.append(tuple(r[c] for c in _cols(call_facts)))
        for g in self._b.leg_facts():
            r = g.row()
            self.legs.append(tuple(r[c] for c in _cols(leg_facts)))
        self._b = FactBuilder()

    def intervals(self) -> list[tuple[object, ...]]:
        self._flush()
        cols = _cols(agent_intervals)
        return [tuple(iv.row()[c] for c in cols) for agent, marks in self.states.items()
                for iv in intervals_of(agent, marks)]


def _cols(table: Any) -> list[str]:
    return [c.name for c in table.columns if c.name != "id"]


async def prepare(calls: int, reuse: bool, db: str = DB) -> tuple[str, int, float, float]:
    admin = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", db)
        if not exists:
            await admin.execute(f'CREATE DATABASE "{db}"')
    finally:
        await admin.close()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{db}"
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database=db)
    try:
        if reuse:
            have = await conn.fetchval(
                "SELECT count(DISTINCT call_id) FROM events WHERE kind = 'call.new'"
            ) if await conn.fetchval("SELECT to_regclass('events')") else 0
            have_facts = await conn.fetchval("SELECT to_regclass('call_facts')")
            if have == calls and have_facts:
                rows = await conn.fetchval("SELECT count(*) FROM events")
                return url, int(rows), 0.0, 0.0
        await conn.execute("DROP TABLE IF EXISTS events, call_facts, leg_facts, agent_intervals")
    finally:
        await conn.close()
    engine = create_async_engine(url)
    async with engine.begin() as c:
        await c.run_sync(metadata.create_all, tables=[events, *FACT_TABLES])
        await c.execute(text("DROP INDEX IF EXISTS ix_events_ts, ix_events_call, ix_events_kind_ts"))
    await engine.dispose()
    t0 = time.perf_counter()
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database=db)
    rows = 0
    folder = FactFolder()
    try:
        batch: list[Row] = []
        for row in generate(calls):
            folder.add(row)
            batch.append(row)
            if len(batch) >= 200_000:
                await conn.copy_records_to_table("events", records=batch, columns=COLUMNS)
                rows += len(batch)
                batch = []
        if batch:
            await conn.copy_records_to_table("events", records=batch, columns=COLUMNS)
            rows += len(batch)
        await conn.execute("CREATE INDEX ix_events_ts ON events (ts)")
        await conn.execute("CREATE INDEX ix_events_call ON events (call_id)")
        await conn.execute("CREATE INDEX ix_events_kind_ts ON events (kind, ts)")
        await conn.execute("ANALYZE events")
        ivs = folder.intervals()
        for table, records in ((call_facts, folder.calls), (leg_facts, folder.legs), (agent_intervals, ivs)):
            cols = _cols(table)
            for i in range(0, len(records), 200_000):
                await conn.copy_records_to_table(table.name, records=records[i:i + 200_000], columns=cols)
            await conn.execute(f"ANALYZE {table.name}")
    finally:
        await conn.close()
    return url, rows, time.perf_counter() - t0 - folder.seconds, folder.seconds


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--reuse", action="store_true", help="keep the data of a previous run of the same size")
    ap.add_argument("--db", default=DB, help=f"PostgreSQL database to use (default {DB})")
    args = ap.parse_args(argv)
    if args.calls < 1:
        ap.error("--calls must be at least 1")
    url, rows, load_s, fold_s = await prepare(args.calls, args.reuse, args.db)
    print(f"events: {rows:,} rows for {args.calls:,} calls over {DAYS} days "
          f"(load + index + facts COPY: {load_s:.1f} s{', reused' if load_s == 0 else ''})")
    if fold_s:
        print(f"fact builder: {fold_s:.1f} s for {rows:,} events ({rows / fold_s:,.0f} events/s, "
              f"JSON parsing included)")
    cfg = KpiConfig()
    end = START + DAYS * 86400
    engine = create_async_engine(url)
    try:
        async with engine.connect() as c:
            t = time.perf_counter()
            await c.execute(text("SELECT count(*), sum(ts), count(DISTINCT call_id) FROM events "
                                 "WHERE ts >= :a AND ts < :b"), {"a": START, "b": end})
            baseline = time.perf_counter() - t
        print(f"baseline (one aggregate scan of the month, distinct calls): {baseline:.2f} s")
        results = {}
        for by in (["halfhour"], ["day", "tier"], []):
            t = time.perf_counter()
            report = await build_report(engine, cfg, START, end, by, now=end)
            took = time.perf_counter() - t
            results[",".join(by) or "total"] = took
            tot = report["total"]
            print(f"report by {','.join(by) or 'nothing (totals)':<12} {took:7.2f} s  rows={len(report['rows']):>5}"
                  f"  offered={tot['calls_offered']:,} SL={tot['service_level']} ASA={tot['asa_s']}s"
                  f"  staffing half hours={len(report['staffing'])}")
        # Before: the same report with every family straight over the events (the SQL facts replaced)
        t = time.perf_counter()
        win = Window.build(START, end, end, cfg.zone(), 3 * 86400.0)
        old = await fetch_facts_parallel(engine, cfg, win, ["tier"])
        assemble(old, cfg, win, ["halfhour"])
        before = time.perf_counter() - t
        print(f"before (the report by half hour over the raw events): {before:.2f} s = "
              f"{before / results['halfhour']:.1f}x the facts-based report")
        day0 = START + 14 * 86400
        t = time.perf_counter()
        await build_report(engine, cfg, day0, day0 + 86400, ["halfhour"], now=end)
        day_s = time.perf_counter() - t
        print(f"one day by half hour: {day_s * 1000:.0f} ms")
        ratio = results["halfhour"] / baseline if baseline else float("nan")
        print(f"one-month report by half hour: {results['halfhour']:.2f} s = {ratio:.2f}x the baseline scan "
              f"of the events; {args.calls / results['halfhour']:,.0f} calls/s")
    finally:
        await engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
