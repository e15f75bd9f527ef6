"""The hotline's one calendar (`config/calendar.yaml`): its time zone, public holidays, make-up
workdays and named business-hours sets.

Every feature reads these facts here and nowhere else: the ACD's queue hours, the IVR's
hours branches, the dialer's working days, work-order and callback deadlines, the KPI
report's days. A queue, campaign or IVR branch names an hours set (`hours: business_hours`);
a second definition of any of these facts in another file is a `file:line` error
(`reject_site_keys`).

A day is one of three kinds: a *working* day (a weekday, or a weekend day worked in lieu,
调休上班), a *rest* day (a weekend day) or a *holiday* (法定节假日 and the days off
arranged around it). An hours set gives its open spans per kind of day. Pure: callers pass
`now` (epoch seconds); `load_calendar` is the only reader of the file.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, Field, ValidationError, field_validator, model_validator

from .configfile import ConfigError, ConfigProblem, Strict, load_data, load_model, node_line, validation_problems

M = TypeVar("M", bound=BaseModel)

CALENDAR_FILE = "calendar.yaml"
DEFAULT_TIMEZONE = "Asia/Shanghai"  # the one place it is written; calendar.yaml's `timezone` overrides it
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DayKind = Literal["working", "rest", "holiday"]
CalendarState = Literal["open", "closed", "holiday"]
DaysRule = Literal["any", "working", "no_holidays"]

# Keys that would define a second calendar: rejected in every other config file.
SITE_KEYS = ("timezone", "holidays", "workdays", "makeup_workdays", "special_days", "weekend", "calendars",
             "calendar")
_WHY = {
    "timezone": "the time zone is set once, in calendar.yaml",
    "calendars": "opening hours are the named hours sets of calendar.yaml: refer to one with `hours: <name>`",
    "calendar": "the calendar is calendar.yaml (holidays, make-up workdays, hours sets), defined once",
}
_WHY_DAYS = "holidays and make-up workdays are defined once, in calendar.yaml"


def known_zone(value: str) -> str:
    """The one time zone check: an IANA name this machine knows, else ValueError."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


TimeZoneName = Annotated[str, AfterValidator(known_zone)]


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


def _span(text: str) -> str:
    span_minutes(text)
    return text


Span = Annotated[str, AfterValidator(_span)]
HoursName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,38}$")]


class Hours(Strict):
    """A named business-hours set: open spans on working days, rest days and holidays."""

    on_working_days: list[Span] = Field(default_factory=list)
    on_rest_days: list[Span] = Field(default_factory=list)
    on_holidays: list[Span] = Field(default_factory=list)

    @cached_property
    def _by_kind(self) -> dict[str, list[tuple[int, int]]]:
        return {"working": [span_minutes(s) for s in self.on_working_days],
                "rest": [span_minutes(s) for s in self.on_rest_days],
                "holiday": [span_minutes(s) for s in self.on_holidays]}

    def spans(self, kind: DayKind) -> list[tuple[int, int]]:
        """Open spans as (start, end) minutes of the day for a day of this kind."""
        return self._by_kind[kind]


def _dated(value: Any) -> Any:
    """`[2026-10-01, ...]` is accepted as a mapping with empty names (tests, quick edits)."""
    if isinstance(value, list):
        return {d: "" for d in value}
    return value


