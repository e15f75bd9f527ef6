"""Benchmark (not a test): AMI ingestion, parsers side by side and the CTI's whole path, same bytes, same run.

    .venv/bin/python benchmarks/ami_ingest_bench.py [--repeat 40] [--rounds 3]

The bytes: `benchmarks/data/loadtest.ami.gz`, what Asterisk 22 sent the CTI's AMI user during
`scripts/loadtest.py --concurrent 30` (the sandbox's manager.conf filters applied), repeated
`--repeat` times with the channel ids made unique per copy, cut in 16 KiB reads (the client's
read size). Figures are CPU seconds of this process (`time.process_time`), best of `--rounds`:

* naive split: `bytes.split` + a dict per frame, nothing decoded, no guarantees: the floor;
* panoramisk 1.4's parser (`AMIProtocol.data_received`): the baseline the issue names;
* ours: `AmiFramer.feed` plus the reads the client's router makes (ActionID, Event, Response);
* end to end: a sender process writes the bytes to a socket; our `AmiClient` reads them, and the
  server's own AMI callback (`CtiServer._on_ami_event`: call tracker, `emit`, event store
  `append`) takes every event. CPU of this process only (the sender runs in its own).

Each parser's Chinese caller names are checked against the reference (the whole stream decoded at
once): a damaged name is counted. Targets (issue 18): end to end >= 50,000 events/s on one core,
ours >= 1.5x panoramisk per frame.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DATA = ROOT / "benchmarks" / "data" / "loadtest.ami.gz"
READ = 16 * 1024
_IDS = re.compile(rb"(?m)^((?:Dest|Transferer|Transferee|LocalOne|LocalTwo|Orig|Second|Bridge)?"
                  rb"(?:Uniqueid|Linkedid|BridgeUniqueid)\w*: )([^\r\n]+)")
TARGET_EPS, TARGET_RATIO = 50_000, 1.5


def load_stream(repeat: int) -> tuple[bytes, bytes]:
    """(banner + login reply, the body repeated with ids unique per copy)."""
    raw = gzip.decompress(DATA.read_bytes())
    head_end = raw.index(b"\r\n\r\n") + 4  # the banner line and the Login response
    head, body = raw[:head_end], raw[head_end:]

    def copy(k: int) -> bytes:
        return _IDS.sub(lambda m: m.group(1) + m.group(2) + b"~%d" % k, body)

    return head, b"".join([body, *(copy(k) for k in range(1, repeat))])


def reference_names(stream: bytes) -> list[str]:
    """Every CallerIDName value, from the whole stream decoded at once (nothing can be split)."""
    return re.findall(r"(?m)^CallerIDName: ([^\r\n]*)\r$", stream.decode("utf-8"))


def damaged(names: list[str], reference: list[str]) -> int:
    return sum(1 for a, b in zip(names, reference, strict=False) if a != b) + abs(len(names) - len(reference))


# --- the parsers ------------------------------------------------------------------------
def naive(chunks: list[bytes], names: list[str] | None = None) -> int:
    tail, n = b"", 0
    for chunk in chunks:
        frames = (tail + chunk).split(b"\r\n\r\n")
        tail = frames.pop()
        for f in frames:
            dict(line.split(b": ", 1) for line in f.split(b"\r\n") if b": " in line)
            n += 1
    return n


def panoramisk(chunks: list[bytes], names: list[str] | None = None) -> int:
    from panoramisk.ami_protocol import AMIProtocol

    count = [0]

    class Factory:
        def dispatch(self, message: Any) -> None:
            count[0] += 1
            if names is not None and "CallerIDName" in message:
                names.append(message["CallerIDName"])

    proto = AMIProtocol()
    proto.connection_made(None)
    proto.factory = Factory()
    proto.encoding = "utf-8"
    for chunk in chunks:
        proto.data_received(chunk)
    return count[0]


def ours(chunks: list[bytes], names: list[str] | None = None) -> int:
    from ctiserver.ami.framing import AmiFramer

    framer, n = AmiFramer(), 0
    for chunk in chunks:
        for msg in framer.feed(chunk, 0.0):
            msg.action_id, msg.event, msg.response  # noqa: B018  (what the client's router reads)
            n += 1
            if names is not None and (name := msg.get("CallerIDName")) is not None:
                names.append(name)
    return n


def best_cpu(fn: Any, chunks: list[bytes], rounds: int) -> tuple[float, int]:
    fn(chunks)  # warm up
    best, n = float("inf"), 0
    for _ in range(rounds):
        t0 = time.process_time()
        n = fn(chunks)
        best = min(best, time.process_time() - t0)
    return best, n


# --- end to end -------------------------------------------------------------------------
def sender(path: str) -> None:
    """A minimal Asterisk: banner, answers every action, then writes the stream when told (a line on stdin)."""
    stream = Path(path).read_bytes()
    srv = socket.create_server(("127.0.0.1", 0))
    print(srv.getsockname()[1], flush=True)
    conn, _ = srv.accept()
    conn.sendall(b"Asterisk Call Manager/11.0.0\r\n")
    buf = b""
    while b"Action: CoreStatus" not in buf:
        buf += conn.recv(65536)
        while b"\r\n\r\n" in buf and b"Action: CoreStatus" not in buf.split(b"\r\n\r\n", 1)[0]:
            frame, buf = buf.split(b"\r\n\r\n", 1)
            aid = re.search(rb"ActionID: ([^\r\n]+)", frame)
            conn.sendall(b"Response: Success\r\nActionID: " + (aid.group(1) if aid else b"") + b"\r\n\r\n")
            if b"Action: Login" in frame:
                conn.sendall(b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 3600\r\n"
                             b"LastReload: 3600\r\nStatus: Fully Booted\r\n\r\n")
    aid = re.search(rb"ActionID: ([^\r\n]+)", buf)
    conn.sendall(b"Response: Success\r\nActionID: " + (aid.group(1) if aid else b"") + b"\r\n"
                 b"CoreStartupDate: 2026-12-01\r\nCoreStartupTime: 08:00:00\r\n\r\n")
    sys.stdin.readline()
    conn.sendall(stream)
    sys.stdin.readline()  # the reader is done: close
    conn.close()


def end_to_end(body: bytes, events: int) -> tuple[float, float]:
    """(CPU s, wall s) of this process from the first byte written to the last event taken by the store."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "stream.ami"
        path.write_bytes(body)
        proc = subprocess.Popen([sys.executable, __file__, "--sender", str(path)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        try:
            return asyncio.run(_cti(proc, Path(d), events))
        finally:
            proc.kill()
            proc.wait()


async def _cti(proc: subprocess.Popen[str], tmp: Path, events: int) -> tuple[float, float]:
    from ctiserver.ami.client import AmiClient
    from ctiserver.app.server import CtiServer
    from ctiserver.app.settings import load_server
    from ctiserver.config import AmiServer
    from ctiserver.store.writer import EventStore

    assert proc.stdout is not None and proc.stdin is not None
    port = int(proc.stdout.readline())
    server = CtiServer(ROOT / "config", load_server(ROOT / "config"))
    server.store = EventStore(f"sqlite+aiosqlite:///{tmp}/unused.db", journal_path=tmp / "j.jsonl")  # not started
    booted, done = asyncio.Event(), asyncio.Event()
    seen = [0]
    feed = server._on_ami_event

    def on_event(msg: Any) -> None:
        feed("pbx1", msg)
        seen[0] += 1
        if seen[0] == 1:
            booted.set()  # FullyBooted, before the stream
        elif seen[0] > events:
            done.set()

    client = AmiClient(AmiServer(name="pbx1", port=port, secret="x", ping_interval_s=3600), on_event)
    await client.start()
    await client.wait_connected(30)
    await asyncio.wait_for(booted.wait(), 30)
    t0, c0 = time.perf_counter(), time.process_time()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    await asyncio.wait_for(done.wait(), 600)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    await client.close()
    assert len(server.store._mem) == server.events_meter.total  # every event the tracker made is queued
    return cpu, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sender", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sender:
        sender(args.sender)
        return
    logging.basicConfig(level=logging.ERROR)
    head, body = load_stream(args.repeat)
    stream = head + body
    chunks = [stream[i:i + READ] for i in range(0, len(stream), READ)]
    ref = reference_names(stream)
    print(f"{len(stream) / 1e6:.1f} MB, {len(ref):,} CallerIDName values, {len(chunks):,} reads of 16 KiB; "
          f"load average {tuple(round(x, 2) for x in os.getloadavg())}")
    rates: dict[str, float] = {}
    for name, fn in (("naive split", naive), ("panoramisk", panoramisk), ("ours", ours)):
        cpu, n = best_cpu(fn, chunks, args.rounds)
        rates[name] = n / cpu
        bad = ""
        if fn is not naive:
            got: list[str] = []
            fn(chunks, got)
            bad = f"  {damaged(got, ref)} Chinese names damaged"
        print(f"{name:12s} {n:9,d} frames {cpu * 1000:8.1f} ms CPU {cpu / n * 1e6:6.2f} us/frame "
              f"{n / cpu:10,.0f} frames/s{bad}")
    ratio = rates["ours"] / rates["panoramisk"]
    print(f"ours / panoramisk: {ratio:.2f}x per frame (target >= {TARGET_RATIO}x)  "
          f"ours / naive split: {rates['ours'] / rates['naive split']:.2f}x")
    events = body.count(b"\r\n\r\nEvent: ") + body.startswith(b"Event: ")
    best = (float("inf"), 0.0)
    for _ in range(args.rounds):
        best = min(best, end_to_end(body, events))
    cpu, wall = best
    print(f"end to end   {events:9,d} events {cpu * 1000:8.1f} ms CPU {cpu / events * 1e6:6.2f} us/event "
          f"{events / cpu:10,.0f} events/s on one core (wall {events / wall:,.0f}/s; "
          f"target >= {TARGET_EPS:,}); {events / cpu / rates['panoramisk']:.2f}x panoramisk's parser alone")


if __name__ == "__main__":
    main()
