"""Seeded chaos: events keep coming while PostgreSQL is cut, goes silent and comes back at random.

Whatever the schedule and settings, every event must end up in the database once,
in the order it was appended. The seeds make a failure reproducible.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from ctiserver.events import Event
from ctiserver.store.writer import EventStore

from .conftest import pg_url
from .tcpproxy import TcpProxy
from .test_writer import db_rows, seqs


@pytest.mark.postgres
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_outages_lose_and_reorder_nothing(seed: int, pg_proxy: TcpProxy, tmp_path: Path) -> None:
    rng = random.Random(seed)
    store = EventStore(pg_url(pg_proxy.port), journal_path=tmp_path / "journal.jsonl",
                       batch_size=rng.choice([3, 7, 50, 200]), flush_interval_s=rng.choice([0.005, 0.05]),
                       buffer_limit=rng.choice([5, 100, 100000]), spill_after_s=rng.choice([0.0, 0.2, 3600]),
                       retry_max_s=0.1, write_timeout_s=0.3)
    await store.start()
    total = 0
    try:
        for _ in range(12):
            for _ in range(rng.randint(0, 300)):
                store.append(Event(kind="chaos", ts=1e9 + total, call_id=f"c{total % 9}",
                                   data={"seq": total, "名": "测试"}))
                total += 1
                if rng.random() < 0.02:
                    await asyncio.sleep(0)
            action = rng.choice(["refuse", "hang", "restore", "restore", "wait"])
            if action == "refuse":
                await pg_proxy.cut("refuse")
            elif action == "hang":
                await pg_proxy.cut("hang")
            elif action == "restore":
                await pg_proxy.cut("refuse")  # drop links stalled by a hang, as a server restart would
                await pg_proxy.restore()
            await asyncio.sleep(rng.choice([0.0, 0.05, 0.2]))
        await pg_proxy.cut("refuse")
        await pg_proxy.restore()
        await store.flush(timeout=120)
    finally:
        await store.close()
    assert seqs(await db_rows(pg_url())) == list(range(total))
    assert store.status()["pending"] == 0
