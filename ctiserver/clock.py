"""Clocks: pure cores take `now` from a Clock so tests can drive time by hand."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the time in seconds (monotonic for engines, epoch for the store)."""

    def now(self) -> float: ...


class SystemClock:
    """Wall-clock epoch seconds."""

    def now(self) -> float:
        return time.time()


class FakeClock:
    """A clock that moves only when told to (in the spirit of trio's MockClock)."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def jump(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._now += seconds

    def set(self, when: float) -> None:
        if when < self._now:
            raise ValueError("a clock cannot go backwards")
        self._now = when


class MonotonicClock:
    """Seconds that never jump (NTP steps, a wall-clock change): for deadlines a node keeps by itself,
    such as how long it may still act as the leader (ctiserver/ha/)."""

    def now(self) -> float:
        return time.monotonic()
