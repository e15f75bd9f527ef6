"""What the KPI SQL hands to the metrics: the report window (range, `now`, the zone's offsets) and the
facts summed per local half hour and dimension, one list of plain-dict rows per family.

Pure, so kpi/metrics.py depends on this and not on the SQL (kpi/compute.py) that fills it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

HALF_HOUR = 1800
HALF_HOUR_MS = HALF_HOUR * 1000

CALL_DIMS = ("queue", "tier", "agent")
LEG_DIMS = ("queue", "tier", "agent")
AGENT_DIMS = ("agent",)
DISPOSITION_DIMS = ("queue", "tier", "agent")
WORKORDER_DIMS = ("agent",)
RATING_DIMS = ("queue", "tier", "agent")
REVISIT_DIMS = ("queue", "agent")
QC_DIMS = ("queue", "agent")


@dataclass(frozen=True, slots=True)
class Window:
    """The report range (epoch seconds, UTC) and the zone's offsets over it."""

    start: float
    end: float
    now: float
    zone: ZoneInfo
    transitions: tuple[tuple[float, int], ...]  # (from_epoch, offset_s), ascending; first from -inf

    @classmethod
    def build(cls, start: float, end: float, now: float, zone: ZoneInfo, margin_s: float) -> Window:
        return cls(start, end, now, zone, zone_offsets(zone, start - margin_s, end + margin_s))


def zone_offsets(zone: ZoneInfo, lo: float, hi: float) -> tuple[tuple[float, int], ...]:
    """UTC offsets of `zone` between lo and hi, with each change located to the second."""

    def off(t: float) -> int:
        u = datetime.fromtimestamp(t, UTC).astimezone(zone).utcoffset()
        return int(u.total_seconds()) if u is not None else 0

    out: list[tuple[float, int]] = [(-math.inf, off(lo))]
    step = 3600.0
    t = lo
    while t < hi:
        nxt = min(t + step, hi)
        if off(nxt) != out[-1][1]:
            a, b = t, nxt  # off(a) == previous, off(b) == new
            while b - a > 1.0:
                mid = (a + b) / 2
                if off(mid) == out[-1][1]:
                    a = mid
                else:
                    b = mid
            out.append((float(math.ceil(b)), off(nxt)))
        t = nxt
    return tuple(out)


@dataclass(slots=True)
class Facts:
    """Summed facts per (half hour, dims...) for each family; rows are plain dicts."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    legs: list[dict[str, Any]] = field(default_factory=list)
    agent_time: list[dict[str, Any]] = field(default_factory=list)
    dispositions: list[dict[str, Any]] = field(default_factory=list)
    workorders: list[dict[str, Any]] = field(default_factory=list)
    outbound: list[dict[str, Any]] = field(default_factory=list)
    survey: list[dict[str, Any]] = field(default_factory=list)
    ratings: list[dict[str, Any]] = field(default_factory=list)
    revisits: list[dict[str, Any]] = field(default_factory=list)
    loop: list[dict[str, Any]] = field(default_factory=list)  # the outage and repair loop (kpi/loop.py)
    qc: list[dict[str, Any]] = field(default_factory=list)


def hh_start(hh: int) -> datetime:
    """Local wall-clock start of half-hour number `hh` (naive datetime)."""
    return datetime(1970, 1, 1) + timedelta(seconds=hh * HALF_HOUR)