class Calendar(Strict):
    """config/calendar.yaml: the site's time zone, days off, make-up workdays and hours sets."""

    timezone: TimeZoneName = DEFAULT_TIMEZONE
    weekend: list[Weekday] = Field(default_factory=lambda: list[Weekday](["sat", "sun"]))
    holidays: dict[dt.date, str] = Field(default_factory=dict)  # date -> name (法定节假日 and days off around it)
    workdays: dict[dt.date, str] = Field(default_factory=dict)  # weekend days worked in lieu (调休上班) -> why
    hours: dict[HoursName, Hours] = Field(default_factory=dict)

    _v_dated = field_validator("holidays", "workdays", mode="before")(_dated)

    @model_validator(mode="after")
    def _consistent(self) -> Calendar:
        both = sorted(set(self.holidays) & set(self.workdays))
        if both:
            raise ValueError(f"dates listed both as holiday and as make-up workday: {', '.join(map(str, both))}")
        weekend = {DAYS.index(d) for d in self.weekend}
        plain = sorted(d for d in self.workdays if d.weekday() not in weekend)
        if plain:
            raise ValueError(f"make-up workdays must be weekend days (a weekday is a working day anyway): "
                             f"{', '.join(f'{d} ({DAYS[d.weekday()]})' for d in plain)}")
        return self

    # --- time -------------------------------------------------------------------------
    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local(self, now: float) -> dt.datetime:
        return dt.datetime.fromtimestamp(now, self.zone)

    def today(self, now: float) -> dt.date:
        """The local date at epoch `now`."""
        return self.local(now).date()

    def at(self, day: dt.date, minute: float = 0.0) -> float:
        """Epoch seconds of `minute` minutes after local midnight of `day` (1440: the day's end)."""
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=self.zone)
        return (midnight + dt.timedelta(minutes=minute)).timestamp()

    # --- days -------------------------------------------------------------------------
    @cached_property
    def _weekend(self) -> frozenset[int]:
        return frozenset(DAYS.index(d) for d in self.weekend)

    def day_kind(self, day: dt.date) -> DayKind:
        if day in self.workdays:
            return "working"
        if day in self.holidays:
            return "holiday"
        return "rest" if day.weekday() in self._weekend else "working"

    def is_working_day(self, day: dt.date) -> bool:
        return self.day_kind(day) == "working"

    def is_holiday(self, day: dt.date) -> bool:
        """A public holiday or a day off arranged around one (not merely a weekend)."""
        return self.day_kind(day) == "holiday"

    def day_allowed(self, day: dt.date, rule: DaysRule) -> bool:
        """A campaign's `days`: any day, working days only, or every day but holidays."""
        if rule == "working":
            return self.is_working_day(day)
        if rule == "no_holidays":
            return not self.is_holiday(day)
        return True

    def add_working_days(self, day: dt.date, n: int) -> dt.date:
        """The n-th working day after `day` (n=0: `day` itself if working, else the next one)."""
        d = day
        if n == 0:
            while not self.is_working_day(d):
                d += dt.timedelta(days=1)
            return d
        left = n
        while left > 0:
            d += dt.timedelta(days=1)
            if self.is_working_day(d):
                left -= 1
        return d

    def years(self) -> list[int]:
        """The years the calendar lists holidays for (outside them every weekday counts as working)."""
        return sorted({d.year for d in self.holidays})

    # --- hours ------------------------------------------------------------------------
    def hours_set(self, name: str) -> Hours:
        try:
            return self.hours[name]
        except KeyError:
            raise KeyError(f"unknown hours set {name!r} (calendar.yaml hours: "
                           f"{', '.join(sorted(self.hours)) or 'none'})") from None

    def spans(self, name: str, day: dt.date) -> list[tuple[int, int]]:
        """The open spans (minutes of the day) of hours set `name` on local date `day`."""
        return self.hours_set(name).spans(self.day_kind(day))

    def state(self, name: str, now: float) -> CalendarState:
        """'open', 'holiday' (closed because it is a holiday) or 'closed' for hours set `name` at `now`."""
        local = self.local(now)
        kind = self.day_kind(local.date())
        minute = local.hour * 60 + local.minute
        if any(a <= minute < b for a, b in self.hours_set(name).spans(kind)):
            return "open"
        return "holiday" if kind == "holiday" else "closed"

    def is_open(self, name: str, now: float) -> bool:
        return self.state(name, now) == "open"


def load_calendar(config_dir: str | Path) -> Calendar:
    """The one reader of `<config_dir>/calendar.yaml` (absent: the default zone, no holidays, no hours sets)."""
    path = Path(config_dir) / CALENDAR_FILE
    return load_model(path, Calendar, default_empty=True) if path.exists() else Calendar()


def site_key_problems(path: str | Path, data: Mapping[str, Any], root: Any,
                      keys: Iterable[str] = SITE_KEYS) -> list[ConfigProblem]:
    """A second definition of the calendar's facts in another file, each as `file:line: message`."""
    wanted = set(keys)
    return [ConfigProblem(str(path), node_line(root, (key,)), f"{key}: {_WHY.get(key, _WHY_DAYS)}")
            for key in data if isinstance(key, str) and key in wanted]


def without_site_keys(data: dict[str, Any], keys: Iterable[str] = SITE_KEYS) -> dict[str, Any]:
    """`data` less the keys `site_key_problems` reports (so the rest is still checked in the same pass)."""
    drop = set(keys)
    return {k: v for k, v in data.items() if k not in drop}


def reject_site_keys(path: str | Path, data: Any, root: Any, keys: Iterable[str] = SITE_KEYS) -> None:
    """Raise ConfigError when a top-level key of `data` would define the calendar a second time."""
    if isinstance(data, Mapping):
        problems = site_key_problems(path, data, root, keys)
        if problems:
            raise ConfigError(problems)


def unknown_hours(name: str, calendar: Calendar) -> str | None:
    """The message for an hours-set name calendar.yaml does not define, or None."""
    if name in calendar.hours:
        return None
    return f"unknown hours set '{name}' (calendar.yaml hours: {', '.join(sorted(calendar.hours)) or 'none'})"


def load_site_model(path: str | Path, model: type[M], calendar: Calendar, *, text: str | None = None,
                    field: str | None = "calendar", inject: Mapping[str, Any] | None = None,
                    moved: Mapping[str, str] | None = None) -> M:
    """Validate a feature's YAML file as `model`, with the site calendar put in `field` (None: not at all)
    and the values of `inject` (facts another file defines) put in their keys.

    The file itself may not define the calendar's facts (`SITE_KEYS`), nor the keys of `moved`
    (key -> where it is defined now) or `inject`: those are `file:line` errors. An absent or empty
    file gives the model's defaults.
    """
    data, root = load_data(path, text) if text is not None or Path(path).exists() else (None, None)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError.at(path, node_line(root, ()), "expected a mapping of keys at the top level")
    problems = site_key_problems(path, data, root)
    data = without_site_keys(data)
    for key, why in {**{k: "is defined once, elsewhere" for k in inject or {}}, **(moved or {})}.items():
        if key in data:
            problems.append(ConfigProblem(str(path), node_line(root, (key,)), f"{key}: {why}"))
            del data[key]
    if field is not None:
        data = {**data, field: calendar}
    data.update(inject or {})
    try:
        cfg = model.model_validate(data)
    except ValidationError as exc:
        problems += validation_problems(path, root, exc)
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: p.line))
    return cfg
