"""Outbound benchmark: scheduler plans over a large campaign, and the store's per-attempt cost.

1. Pure scheduler: N pending contacts (default 20,000) in 3 campaigns, area and
   customer quiet hours, a frequency cap, 30 live calls. Reports ms per `plan()`
   and, as the baseline measured in the same run, the time to merely sort the same
   contacts by priority (the least any priority-ordered dialer must do).
2. Store, on SQLite (a file) and PostgreSQL (database ctitest_outbound_bench):
   `snapshot()` of N due contacts vs a plain SELECT of the same rows (and of one
   500-row page, which is what the dialer reads per round), and attempts
   written+finished per second (two transactions each: before dialing and after)
   vs a plain one-row INSERT+COMMIT per attempt.

Not a test: nothing asserts a time.

    .venv/bin/python benchmarks/outbound_bench.py [--contacts N] [--attempts N] [--no-pg]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, insert, select

from ctiserver.outbound.model import CampaignSpec, ContactIn, Dial, FrequencyCap, OutboundConfig
from ctiserver.outbound.rules import Delivery
from ctiserver.outbound.scheduler import CampaignView, ContactView, LiveAttempt, Scheduler, Snapshot, channel_id
from ctiserver.outbound.store import TABLES, OutboundStore
from ctiserver.store.engine import make_engine
from ctiserver.store.schema import metadata

NOON = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
AREAS = ["城东", "城西", "城南", "城北", "牧区"]


def site_config() -> OutboundConfig:
    return OutboundConfig.model_validate({
        "pacing": {"max_concurrent": 60, "calls_per_s": 20, "burst": 20},
        "quiet_hours": {"default": ["12:00-13:30"], "areas": {"牧区": ["12:00-15:00"]}},
        "caps": [FrequencyCap(kind="arrears_reminder", max=1, per_days=7)],
    })


def campaigns() -> list[CampaignView]:
    out = []
    for i, kind in enumerate(("outage_notice", "arrears_reminder", "survey")):
        data = {"name": f"c{i}", "kind": kind, "priority": 90 - 30 * i, "windows": ["08:00-21:00"],
                "pacing": {"max_concurrent": 20, "calls_per_s": 5, "burst": 5}}
        if kind == "outage_notice":
            data["outage"] = {"areas": AREAS, "start": "8时", "end": "12时", "reason": "检修"}
        out.append(CampaignView.from_spec(CampaignSpec.model_validate(data), f"u{i}", "running"))
    return out


def people(n: int, rng: random.Random) -> list[ContactView]:
    from ctiserver.outbound.model import parse_ranges

    quiet_choices = [(), (), (), parse_ranges("18:00-20:00"), parse_ranges("09:00-10:30")]
    return [ContactView(i, f"c{i % 3}", f"138{i:08d}", account=f"A{i % (n // 2 + 1)}", area=rng.choice(AREAS),
                        priority=10 if rng.random() < 0.05 else 0, quiet=rng.choice(quiet_choices),
                        attempts=rng.choice((0, 0, 0, 1, 2)), next_due=NOON - rng.random() * 3600)
            for i in range(1, n + 1)]


def bench_scheduler(n: int, rounds: int) -> None:
    rng = random.Random(7)
    contacts = people(n, rng)
    live = [LiveAttempt(f"c{i % 3}", n + i, f"139{i:08d}") for i in range(30)]
    deliveries = [Delivery(f"A{i}", "arrears_reminder", NOON - 86400) for i in range(0, n // 2, 7)]
    snap = Snapshot(campaigns(), contacts, live, deliveries)
    sched = Scheduler(site_config())
    t0 = time.perf_counter()
    dialed = 0
    for r in range(rounds):
        dialed += len(sched.plan(NOON + r * 0.5, snap).dials)
    plan_ms = (time.perf_counter() - t0) / rounds * 1000
    t0 = time.perf_counter()
    for _ in range(rounds):
        sorted(contacts, key=lambda c: (-c.priority, c.next_due, c.id))
    sort_ms = (time.perf_counter() - t0) / rounds * 1000
    print(f"scheduler: {n} pending contacts, 3 campaigns, {rounds} plans")
    print(f"  plan():                 {plan_ms:8.2f} ms/plan   ({dialed / rounds:.1f} dials per plan)")
    print(f"  baseline sort only:     {sort_ms:8.2f} ms        ratio plan/sort = {plan_ms / sort_ms:.1f}x")


scratch = Table("outbound_bench_scratch", MetaData(), Column("id", Integer, primary_key=True),
                Column("number", String(20)), Column("ts", Float))


async def bench_store(url: str, label: str, n: int, attempts: int) -> None:
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(lambda s: metadata.drop_all(s, tables=list(reversed(TABLES))))
        await conn.run_sync(lambda s: metadata.create_all(s, tables=list(TABLES)))
        await conn.run_sync(lambda s: scratch.drop(s, checkfirst=True))
        await conn.run_sync(lambda s: scratch.create(s))
    store = OutboundStore(engine)
    spec = CampaignSpec.model_validate({"name": "bench", "kind": "survey", "windows": ["00:00-24:00"]})
    camp = await store.create_campaign(spec, NOON)
    t0 = time.perf_counter()
    await store.add_contacts("bench", [ContactIn(f"138{i:08d}", area=AREAS[i % 5]) for i in range(n)], NOON)
    import_s = time.perf_counter() - t0
    await store.change_state("bench", "start", NOON)
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        snap = await store.snapshot(NOON, limit=n)
    snap_ms = (time.perf_counter() - t0) / reps * 1000
    t0 = time.perf_counter()
    for _ in range(reps):
        await store.snapshot(NOON, campaign="bench", limit=500)
    page_ms = (time.perf_counter() - t0) / reps * 1000
    from ctiserver.outbound.store import contacts as contacts_table

    t0 = time.perf_counter()
    for _ in range(reps):
        async with engine.connect() as conn:
            (await conn.execute(select(contacts_table))).all()
    select_ms = (time.perf_counter() - t0) / reps * 1000
    todo = snap.contacts[:attempts]
    t0 = time.perf_counter()
    for c in todo:
        cid = channel_id(camp.uid, c.id, 1)
        await store.begin_attempt(Dial("bench", c.id, c.number, 1, cid), NOON)
        await store.finish_attempt(cid, "busy", "", NOON + 1)
    ours = len(todo) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for c in todo:
        async with engine.begin() as conn:
            await conn.execute(insert(scratch).values(number=c.number, ts=NOON))
    base = len(todo) / (time.perf_counter() - t0)
    async with engine.begin() as conn:
        await conn.run_sync(lambda s: scratch.drop(s))
    await engine.dispose()
    print(f"store on {label}: {n} contacts imported in {import_s:.2f} s ({n / import_s:,.0f}/s, one transaction)")
    print(f"  snapshot() of all:      {snap_ms:8.1f} ms   plain SELECT of all {select_ms:8.1f} ms   "
          f"ratio {snap_ms / select_ms:.1f}x")
    print(f"  snapshot() of a page:   {page_ms:8.1f} ms   (what the dialer reads per round: 500 rows)")
    print(f"  attempts (write+finish): {ours:8.0f}/s   plain INSERT+COMMIT {base:8.0f}/s   "
          f"ratio {base / ours:.1f}x slower per attempt")


async def pg_url() -> str:
    name = "ctitest_outbound_bench"
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--contacts", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--attempts", type=int, default=500)
    ap.add_argument("--no-pg", action="store_true")
    args = ap.parse_args()
    bench_scheduler(args.contacts, args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        await bench_store(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}", "SQLite", args.contacts, args.attempts)
    if not args.no_pg:
        await bench_store(await pg_url(), "PostgreSQL", args.contacts, args.attempts)


if __name__ == "__main__":
    asyncio.run(main())
