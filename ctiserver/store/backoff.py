"""Retry delays for the event store's database attempts: pure, so they are tested without sleeping."""

from __future__ import annotations


class Backoff:
    """Retry delays: doubling from `initial` up to `maximum`."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = min(initial, maximum)
        self.maximum = maximum
        self._next = self.initial

    def failure(self) -> float:
        delay = self._next
        self._next = min(self.maximum, self._next * 2)
        return delay

    def success(self) -> None:
        self._next = self.initial
