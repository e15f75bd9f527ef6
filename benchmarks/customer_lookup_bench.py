"""Customer lookups per call, in CPU seconds of this process: the IVR's `customer_by_caller` and the screen
pop's `IvrCustomerLookup.by_phone` (the record again, the area's outage, the recent contacts) for each call.

Runs over the same callers in the same process, alternated, best of each: the baseline reads every record
from the tables (a `RecordCache` with a TTL of 0, what the provider did before), then the default cache (the
pop reads the caller the IVR read seconds before). Callers: the sample hotline's customers and as many unknown numbers.
Not a test: nothing asserts a time.

    .venv/bin/python benchmarks/customer_lookup_bench.py [--calls 2000] [--pg]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.factsink_bench import drop_pg, pg_url
from ctiserver.clock import FakeClock
from ctiserver.customers.data import RecordCache, SqlDataProvider, load_sample_data
from ctiserver.customers.lookup import IvrCustomerLookup
from ctiserver.store.schema import metadata

CONFIG = Path(__file__).resolve().parents[1] / "config"
NOW = 1795395600.0


async def calls(engine: AsyncEngine, numbers: list[str], ttl_s: float) -> tuple[float, RecordCache]:
    clock = FakeClock(NOW)
    provider = SqlDataProvider(engine, records=RecordCache(ttl_s=ttl_s))
    pop = IvrCustomerLookup(provider, engine, clock)
    cpu = time.process_time()
    for number in numbers:
        await provider.lookup("customer_by_caller", {"number": number}, clock.now())  # the IVR
        clock.jump(2.0)
        await pop.by_phone(number)  # the agent's screen pop, seconds later
        clock.jump(1.0)
    return time.process_time() - cpu, provider.records


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3, help="alternated runs of each; the best is printed")
    p.add_argument("--pg", action="store_true", help="PostgreSQL at 127.0.0.1:5432 (default: a SQLite file)")
    args = p.parse_args()
    url = await pg_url() if args.pg else f"sqlite+aiosqlite:////tmp/customer_bench_{os.getpid()}.db"
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(metadata.create_all)
        sample = await load_sample_data(engine, CONFIG, NOW)
        known = [ph for c in sample.customers for ph in c.phones]
        rng = random.Random(18)
        numbers = [rng.choice(known) if rng.random() < 0.5 else f"139{rng.randrange(10**8):08d}"
                   for _ in range(args.calls)]
        print(f"{args.calls:,} calls (half from {len(known)} known numbers), {url.split(':')[0]}; "
              f"load average {tuple(round(x, 2) for x in os.getloadavg())}")
        await calls(engine, numbers[:200], 0.0)  # warm the pool and the driver's statement caches
        bases, cacheds = [], []
        for _ in range(args.rounds):  # alternated: the machine's load drifts
            bases.append((await calls(engine, numbers, 0.0))[0])
            took, cache = await calls(engine, numbers, RecordCache().ttl_s)
            cacheds.append(took)
        base, cached = min(bases), min(cacheds)
        print(f"{'run (best of ' + str(args.rounds) + ')':<34}{'CPU s':>8}{'ms per call':>13}")
        print(f"{'every record from the tables':<34}{base:>8.2f}{base / args.calls * 1e3:>13.3f}")
        print(f"{'RecordCache (TTL 10 s)':<34}{cached:>8.2f}{cached / args.calls * 1e3:>13.3f}")
        print(f"cached / baseline: {cached / base:.2f} ({base / cached:.2f}x less CPU); "
              f"record hits {cache.hits}, misses {cache.misses}")
    finally:
        await engine.dispose()
        if args.pg:
            await drop_pg(url)
        else:
            os.unlink(url.split("///", 1)[1])


if __name__ == "__main__":
    asyncio.run(main())
