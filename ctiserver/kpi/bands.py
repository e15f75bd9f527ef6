"""The utility's tariff-style time bands (peak / flat / valley) as a lookup by half hour.

Why half hours: every report is computed at half-hour grain in SQL and rolled up
in Python, so a band must be a whole number of half hours. A band may cross
midnight (valley 22:00-08:00); bands must not overlap; a gap is reported as
`OTHER`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

SLOTS_PER_DAY = 48
OTHER = "other"


@dataclass(frozen=True, slots=True)
class BandSpan:
    name: str
    start_min: int  # minutes after local midnight, multiple of 30
    end_min: int  # exclusive; 1440 means midnight; end < start crosses midnight

    def slots(self) -> list[int]:
        """Half-hour slot numbers (0 = 00:00-00:30) this span covers."""
        first = (self.start_min % 1440) // 30
        last = self.end_min // 30
        if last > first:
            return list(range(first, last))
        return list(range(first, SLOTS_PER_DAY)) + list(range(0, last))


def parse_hhmm(text: str) -> int:
    """'09:30' -> 570; '24:00' -> 1440. Raises ValueError with the reason."""
    parts = text.strip().split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"time {text!r} is not HH:MM")
    h, m = int(parts[0]), int(parts[1])
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m != 0):
        raise ValueError(f"time {text!r} is out of range 00:00..24:00")
    if m % 30:
        raise ValueError(f"time {text!r} must fall on the hour or half hour")
    return h * 60 + m


def slot_table(spans: Sequence[BandSpan]) -> list[str]:
    """Band name for each of the 48 half-hour slots; raises ValueError on overlaps."""
    table: list[str | None] = [None] * SLOTS_PER_DAY
    for span in spans:
        whole_day = span.start_min % 1440 == 0 and span.end_min == 1440
        if span.start_min % 1440 == span.end_min % 1440 and not whole_day:
            raise ValueError(f"band {span.name!r} starts and ends at the same time")
        for slot in span.slots():
            if table[slot] is not None:
                hh, mm = divmod(slot * 30, 60)
                raise ValueError(f"bands {table[slot]!r} and {span.name!r} overlap at {hh:02d}:{mm:02d}")
            table[slot] = span.name
    return [name if name is not None else OTHER for name in table]


def band_at(table: Sequence[str], minute_of_day: int) -> str:
    """The band of a local time given as minutes after midnight."""
    return table[(minute_of_day % 1440) // 30]
