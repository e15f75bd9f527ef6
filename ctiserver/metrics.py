"""Prometheus text exposition for the few numbers an operator graphs and alerts on."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable


class RateMeter:
    """Events per second over a sliding window (cheap: a counter, and a mark at most every `resolution_s`)."""

    def __init__(self, window_s: float = 10.0, resolution_s: float = 0.1) -> None:
        self.window_s = window_s
        self.resolution_s = resolution_s  # at most one mark per this long: add() is on every AMI event's path
        self.total = 0
        self._marks: deque[tuple[float, int]] = deque()
        self._next_mark = float("-inf")

    def add(self, n: int = 1, now: float | None = None) -> None:
        self.total += n
        now = time.monotonic() if now is None else now
        if now < self._next_mark:
            return
        self._next_mark = now + self.resolution_s
        self._marks.append((now, self.total))
        cutoff = now - self.window_s
        while len(self._marks) > 2 and self._marks[1][0] < cutoff:
            self._marks.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        cutoff = now - self.window_s
        while self._marks and self._marks[0][0] < cutoff:
            self._marks.popleft()
        if not self._marks:
            return 0.0
        first_t, first_total = self._marks[0]
        span = max(now - first_t, 1e-9)
        # events counted in the window, including the first mark's batch
        return (self.total - first_total) / span if span >= 1.0 else 0.0


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(samples: Iterable[tuple[str, str, str, dict[str, str], float]]) -> str:
    """samples: (name, type, help, labels, value) — rendered with one HELP/TYPE per name."""
    lines: list[str] = []
    seen: set[str] = set()
    for name, mtype, help_text, labels, value in samples:
        if name not in seen:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {mtype}")
            seen.add(name)
        label_txt = ""
        if labels:
            label_txt = "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"
        lines.append(f"{name}{label_txt} {float(value):g}")
    return "\n".join(lines) + "\n"
