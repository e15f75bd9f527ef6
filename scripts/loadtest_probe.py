"""What the load test measures inside the CTI process: where its CPU goes, how late the event loop runs,
how old an AMI event is when the CTI records it and when its batch is written.

Started by scripts/loadtest.py's CTI child; the report is one JSON line (`PROBE {...}`) on stdout at exit.

* CPU by subsystem: a thread samples the event loop thread's Python stack every 2 ms. A sample whose
  innermost frame is the loop's `select` is idle; any other is charged to the subsystem of the innermost
  ctiserver frame (FastAGI, IVR, TTS, ACD, desktop, store, AMI and call tracking, ...), or to "asyncio and
  libraries" when no ctiserver frame is on the stack (transports, aiohttp's parser, SQLAlchemy's own work
  is charged to whoever called it). The loop thread's CPU seconds (/proc/self/task) are then shared out in
  proportion; the other threads (aiosqlite, asyncio's executor: TTS rendering, journal writes) are listed
  by thread with their own CPU seconds. Sampling costs about 1% of a core.
* Loop lag: a task asks to run every 10 ms; how much later than asked it ran (worst, p99).
* AMI lag: for each call.* event (its time is Asterisk's Timestamp), how much later the CTI appended it to
  the store (the CTI's own delay), and how much later its batch was being written in the database's
  transaction (that adds the store's batching, `flush_interval_s`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")
_AREAS = (  # (path prefix inside ctiserver/, subsystem): the first that matches wins
    ("ivr/tts", "TTS lookups"), ("agi/", "FastAGI"), ("ivr/", "IVR"), ("acd/", "ACD runtime"),
    ("web/bridge", "desktop push"), ("web/", "HTTP and desktop"), ("store/", "event store"),
    ("ami/", "AMI and call tracking"), ("calls/", "AMI and call tracking"), ("outbound/", "outbound"),
    ("callbacks/", "outbound"), ("kpi/", "KPIs (facts, live wallboard)"), ("app/", "server core"),
    ("customers/", "IVR customer lookups"),
    ("", "other ctiserver"),
)
_PKG = os.sep + "ctiserver" + os.sep
IDLE = "idle"


def _where(frame: Any) -> str:
    """The module (path inside ctiserver/) of the innermost ctiserver frame on this stack; IDLE when the
    loop waits in its selector; "-" when no ctiserver frame is on the stack."""
    if frame.f_code.co_name in ("select", "poll") and frame.f_code.co_filename.endswith("selectors.py"):
        return IDLE
    f = frame
    while f is not None:
        path = f.f_code.co_filename
        i = path.rfind(_PKG)
        if i >= 0:
            return path[i + len(_PKG):]
        f = f.f_back
    return "-"


def subsystem(module: str) -> str:
    if module == "-":
        return "asyncio and libraries"
    return next(name for prefix, name in _AREAS if module.startswith(prefix))


def _thread_cpu() -> dict[int, tuple[str, float]]:
    """tid -> (thread name, CPU seconds) for every thread of this process."""
    out: dict[int, tuple[str, float]] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / TICK)
    return out


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100.0 * len(s)))]


class Probe:
    def __init__(self) -> None:
        self.samples: Counter[str] = Counter()
        self.idle = 0
        self.loop_lag: list[float] = []
        self.appended_lag: list[float] = []
        self.written_lag: list[float] = []
        self._stop = threading.Event()
        self._loop_thread = threading.get_ident()
        self._loop_tid = threading.get_native_id()
        self._cpu0: dict[int, tuple[str, float]] = {}

    # --- hooks ------------------------------------------------------------------
    def attach(self, server: Any) -> None:
        """Listen to the server's events and its store's batches (call once the server is built)."""
        server.event_listeners.append(self._on_event)
        server.store.add_sink(self._on_batch)

    def _on_event(self, event: Any) -> None:
        if event.kind.startswith("call."):
            self.appended_lag.append(time.time() - event.ts)

    async def _on_batch(self, conn: Any, rows: Any) -> None:
        now = time.time()
        self.written_lag.extend(now - r["ts"] for r in rows if r["kind"].startswith("call."))

    async def ticker(self, every_s: float = 0.010) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(every_s)
            self.loop_lag.append(max(0.0, loop.time() - asked - every_s))

    # --- the sampler thread -------------------------------------------------------
    def start(self) -> None:
        self._cpu0 = _thread_cpu()
        threading.Thread(target=self._sample, name="cpu-probe", daemon=True).start()

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            frame = sys._current_frames().get(self._loop_thread)
            if frame is None:
                continue
            where = _where(frame)
            if where == IDLE:
                self.idle += 1
            else:
                self.samples[where] += 1

    def report(self) -> dict[str, Any]:
        self._stop.set()
        cpu1 = _thread_cpu()
        spent = {tid: (name, cpu - self._cpu0.get(tid, (name, 0.0))[1]) for tid, (name, cpu) in cpu1.items()}
        loop_cpu = spent.get(self._loop_tid, ("", 0.0))[1]
        busy = sum(self.samples.values()) or 1
        areas: Counter[str] = Counter()
        for module, n in self.samples.items():
            areas[subsystem(module)] += loop_cpu * n / busy
        modules = {module: loop_cpu * n / busy for module, n in self.samples.most_common(12)}
        names = {t.native_id: t.name for t in threading.enumerate()}
        threads: Counter[str] = Counter()
        for tid, (_, cpu) in spent.items():
            if tid != self._loop_tid and cpu > 0:
                name = names.get(tid, "ended threads")
                threads[re.sub(r"\d+", "N", name)] += cpu  # asyncio_N: the executor (to_thread)
        return {
            "loop_cpu_s": loop_cpu, "areas_cpu_s": dict(areas.most_common()), "modules_cpu_s": modules,
            "threads_cpu_s": dict(threads),
            "samples": {"busy": busy, "idle": self.idle},
            "loop_lag_ms": {"max": max(self.loop_lag or [0.0]) * 1000, "p99": _pct(self.loop_lag, 99) * 1000,
                            "ticks": len(self.loop_lag)},
            "appended_lag_ms": {"p50": _pct(self.appended_lag, 50) * 1000, "p99": _pct(self.appended_lag, 99) * 1000,
                                "max": max(self.appended_lag or [0.0]) * 1000, "n": len(self.appended_lag)},
            "written_lag_ms": {"p50": _pct(self.written_lag, 50) * 1000, "p99": _pct(self.written_lag, 99) * 1000,
                               "max": max(self.written_lag or [0.0]) * 1000, "n": len(self.written_lag)},
        }


def print_report(probe: Probe) -> None:
    print("PROBE " + json.dumps(probe.report()), flush=True)
