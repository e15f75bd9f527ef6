"""IVR benchmark: concurrent FastAGI IVR sessions over loopback, and key press -> next prompt time.

Each simulated Asterisk connects to the real FastAGI listener (ctiserver/agi/server.py) over
127.0.0.1, sends agi_* headers and answers commands as a caller of the sample hotline
tree would (13800000002: outage notice, press 1 for Mandarin, 1 for the bill with the
arrears read out by TTS, 0 for an agent, then a rating of 5). The runtime walks the
real tree with the in-memory sample data; every prompt is a TTS cache hit (the cache
is warmed first, and the one cold render is timed for reference).

Measured, client side: sessions completed per second with N at once, and the time
from the reply carrying a key press to the next `STREAM FILE` command (the next prompt
starting). Baseline, same run and same sockets: a handler that sends the same number of
STREAM FILE/WAIT FOR DIGIT commands with no IVR logic (the AGI round trip alone).
The fake callers share the event loop with the server, so figures are conservative.
Not a test: nothing here asserts a time.

Run: .venv/bin/python benchmarks/ivr_bench.py [--sessions 50 200] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

from ctiserver.agi.channel import AgiChannel
from ctiserver.agi.server import FastAGIServer
from ctiserver.clock import FakeClock
from ctiserver.customers.data import MemoryDataProvider, read_sample_data
from ctiserver.events import Event
from ctiserver.ivr.runtime import IvrRuntime, QueueRequest
from ctiserver.ivr.settings import IvrSettings
from ctiserver.ivr.tree import load_tree
from ctiserver.ivr.tts import Tts, TtsSettings

CONFIG = Path(__file__).resolve().parents[1] / "config"
NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
KEYS = ["1", "1", "0", "5"]


async def fake_asterisk(port: int, n: int, latencies: list[float]) -> int:
    """One call: headers, then reply to commands; returns how many commands were answered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    headers = {"agi_network": "yes", "agi_network_script": "ivr", "agi_request": f"agi://127.0.0.1:{port}/ivr",
               "agi_channel": f"PJSIP/trunk-{n:08x}", "agi_uniqueid": f"1700000000.{n}",
               "agi_callerid": "13800000002"}
    writer.write("".join(f"{k}: {v}\n" for k, v in headers.items()).encode() + b"\n")
    await writer.drain()
    keys = list(KEYS)
    pressed_at: float | None = None
    answered = 0
    try:
        while True:
            line = (await reader.readline()).decode()
            if not line:
                return answered
            cmd = line.strip()
            answered += 1
            if cmd.startswith("STREAM FILE"):
                if pressed_at is not None:
                    latencies.append(time.perf_counter() - pressed_at)
                    pressed_at = None
                reply = "200 result=0 endpos=16000"
            elif cmd.startswith("WAIT FOR DIGIT"):
                if not keys:
                    writer.write(b"HANGUP\n")
                    await writer.drain()
                    return answered
                reply = f"200 result={ord(keys.pop(0))}"
                pressed_at = time.perf_counter()
            elif cmd.startswith("GET VARIABLE"):
                reply = f"200 result=1 (1700000000.{n})"
            elif cmd == "HANGUP":
                writer.write(b"200 result=1\n")
                await writer.drain()
                return answered
            else:
                reply = "200 result=0"
            writer.write(reply.encode() + b"\n")
            await writer.drain()
    finally:
        writer.close()


