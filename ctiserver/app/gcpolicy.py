"""The cyclic garbage collector's policy for a long-running server: what lives long leaves its way.

`ctiserver serve` freezes its startup heap (modules, config, IVR trees). Callers, sessions and calls come
later: with 50,000 callers waiting, a full collection walked all of them on the event loop (94 ms of CPU in
benchmarks/gc_bench.py; Asterisk drops an AMI session whose writes block for 100 ms). So every `refreeze_s`
a young collection (which frees the young cycles) and `gc.freeze()` move what survived out of the
collector's way. The price: a cycle that became garbage after reaching the old generation is not freed
until the next sweep (`gc.unfreeze()` and a full collection, every `sweep_s`: one long pause a day).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

log = logging.getLogger("ctiserver.gc")

REFREEZE_S = 60.0
SWEEP_S = 86400.0


class CollectorPolicy:
    """An async context manager owning one task: refreeze every `refreeze_s`, sweep every `sweep_s`.
    `collector` and `sleep` are the gc module and asyncio.sleep unless a test gives its own."""

    def __init__(self, refreeze_s: float = REFREEZE_S, sweep_s: float = SWEEP_S, *, collector: Any = gc,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        if refreeze_s <= 0 or sweep_s < refreeze_s:
            raise ValueError("refreeze_s must be > 0 and sweep_s >= refreeze_s")
        self.refreeze_s, self.sweep_s = refreeze_s, sweep_s
        self.gc, self.sleep = collector, sleep
        self._task: asyncio.Task[None] | None = None
        self.refreezes = self.sweeps = 0
        self.worst_ms = 0.0  # the longest of our own collections, CPU time of the loop's thread

    async def __aenter__(self) -> CollectorPolicy:
        self._task = asyncio.create_task(self._run(), name="gc policy")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def refreeze(self) -> None:
        """Free the young cycles, then move every object still tracked out of future collections."""
        t = time.thread_time()
        self.gc.collect(1)
        self.gc.freeze()
        self.refreezes += 1
        self.worst_ms = max(self.worst_ms, (time.thread_time() - t) * 1e3)

    def sweep(self) -> None:
        """Bring everything back under the collector, free the old cycles, and freeze what is left."""
        t = time.thread_time()
        self.gc.unfreeze()
        freed = self.gc.collect()
        self.gc.freeze()
        self.sweeps += 1
        took = (time.thread_time() - t) * 1e3
        self.worst_ms = max(self.worst_ms, took)
        log.info("collector sweep: %d unreachable objects freed in %.0f ms of CPU", freed, took)

    async def _run(self) -> None:
        since_sweep = 0.0
        while True:
            await self.sleep(self.refreeze_s)
            since_sweep += self.refreeze_s
            if since_sweep >= self.sweep_s:
                since_sweep = 0.0
                self.sweep()
            else:
                self.refreeze()
