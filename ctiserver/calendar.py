"""Business-hours calendars: weekly hours, holidays, special days (make-up workdays).

One format for ops everywhere: IVR branches (ivr/tree.py) and ACD queue hours
(acd/config.py) both use this model. The IVR needs more than open/closed (a holiday
greeting differs from an after-hours one), so `state(now)` tells the three apart.
Pure: the caller passes `now` (epoch seconds).
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cached_property
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from .configfile import Strict

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")

CalendarState = Literal["open", "closed", "holiday"]


def span_minutes(text: str) -> tuple[int, int]:
    """`08:00-12:00` -> (480, 720); end may be 24:00; raise ValueError otherwise."""
    m = _SPAN.match(text.strip())
    if not m:
        raise ValueError(f"'{text}' is not a span like 08:00-18:00")
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60 or end <= start:
        raise ValueError(f"'{text}' is not a valid span within one day (end after start, up to 24:00)")
    return start, end


class Calendar(Strict):
    """Opening hours per weekday; holidays are closed unless listed in special_days (make-up workdays)."""

    timezone: str = "Asia/Shanghai"
    weekly: dict[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], list[str]] = Field(
        default_factory=dict)
    holidays: list[dt.date] = Field(default_factory=list)
    special_days: dict[dt.date, list[str]] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @field_validator("weekly", "special_days")
    @classmethod
    def _spans(cls, v: dict[Any, list[str]]) -> dict[Any, list[str]]:
        for spans in v.values():
            for span in spans:
                span_minutes(span)
        return v

    @cached_property
    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def _weekly(self) -> dict[int, list[tuple[int, int]]]:
        return {DAYS.index(d): [span_minutes(s) for s in spans] for d, spans in self.weekly.items()}

    @cached_property
    def _special(self) -> dict[dt.date, list[tuple[int, int]]]:
        return {d: [span_minutes(s) for s in spans] for d, spans in self.special_days.items()}

    @cached_property
    def _holidays(self) -> frozenset[dt.date]:
        return frozenset(self.holidays)

    def state(self, now: float) -> CalendarState:
        """'open', 'holiday' (a listed holiday, not a make-up day) or 'closed' at epoch `now`."""
        local = dt.datetime.fromtimestamp(now, self._zone)
        day = local.date()
        if day in self._special:
            spans = self._special[day]
        elif day in self._holidays:
            return "holiday"
        else:
            spans = self._weekly.get(local.weekday(), [])
        minute = local.hour * 60 + local.minute
        return "open" if any(a <= minute < b for a, b in spans) else "closed"

    def is_open(self, now: float) -> bool:
        return self.state(now) == "open"