async def run_sessions(server: FastAGIServer, sessions: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    start = time.perf_counter()
    answered = await asyncio.gather(*(fake_asterisk(server.port, i, latencies) for i in range(sessions)))
    for _ in range(100000):  # the server side finishes just after the last reply
        if not server.active_sessions:
            break
        await asyncio.sleep(0.001)
    return time.perf_counter() - start, latencies, sum(answered)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def walker_us(tree: object) -> float:
    """CPU cost of the pure engine per input, for the same call path."""
    from ctiserver.ivr.walker import Digits, IvrWalker, LookupResult, Queued

    customer = {"account": "9100000002", "name": "李秀英", "tier": "normal", "area": "城东区", "verified": True}
    outage = {"active": True, "area": "城东区", "reason": "10千伏线路故障", "expected_restore": "今天13点"}
    account = {"account": "9100000002", "name": "李秀英", "arrears": 86.5, "due_date": "2026-12-15"}
    script = [LookupResult(customer), LookupResult(outage), Digits("1"), Digits("1"), LookupResult(account),
              Digits("0"), Queued("1002"), Digits("5")]
    n = 2000
    t0 = time.perf_counter()
    for i in range(n):
        w = IvrWalker(tree, {"call_id": str(i), "caller": "13800000002"}, NOW)  # type: ignore[arg-type]
        w.start()
        for inp in script:
            w.on_input(inp)
    return (time.perf_counter() - t0) / (n * (len(script) + 1)) * 1e6


async def main(session_counts: list[int], rounds: int) -> None:
    tree = load_tree(CONFIG / "ivr" / "hotline.yaml")
    data = MemoryDataProvider(read_sample_data(CONFIG, NOW))
    with tempfile.TemporaryDirectory(prefix="ivr-bench-") as tmp:
        tts = Tts(TtsSettings(workers=2), Path(tmp))
        events: list[Event] = []

        async def handoff(chan: AgiChannel, req: QueueRequest) -> str:
            await asyncio.sleep(0)
            return "1002"

        rt = IvrRuntime({"hotline": tree}, data, tts, events.append, handoff, IvrSettings(), FakeClock(NOW))
        # warm the TTS cache with one call (and time one cold render for reference)
        t0 = time.perf_counter()
        await tts.sound("基准测试冷启动提示音。", "zh")
        cold_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        await tts.sound("第二条冷渲染提示音，用于计时。", "zh")
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(1000):
            await tts.sound("第二条冷渲染提示音，用于计时。", "zh")
        hit = (time.perf_counter() - t0) / 1000

        server = FastAGIServer("127.0.0.1", 0, rt.handle, command_timeout_s=30)
        await server.start()
        await run_sessions(server, 1)
        renders_after_warmup = tts.stats.renders

        async def plain(chan: AgiChannel) -> None:
            """Baseline: the same command pattern with no IVR logic."""
            await chan.execute("GET VARIABLE CHANNEL(linkedid)")
            await chan.execute("ANSWER")
            while True:
                await chan.execute('STREAM FILE cti/x "0123456789*#"')
                await chan.execute("WAIT FOR DIGIT 6000")

        base = FastAGIServer("127.0.0.1", 0, plain, command_timeout_s=30)
        await base.start()

        print(f"IVR benchmark: {platform.python_implementation()} {platform.python_version()}, "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
        print(f"TTS: first cold render {cold_first * 1000:.0f} ms (worker start), cold render {cold * 1000:.0f} ms, "
              f"cache hit {hit * 1e6:.1f} µs")
        print(f"{'sessions':>8} {'calls/s':>9} {'cmds/s':>9} {'key->prompt p50':>16} {'p95':>8} {'p99':>8} "
              f"{'baseline p50':>13} {'ratio':>6} {'base calls/s':>12}")
        for n in session_counts:
            for _ in range(rounds):
                events.clear()
                elapsed, lat, cmds = await run_sessions(server, n)
                b_elapsed, b_lat, _ = await run_sessions(base, n)
                base_rate = n / b_elapsed
                done = sum(1 for e in events if e.kind == "survey.rating")
                p50, b50 = pct(lat, 50), pct(b_lat, 50)
                print(f"{n:>8} {n / elapsed:>9.1f} {cmds / elapsed:>9.0f} {p50 * 1000:>13.2f} ms "
                      f"{pct(lat, 95) * 1000:>5.2f} ms {pct(lat, 99) * 1000:>5.2f} ms {b50 * 1000:>10.2f} ms "
                      f"{p50 / b50 if b50 else float('nan'):>6.2f} {base_rate:>12.1f}"
                      + ("" if done == n else f"   (only {done}/{n} calls reached the rating)"))
        print(f"walker alone (no sockets, no TTS): {walker_us(tree):.1f} µs per caller input")
        print(f"TTS renders during the timed runs: {tts.stats.renders - renders_after_warmup} (all prompts cache hits)")
        print(f"mean events per call: {statistics.mean([len(events) / max(1, session_counts[-1])]):.1f}")
        await server.close()
        await base.close()
        await tts.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, nargs="+", default=[1, 10, 50, 200])
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    asyncio.run(main(args.sessions, args.rounds))
