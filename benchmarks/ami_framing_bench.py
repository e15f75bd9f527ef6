"""Benchmark (not a test): AMI framing throughput, ours vs panoramisk 1.4, same bytes, same run.

Run: .venv/bin/python tests/ami/bench_framing.py   (the lead may move it under benchmarks/)
Both parsers get the recorded Asterisk 22 call flow repeated 2000 times in 4 KiB reads.
Ours also decodes whole frames (no lost CJK characters), keeps repeated headers and
indexes them case-insensitively, and returns responses too (panoramisk dispatches events
only), so the frame counts differ; compare the time per frame.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from panoramisk.ami_protocol import AMIProtocol

from ctiserver.ami.framing import AmiFramer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fake AMI server lives with the tests
DATA = Path(__file__).resolve().parents[1] / "tests" / "ami" / "data" / "call_flow.ami"


def main(repeat: int = 2000, rounds: int = 7) -> None:
    banner, _, body = DATA.read_bytes().partition(b"\r\n")
    stream = banner + b"\r\n" + body * repeat
    chunks = [stream[i:i + 4096] for i in range(0, len(stream), 4096)]

    def ours() -> int:
        framer, n = AmiFramer(), 0
        for chunk in chunks:
            n += len(framer.feed(chunk))
        return n

    def panoramisk() -> int:
        count = [0]

        class Factory:
            def dispatch(self, message: object) -> None:
                count[0] += 1

        proto = AMIProtocol()
        proto.connection_made(None)
        proto.factory = Factory()
        proto.encoding = "utf-8"
        for chunk in chunks:
            proto.data_received(chunk)
        return count[0]

    per_frame: dict[str, float] = {}
    for fn in (ours, panoramisk):
        fn()  # warm up
        best, frames = float("inf"), 0
        for _ in range(rounds):
            t0 = time.process_time()
            frames = fn()
            best = min(best, time.process_time() - t0)
        per_frame[fn.__name__] = best / frames
        print(f"{fn.__name__:10s} {frames:6d} frames  {len(stream) / 1e6:.1f} MB  {best * 1000:7.1f} ms CPU  "
              f"{best / frames * 1e6:5.1f} us/frame  {frames / best:9,.0f} frames/s")
    print(f"ratio ours/panoramisk per frame: {per_frame['ours'] / per_frame['panoramisk']:.2f}")


if __name__ == "__main__":
    main()


async def _end_to_end(n_events: int = 50_000, rounds: int = 3) -> None:
    """Socket to callback: the fake AMI server writes n events; time until the last reaches the callback."""
    import asyncio

    from panoramisk import Manager

    from ctiserver.ami.client import AmiClient
    from tests.ami.conftest import FakeAmi, frame

    blob = b"".join(frame(("Event", "UserEvent"), ("UserEvent", "bench"), ("Seq", str(i)),
                          ("CallerIDName", "国网客户张三")) for i in range(n_events))
    results: dict[str, float] = {}
    for name in ("ours", "panoramisk") * rounds:  # interleaved, best of `rounds`: the box is shared
        fake = FakeAmi()
        await fake.start()
        done = asyncio.Event()
        seen = [0]

        def on_event(msg: object, *_: object, seen: list[int] = seen, done: asyncio.Event = done) -> None:
            seen[0] += 1
            if seen[0] == n_events:
                done.set()

        if name == "ours":
            client = AmiClient(fake.client_config(), on_event)
            await client.start()
            await client.wait_connected(5)
        else:
            manager = Manager(host="127.0.0.1", port=fake.port, username="cti", secret=fake.secret,
                              ping_delay=3600, ping_interval=3600)
            manager.register_event("UserEvent", on_event)
            await manager.connect()
            await fake.login_seen.wait()
        await asyncio.sleep(0.1)
        t0 = time.perf_counter()
        for i in range(0, len(blob), 65536):
            fake.conns[-1].send(blob[i:i + 65536])
            await asyncio.sleep(0)
        await asyncio.wait_for(done.wait(), 60)
        results[name] = min(results.get(name, float("inf")), time.perf_counter() - t0)
        if name == "ours":
            await client.close()
        else:
            manager.close()
        await fake.stop()
    for name, best in results.items():
        print(f"{name:10s} {n_events} events socket->callback in {best * 1000:7.1f} ms  "
              f"{n_events / best:9,.0f} events/s (best of {rounds})")
    print(f"ratio ours/panoramisk end to end: {results['ours'] / results['panoramisk']:.2f}")


if __name__ == "__main__":
    import asyncio

    asyncio.run(_end_to_end())
