"""Issue 12 item 4: megabytes of junk on the AMI socket neither stall the event loop nor flood the log.

Once, 2.7 MB of lines without a colon froze the server for about 11 s, wrote 900k WARNING lines,
and made the event store report its database unreachable (its writes timed out behind the frozen
loop). Here 10 MB of junk in several shapes comes over a real socket from the fake AMI server, while
an event store on SQLite takes events, and a ticker measures how long the loop went without running
it. The lag is measured in the loop thread's CPU time between ticks: that is the work done without
yielding, which is what the framing controls; a busy machine that deschedules the whole process
makes wall-clock gaps longer but not this (they are reported). As `ctiserver serve` does after its
start, the heap built so far is frozen out of the garbage collector's way (`gc.freeze()`): otherwise
each full collection walks the whole pytest session's objects, 40-80 ms on a busy machine.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import time
from pathlib import Path

from ctiserver.ami.client import AmiClient
from ctiserver.ami.framing import AmiFramer
from ctiserver.ami.message import AmiMessage
from ctiserver.events import Event
from ctiserver.store.writer import EventStore
from tests.store.conftest import create_events_table

from .conftest import FakeAmi, frame
from .test_client import until

MAX_LAG_S = 0.100  # the loop never goes longer than this without running other tasks


def junk(total: int) -> bytes:
    """`total` bytes of the shapes that hurt: lines without a colon (with and without blank lines
    between them), tiny frames, events full of bad lines, invalid UTF-8, an oversize frame."""
    rnd = random.Random(12)
    shapes = [
        b"no colon here\r\n" * 20_000,  # 300 KB of lines and no blank line: one oversize frame
        b"x\r\n\r\n" * 60_000,  # a frame per line, none with a header
        b"garbage\n\n" * 30_000,
        (b"Event: Junk\r\n" + b"line without colon\r\n" * 4 + b"\r\n") * 3_000,
        bytes(rnd.getrandbits(8) for _ in range(200_000)),
        (b"Event: Bad\r\nCallerIDName: \xff\xfe\r\n\r\n") * 5_000,
    ]
    out = bytearray()
    while len(out) < total:
        out += shapes[len(out) // 100_000 % len(shapes)]
    return bytes(out[:total])


class Ticker:
    """Wakes every `every_s` and records the longest time between two wakes: in the loop thread's CPU
    time (all work done on the loop without a yield, the garbage collector's pauses included, which are
    also recorded apart), and in wall-clock time for the report."""

    def __init__(self, every_s: float = 0.002) -> None:
        self.every_s = every_s
        self.max_cpu = 0.0
        self.max_wall = 0.0
        self.max_gc = 0.0  # longest collector pause
        self.ticks = 0
        self._gc_began = 0.0
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_began = time.thread_time()
        else:
            self.max_gc = max(self.max_gc, time.thread_time() - self._gc_began)

    async def _run(self) -> None:
        cpu, wall = time.thread_time(), time.monotonic()
        while True:
            await asyncio.sleep(self.every_s)
            c, w = time.thread_time(), time.monotonic()
            self.max_cpu = max(self.max_cpu, c - cpu)
            self.max_wall = max(self.max_wall, w - wall - self.every_s)
            self.ticks += 1
            cpu, wall = c, w

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        gc.callbacks.remove(self._on_gc)


async def test_a_10mb_junk_burst_neither_stalls_the_loop_nor_floods_the_log(
        fake_ami: FakeAmi, tmp_path: Path, caplog) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    await create_events_table(url)
    store = EventStore(url, flush_interval_s=0.02, journal_path=tmp_path / "journal.jsonl")
    await store.start()
    seen: list[AmiMessage] = []  # only the last event: the server keeps none either (a recorder of
    received = 0  # every event would hold 59k frames, and the collector would scan them all)

    def on_event(msg: AmiMessage) -> None:
        nonlocal received
        received += 1
        seen[:] = [msg]

    client = AmiClient(fake_ami.client_config(), on_event, rng=random.Random(7))
    burst = junk(10 * 1024 * 1024)
    ticker = Ticker()
    caplog.set_level(logging.INFO)
    await client.start()
    gc.collect()
    gc.freeze()  # as run_until_signalled does once the server is up
    try:
        await client.wait_connected(5)
        conn = fake_ami.conns[-1]

        async def keep_appending() -> None:  # the server keeps recording calls meanwhile
            n = 0
            while True:
                store.append(Event("test.tick", ts=1_700_000_000.0 + n, data={"n": n}))
                n += 1
                await asyncio.sleep(0.01)

        producer = asyncio.create_task(keep_appending())
        ticker.start()
        began = time.monotonic()
        for i in range(0, len(burst), 1024 * 1024):
            conn.writer.write(burst[i:i + 1024 * 1024])
            await conn.writer.drain()
        # the junk may end inside a frame: a blank line ends it, and the stream resyncs
        conn.send(b"\r\n\r\n" + frame(("Event", "UserEvent"), ("UserEvent", "after-the-junk")))
        await until(lambda: bool(seen) and seen[-1].event == "UserEvent", limit_s=120)
        took = time.monotonic() - began
        await ticker.stop()
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        await store.flush(timeout=10)
        status = client.status()
        assert client.connected and fake_ami.logins == 1  # the same session carried on
    finally:
        gc.unfreeze()
        await client.close()
        await store.close()
    print(f"10 MB of junk framed in {took:.2f} s; longest stall {ticker.max_cpu * 1000:.1f} ms CPU "
          f"(collector pauses up to {ticker.max_gc * 1000:.1f} ms), {ticker.max_wall * 1000:.1f} ms wall, "
          f"over {ticker.ticks} ticks")
    assert ticker.ticks > 10
    assert ticker.max_cpu < MAX_LAG_S, f"the loop ran {ticker.max_cpu * 1000:.0f} ms without yielding"
    assert status["frames_dropped"] > 100_000  # it was all seen, and dropped
    assert received > 10_000  # the junk's frames that do have an Event header went through
    framing = [r for r in caplog.records if r.name == "ctiserver.ami.framing"]
    # per kind of problem: one line for the first, one summary with the count (at the session's end)
    assert len(framing) <= 8, [r.getMessage()[:120] for r in framing]
    assert any(" more in " in r.getMessage() for r in framing)
    assert not [r for r in caplog.records if "unreachable" in r.getMessage()], "the store kept its database"
    assert store.status()["written_total"] > 0


def test_summaries_count_every_bad_line_and_frame() -> None:
    """What the summary lines add up to is what was dropped (nothing is lost from the count)."""
    framer = AmiFramer()
    data = (b"x\r\n\r\n" * 1000 + b"Event: A\r\nbad one\r\nbad two\r\nUniqueid: 1\r\n\r\n" * 500
            + b"Event: B\r\nCallerIDName: \xff\r\n\r\n" * 10)
    got = []
    for i in range(0, len(data), 777):
        got += framer.feed(data[i:i + 777])
    assert [m.event for m in got] == ["A"] * 500 + ["B"] * 10
    assert (framer.dropped, framer.bad_lines, framer.bad_utf8) == (1000, 1000, 10)
    p = framer.problems
    assert (p.dropped.total, p.bad_lines.total, p.bad_utf8.total) == (1000, 1000, 10)
