"""Generated queue history with known seasonality: the truth the forecast tests measure against.

Expected calls per half hour = base · trend · weekday factor · day-kind factor · intraday curve, Poisson
noise on top (seeded numpy generator), handle times around a known mean. Holidays and make-up
workdays come from the calendar passed in; outage days get `outage_factor` times the calls, which a
forecast must not learn from. Pure: a seed in, the same history out.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np

from ..calendar import Calendar
from .history import SLOTS, QueueHistory

WEEKDAY = (1.15, 1.0, 0.95, 0.95, 1.05, 0.55, 0.45)  # Monday is busiest, the weekend quiet


def curve(kind: str) -> np.ndarray:
    """Share of a day's calls per half hour: two peaks (10:00, 15:00) on working days, one late peak
    on rest days and holidays; nearly nothing at night."""
    t = (np.arange(SLOTS) + 0.5) / 2.0  # hour of the day at the slot's middle
    if kind == "working":
        w = 0.02 + np.exp(-((t - 10.0) / 1.6) ** 2) + 0.8 * np.exp(-((t - 15.0) / 2.0) ** 2)
    else:
        w = 0.02 + np.exp(-((t - 11.5) / 3.0) ** 2)
    return np.asarray(w / w.sum())


@dataclass(frozen=True)
class Truth:
    """What the generator meant: expected calls and mean handle time per (day, half hour)."""

    calls: dict[tuple[dt.date, int], float]
    aht_s: float

    def day_total(self, day: dt.date) -> float:
        return sum(self.calls.get((day, s), 0.0) for s in range(SLOTS))


def expected(calendar: Calendar, day: dt.date, base: float, first: dt.date, trend_per_week: float,
             holiday_factor: float, makeup_factor: float) -> np.ndarray:
    """Expected calls per half hour of `day` (before any outage)."""
    kind = calendar.day_kind(day)
    weeks = (day - first).days / 7.0
    level = base * (1.0 + trend_per_week * weeks)
    if kind == "holiday":
        total = level * WEEKDAY[6] * holiday_factor
    elif kind == "working" and day.weekday() >= 5:
        total = level * makeup_factor
    else:
        total = level * WEEKDAY[day.weekday()]
    return total * curve("working" if kind == "working" else "rest")


def generate(calendar: Calendar, queue: str, first: dt.date, days: int, *, base: float = 800.0,
             trend_per_week: float = 0.01, aht_s: float = 240.0, holiday_factor: float = 0.8,
             makeup_factor: float = 0.95, outages: dict[dt.date, float] | None = None, seed: int = 1,
             vip_share: float = 0.1, patience_s: float = 90.0) -> tuple[QueueHistory, Truth]:
    """`days` days of history from `first` and, for every day up to `days + 28`, the truth."""
    rng = np.random.default_rng(seed)
    h = QueueHistory(queue)
    truth: dict[tuple[dt.date, int], float] = {}
    for i in range(days + 28):
        d = first + dt.timedelta(days=i)
        mean = expected(calendar, d, base, first, trend_per_week, holiday_factor, makeup_factor)
        for s in range(SLOTS):
            truth[(d, s)] = float(mean[s])
        if i >= days:
            continue
        scale = (outages or {}).get(d, 1.0)
        counts = rng.poisson(mean * scale)
        for s in range(SLOTS):
            n = int(counts[s])
            if n == 0:
                continue
            h.offered[(d, s)] += n
            h.handled[(d, s)] += n
            h.handle_s[(d, s)] += float(rng.gamma(4.0, aht_s / 4.0, n).sum())
    total = int(sum(h.offered.values()))
    h.tiers["vip"] = round(total * vip_share)
    h.tiers["normal"] = total - h.tiers["vip"]
    # waits: abandons of exponential patience against a typical 20 s queue wait, as the MLE sees them
    h.abandons = max(1, round(total * (1.0 - math.exp(-20.0 / patience_s)) * 0.1))
    h.wait_total_s = h.abandons * patience_s
    return h, Truth(truth, aht_s)
