"""Aggregated log lines: one line for the first of a burst, then one summary with a count.

A hostile peer or a mass event (junk AMI frames, a port scan of the FastAGI port,
50k stale calls closed after a reconnect) must not turn into one WARNING per item:
writing 900k lines takes longer than the work itself and fills the disk.

    bad_line = LogBurst(log, "AMI lines without 'Key: value' skipped", interval_s=10.0)
    bad_line.add(detail=repr(line[:80]))        # per occurrence (cheap: no formatting)

The first occurrence is logged at once with its detail; later ones within
`interval_s` are only counted. When the window ends (checked on the next `add`,
by a timer on the running event loop, or by `flush()`), one line says how many
there were since the first, with the last detail:

    WARNING AMI lines without 'Key: value' skipped: 'junk'
    WARNING AMI lines without 'Key: value' skipped: 299999 more in 10.0 s (last: 'junk')

`clock` is injectable (monotonic seconds), so tests drive the windows by hand.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable


class LogBurst:
    """Counts occurrences of one kind of problem and logs them as described in the module docstring."""

    def __init__(self, logger: logging.Logger, what: str, *, level: int = logging.WARNING,
                 interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.what = what
        self.level = level
        self.interval_s = interval_s
        self.clock = clock
        self.total = 0  # every occurrence ever counted
        self._window_start: float | None = None  # when the first line of the current window was logged
        self._pending = 0  # counted since then, not yet in a summary
        self._last = ""
        self._timer: asyncio.TimerHandle | None = None

    def add(self, detail: str = "", count: int = 1) -> None:
        """Count `count` occurrences (a frame with 40 bad lines is one call with count=40)."""
        if count <= 0:
            return
        self.total += count
        now = self.clock()
        if self._window_start is not None and now - self._window_start >= self.interval_s:
            self.flush()
        if self._window_start is None:
            self._window_start = now
            extra = f" ({count} at once)" if count > 1 else ""
            self.logger.log(self.level, "%s%s%s", self.what, f": {detail}" if detail else "", extra)
            self._arm_timer()
            return
        self._pending += count
        self._last = detail

    def flush(self) -> None:
        """Log the summary of the current window now (if anything is pending) and close the window."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending and self._window_start is not None:
            elapsed = max(0.0, self.clock() - self._window_start)
            last = f" (last: {self._last})" if self._last else ""
            self.logger.log(self.level, "%s: %d more in %.1f s%s", self.what, self._pending, elapsed, last)
        self._window_start = None
        self._pending = 0
        self._last = ""

    def _arm_timer(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a sans-IO caller in a plain test): the next add() or flush() tells
            return
        self._timer = loop.call_later(self.interval_s, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()
