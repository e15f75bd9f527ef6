"""Daily ranges of local time (`08:00-21:00`, `22:00-07:00` across midnight): calling windows and quiet hours."""

from __future__ import annotations

import re
from dataclasses import dataclass

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-(([01]\d|2[0-3]):([0-5]\d)|24:00)$")


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A daily range of local time in minutes; `end <= start` means it runs across midnight."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> TimeRange:
        m = _HHMM.match(text.strip())
        if not m:
            raise ValueError(f"time range {text!r} is not HH:MM-HH:MM (e.g. 08:00-21:00 or 22:00-07:00)")
        start = int(m.group(1)) * 60 + int(m.group(2))
        end = 1440 if m.group(3) == "24:00" else int(m.group(4)) * 60 + int(m.group(5))
        if start == end:
            raise ValueError(f"time range {text!r} is empty")
        return cls(start, end)

    @property
    def across_midnight(self) -> bool:
        return self.end <= self.start

    def contains(self, minute: int) -> bool:
        if self.across_midnight:
            return minute >= self.start or minute < self.end
        return self.start <= minute < self.end

    def __str__(self) -> str:
        def hm(m: int) -> str:
            return f"{m // 60:02d}:{m % 60:02d}"

        return f"{hm(self.start)}-{hm(self.end)}"


def parse_ranges(text: str | None) -> tuple[TimeRange, ...]:
    """`"12:00-14:00;21:00-08:00"` (a CSV cell or DB column) to ranges; empty means none."""
    if not text or not text.strip():
        return ()
    return tuple(TimeRange.parse(part) for part in re.split(r"[;,，；]", text) if part.strip())


def _ranges(v: list[str]) -> list[str]:
    for item in v:
        TimeRange.parse(item)
    return v
