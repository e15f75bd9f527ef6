"""A process that buffers events while its database is unreachable, then waits to be killed.

Run by test_writer's crash test: `python crashy.py URL JOURNAL COUNT`. It prints one
line of JSON (the store's status) once every event is fsync'd in the journal, then
sleeps until SIGKILL, so nothing after that point (no close(), no atexit) runs.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from ctiserver.events import Event
from ctiserver.store.writer import EventStore


async def main(url: str, journal: Path, count: int) -> None:
    store = EventStore(url, journal_path=journal, batch_size=50, flush_interval_s=0.01, buffer_limit=100000,
                       spill_after_s=0.0, retry_max_s=0.05)
    await store.start()
    for i in range(count):
        store.append(Event(kind="call.new", ts=1_700_000_000 + i, call_id=f"c{i}",
                           data={"seq": i, "caller_name": "张三"}))
    while store.status()["journaled"] < count:  # noqa: ASYNC110 - polling the store's own figures
        await asyncio.sleep(0.01)
    print(json.dumps(store.status()), flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])))
