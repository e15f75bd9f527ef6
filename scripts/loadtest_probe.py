"""What the load test measures inside the CTI process: where its CPU goes, how late the event loop runs,
how old an AMI event is when the CTI records it and when its batch is written.

Started by scripts/loadtest.py's CTI child; the report is one JSON line (`PROBE {...}`) on stdout at exit.

* CPU by subsystem: a thread samples the event loop thread's Python stack every 2 ms. A sample whose
  innermost frame is the loop's `select` is idle; any other is charged to the subsystem of the innermost
  ctiserver frame (FastAGI, IVR, TTS, ACD, desktop, store, AMI and call tracking, ...), or to "asyncio and
  libraries" when no ctiserver frame is on the stack (transports, aiohttp's parser, SQLAlchemy's own work
  is charged to whoever called it). The loop thread's CPU seconds (/proc/self/task) are then shared out in
  proportion; the other threads (aiosqlite, asyncio's executor: TTS rendering, journal writes) are listed
  by thread with their own CPU seconds. The sampler thread's own CPU (4-5 s in a 2-minute run, sampling
  every 2 ms) is not the CTI's: the load generator leaves it out of the CTI's CPU per call (`--sample-ms 0`
  runs without it).
* Round trips: every FastAGI command (by verb) and every PostgreSQL round trip asyncpg makes (BEGIN,
  COMMIT, a statement, COPY, ...), each charged to the innermost ctiserver function that led to it
  (wrappers put on the classes at `attach`; a few microseconds each).
* Loop lag: a task asks to run every 10 ms; how much later than asked it ran (worst, p99).
* AMI lag: for each call.* event (its time is Asterisk's Timestamp), how much later the CTI appended it to
  the store (the CTI's own delay), and how much later its batch was being written in the database's
  transaction (that adds the store's batching, `flush_interval_s`).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import re
import sys
import threading
import time
from collections import Counter, defaultdict, deque
from pathlib import Path
from types import FrameType
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
STALL_S = 0.08  # a tick this late is a stall: what ran during it is kept


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


def _stack(frame: Any) -> str:
    """The innermost three ctiserver functions on the stack (or the innermost function when none)."""
    names: list[str] = []
    f = frame
    while f is not None and len(names) < 3:
        path = f.f_code.co_filename
        i = path.rfind(_PKG)
        if i >= 0:
            names.append(f"{path[i + len(_PKG):]}:{f.f_code.co_name}")
        f = f.f_back
    return " < ".join(names) or f"{frame.f_code.co_filename.rsplit(os.sep, 1)[-1]}:{frame.f_code.co_name}"


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
        self.lag_s = 0.0  # the ticker's period (0: no ticker)
        self.loop_lag: list[float] = []
        self.appended_lag: list[float] = []
        self.written_lag: list[float] = []
        self.stalls: list[dict[str, Any]] = []
        self._recent: deque[tuple[float, str]] = deque(maxlen=2000)  # (loop time, where) of the last samples
        self._gc_pauses: deque[tuple[float, float]] = deque(maxlen=200)
        self._gc_t0 = 0.0
        self.agi_commands: Counter[str] = Counter()
        self.db_round_trips: Counter[str] = Counter()
        self._stop = threading.Event()
        self._loop_thread = threading.get_ident()
        self._loop_tid = threading.get_native_id()
        self._cpu0: dict[int, tuple[str, float]] = {}

    # --- hooks ------------------------------------------------------------------
    def attach(self, server: Any) -> None:
        """Listen to the server's events and its store's batches (call once the server is built)."""
        server.event_listeners.append(self._on_event)
        self._watch_batches(server.store)
        self._count_round_trips()

    def _watch_batches(self, store: Any) -> None:
        """Note when each batch is in the database's transaction. Not a sink: a sink runs in a savepoint
        of its own (two round trips per batch), which the CTI without the probe does not pay."""
        original = store._execute

        async def execute(rows: list[dict[str, Any]], *args: Any, **kwargs: Any) -> None:
            await original(rows, *args, **kwargs)
            self._on_batch(rows)

        store._execute = execute

    def _count_round_trips(self) -> None:
        """Count AGI commands by verb and asyncpg round trips by what they are and who asked."""
        from asyncpg import connection, prepared_stmt

        from ctiserver.agi.server import AgiSession

        agi = self.agi_commands
        db = self.db_round_trips

        def caller() -> str:
            f: FrameType | None = sys._getframe(2)
            while f is not None:
                path = f.f_code.co_filename
                i = path.rfind(_PKG)
                if i >= 0:
                    return f"{path[i + len(_PKG):]}:{f.f_code.co_name}"
                f = f.f_back
            return "-"

        def wrap(cls: Any, name: str, what: Any) -> None:
            original = getattr(cls, name)

            async def counted(*args: Any, **kwargs: Any) -> Any:
                db[f"{what(args)} <- {caller()}"] += 1
                return await original(*args, **kwargs)

            setattr(cls, name, counted)

        original_execute = AgiSession.execute

        async def execute(session: Any, command: str, timeout: float | None = None) -> Any:
            words = command.split(" ", 2)
            agi[" ".join(words[:2]) if words[0] in ("EXEC", "GET", "SET", "WAIT", "CHANNEL") else words[0]] += 1
            return await original_execute(session, command, timeout)

        AgiSession.execute = execute  # type: ignore[method-assign,assignment]
        wrap(connection.Connection, "execute", lambda a: str(a[1]).split(" ", 1)[0][:20] or "execute")
        wrap(connection.Connection, "_executemany", lambda a: "executemany")
        wrap(connection.Connection, "copy_records_to_table", lambda a: "COPY")
        wrap(connection.Connection, "prepare", lambda a: "prepare")
        wrap(connection.Connection, "fetchrow", lambda a: "fetchrow " + str(a[1])[:20])
        wrap(prepared_stmt.PreparedStatement, "_PreparedStatement__bind_execute", lambda a: "statement")

    def _on_event(self, event: Any) -> None:
        if event.kind.startswith("call."):
            self.appended_lag.append(time.time() - event.ts)

    def _on_batch(self, rows: Any) -> None:
        now = time.time()  # the batch is committed: its transaction ran just before
        self.written_lag.extend(now - r["ts"] for r in rows if r["kind"].startswith("call."))

    async def ticker(self, every_s: float = 0.010) -> None:
        self.lag_s = every_s
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(every_s)
            lag = max(0.0, loop.time() - asked - every_s)
            self.loop_lag.append(lag)
            if lag >= STALL_S:
                self._note_stall(asked + every_s, lag)

    def _note_stall(self, since: float, lag: float) -> None:
        """What the loop ran during a stall: the sampler's stacks in its window, the collector's pauses."""
        until = since + lag
        recent, pauses = list(self._recent), list(self._gc_pauses)  # one C-level copy: the sampler appends
        seen = Counter(where for t, where in recent if since <= t <= until)
        gcs = [round(ms, 1) for t, ms in pauses if since <= t <= until + 0.001]
        self.stalls.append({"lag_ms": round(lag * 1000, 1), "samples": dict(seen.most_common(4)),
                            "gc_ms": gcs, "load": os.getloadavg()[0]})

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        elif info.get("generation", 0) >= 1:
            t = time.perf_counter()
            self._gc_pauses.append((time.monotonic(), (t - self._gc_t0) * 1000))

    # --- the sampler thread -------------------------------------------------------
    def start(self, every_s: float = 0.002) -> None:
        """Start the sampler thread (none when `every_s` is 0) and print its thread id (`PROBE-SAMPLER <tid>`),
        so the load generator can leave the sampler's own CPU out of the CTI's."""
        self._cpu0 = _thread_cpu()
        gc.callbacks.append(self._on_gc)
        if every_s <= 0:
            print("PROBE-SAMPLER 0", flush=True)
            return
        started = threading.Event()
        tids: list[int] = []

        def run() -> None:
            tids.append(threading.get_native_id())
            started.set()
            self._sample(every_s)

        threading.Thread(target=run, name="cpu-probe", daemon=True).start()
        started.wait()
        print(f"PROBE-SAMPLER {tids[0]}", flush=True)

    def _sample(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            frame = sys._current_frames().get(self._loop_thread)
            if frame is None:
                continue
            where = _where(frame)
            if where == IDLE:
                self.idle += 1
            else:
                self.samples[where] += 1
                self._recent.append((time.monotonic(), _stack(frame)))

    def report(self) -> dict[str, Any]:
        self._stop.set()
        cpu1 = _thread_cpu()
        spent = {tid: (name, cpu - self._cpu0.get(tid, (name, 0.0))[1]) for tid, (name, cpu) in cpu1.items()}
        loop_cpu = spent.get(self._loop_tid, ("", 0.0))[1]
        busy = sum(self.samples.values()) or 1
        areas: dict[str, float] = defaultdict(float)
        for module, n in self.samples.items():
            areas[subsystem(module)] += loop_cpu * n / busy
        modules = {module: loop_cpu * n / busy for module, n in self.samples.most_common(12)}
        names = {t.native_id: t.name for t in threading.enumerate()}
        threads: dict[str, float] = defaultdict(float)
        for tid, (_, cpu) in spent.items():
            if tid != self._loop_tid and cpu > 0:
                name = names.get(tid, "ended threads")
                threads[re.sub(r"\d+", "N", name)] += cpu  # asyncio_N: the executor (to_thread)
        return {
            "loop_cpu_s": loop_cpu, "areas_cpu_s": dict(sorted(areas.items(), key=lambda kv: -kv[1])),
            "modules_cpu_s": modules,
            "threads_cpu_s": dict(threads),
            "samples": {"busy": busy, "idle": self.idle},
            "agi_commands": dict(self.agi_commands.most_common()),
            "stalls": self.stalls[:30],
            "db_round_trips": dict(self.db_round_trips.most_common()),
            "lag_ms": self.lag_s * 1000,
            "loop_lag_ms": {"max": max(self.loop_lag or [0.0]) * 1000, "p99": _pct(self.loop_lag, 99) * 1000,
                            "ticks": len(self.loop_lag)},
            "appended_lag_ms": {"p50": _pct(self.appended_lag, 50) * 1000, "p99": _pct(self.appended_lag, 99) * 1000,
                                "max": max(self.appended_lag or [0.0]) * 1000, "n": len(self.appended_lag)},
            "written_lag_ms": {"p50": _pct(self.written_lag, 50) * 1000, "p99": _pct(self.written_lag, 99) * 1000,
                               "max": max(self.written_lag or [0.0]) * 1000, "n": len(self.written_lag)},
        }


def print_report(probe: Probe) -> None:
    print("PROBE " + json.dumps(probe.report()), flush=True)
