"""Which days of the forecast's history had a major outage, from the outages package's records. Pure.

Why they are kept out of the baseline rather than fed to the model as an exogenous regressor: the outages
that move traffic are faults (a storm, a feeder trip), unknown for the days being forecast, so a regressor
would have no future values to be given and would be zero there anyway; all it could do is the same
exclusion with more parameters fitted on a handful of days. Left in unmarked, one storm Monday teaches
Holt-Winters' multiplicative weekly season a Monday peak and raises the level for weeks. So the forecast
replaces such a day by what its weekday normally brings before fitting and leaves it out of the intraday
profiles, the handle time and the accuracy check (forecast.py). A major outage announced for a day being
forecast is named in the output: its extra calls are not in the numbers.

Major (wfm.yaml `forecast.major_outage`): at least `min_reports` fault calls attached to it, or of a kind
in `kinds` (default: fault, temporary, planned; not load_limit) lasting at least `min_hours`. Every local day it
overlaps is marked (an open one: up to its expected restoration, else up to now).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

from ..calendar import Calendar
from ..configfile import Strict


class MajorOutageRule(Strict):
    min_reports: Annotated[int, Field(ge=1)] = 20  # fault calls attached to the outage
    min_hours: Annotated[float, Field(gt=0)] = 2.0
    kinds: list[str] = Field(default_factory=lambda: ["fault", "temporary", "planned"])


@dataclass(frozen=True)
class OutageSpan:
    """An outage record as the forecast needs it."""

    id: int
    kind: str
    cause: str
    start_ts: float
    end_ts: float | None  # when power came back (None: still open)
    expected_restore_ts: float | None
    reports: int

    def until(self, now: float) -> float:
        """Its end; while open, its expected restoration, else now (an outage left open and never given one
        would otherwise mark every day since)."""
        if self.end_ts is not None:
            return self.end_ts
        if self.expected_restore_ts is not None:
            return self.expected_restore_ts
        return max(now, self.start_ts)


def is_major(o: OutageSpan, rule: MajorOutageRule, now: float) -> bool:
    return o.reports >= rule.min_reports or (
        o.kind in rule.kinds and o.until(now) - o.start_ts >= rule.min_hours * 3600)


def outage_days(spans: Iterable[OutageSpan], calendar: Calendar, rule: MajorOutageRule,
                now: float) -> dict[dt.date, str]:
    """Local day -> why, for every day a major outage overlapped (`OutageSpan.until`)."""
    out: dict[dt.date, str] = {}
    for o in sorted(spans, key=lambda o: (o.start_ts, o.id)):
        if not is_major(o, rule, now):
            continue
        first = calendar.local(o.start_ts).date()
        end = o.until(now)
        last = calendar.local(max(o.start_ts, end - 1e-3)).date()  # ending at midnight is not the next day
        why = f"outage #{o.id} ({o.kind}, {o.reports} fault calls): {o.cause}"
        d = first
        while d <= last:
            out[d] = f"{out[d]}; {why}" if d in out else why
            d += dt.timedelta(days=1)
    return out
