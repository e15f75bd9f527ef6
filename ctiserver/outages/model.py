"""What an outage is, checked (pure): kind, cause, where (areas, feeders, transformer codes or accounts),
when (start, expected restoration, end), and who is told how and when.

Kinds: planned (计划停电), temporary (临时停电), fault (故障停电), load_limit (限电).
A planned outage is announced at least `planned_min_days` (7) ahead: an earlier one is saved with a
warning (the rulebook's notice period is then broken, and the dispatcher should know it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ..calendar import Calendar, load_calendar, load_site_model
from ..configfile import ConfigError, ConfigProblem, Strict
from ..outbound.model import TimeRange, _ranges
from ..outbound.rules import next_allowed

Channel = Literal["phone", "sms"]
OutageKind = Literal["planned", "temporary", "fault", "load_limit"]
KINDS: tuple[str, ...] = ("planned", "temporary", "fault", "load_limit")
ANNOUNCED = frozenset({"planned", "temporary"})  # known ahead: customers get notices
OUTAGES_FILE = "outages.yaml"
Code = Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[^\s;,]+$")]
# a moment: epoch seconds before 2100 (a time past that is a typo, and no calendar can place it)
Moment = Annotated[float, Field(gt=0, lt=4_102_444_800)]


class NoticeConfig(Strict):
    """How far ahead customers are told of an announced outage (the rulebook's lead times), and how."""

    planned_lead_days: Annotated[float, Field(gt=0, le=60)] = 7
    temporary_lead_hours: Annotated[float, Field(gt=0, le=240)] = 24
    important: tuple[Channel, ...] = ("phone", "sms")
    others: tuple[Channel, ...] = ("sms",)
    # when notices may go (local, calendar.yaml's zone): a lead time that falls at night moves into these
    windows: list[str] = Field(default_factory=lambda: ["08:00-21:00"])

    _v_windows = field_validator("windows")(_ranges)

    def window_ranges(self) -> tuple[TimeRange, ...]:
        return tuple(TimeRange.parse(w) for w in self.windows)


class OutagesConfig(Strict):
    calendar: Calendar = Field(default_factory=Calendar)
    planned_min_days: Annotated[float, Field(ge=0, le=60)] = 7  # warned when a planned outage is nearer
    notices: NoticeConfig = Field(default_factory=NoticeConfig)
    # IVR nodes a fault call reaches when the caller's area has an outage under way: the call is attached
    attach_at_nodes: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,60}$")]] = \
        Field(default_factory=lambda: ["fault_known"])


def load_outages_config(config_dir: str | Path, calendar: Calendar | None = None) -> OutagesConfig:
    site = calendar if calendar is not None else load_calendar(config_dir)
    return load_site_model(Path(config_dir) / OUTAGES_FILE, OutagesConfig, site)


def check_outages(config_dir: Path) -> list[ConfigProblem]:
    try:
        load_outages_config(config_dir)
    except ConfigError as exc:
        return exc.problems
    return []


class Scope(Strict):
    """Where the power is off: any of areas, feeders, transformer codes, or a list of accounts."""

    areas: list[Code] = Field(default_factory=list, max_length=500)
    feeders: list[Code] = Field(default_factory=list, max_length=500)
    transformers: list[Code] = Field(default_factory=list, max_length=5000)
    accounts: list[Annotated[str, Field(pattern=r"^[0-9A-Za-z-]{1,20}$")]] = Field(default_factory=list,
                                                                                  max_length=100000)

    @model_validator(mode="after")
    def _something(self) -> Scope:
        if not (self.areas or self.feeders or self.transformers or self.accounts):
            raise ValueError("an outage needs an affected area: areas, feeders, transformers or accounts")
        return self

    def covers(self, *, area: str = "", feeder: str = "", transformer: str = "", account: str = "") -> bool:
        return bool((area and area in self.areas) or (feeder and feeder in self.feeders)
                    or (transformer and transformer in self.transformers) or (account and account in self.accounts))


class OutageIn(Strict):
    """A new outage as a dispatcher enters it (REST body, CLI options, desktop form)."""

    kind: OutageKind
    cause: Annotated[str, Field(min_length=1, max_length=200)]
    scope: Scope
    start_ts: Moment
    expected_restore_ts: Moment | None = None

    @model_validator(mode="after")
    def _order(self) -> OutageIn:
        if self.expected_restore_ts is not None and self.expected_restore_ts <= self.start_ts:
            raise ValueError("expected_restore_ts must be after start_ts")
        return self


class OutageChange(Strict):
    """An update: only the fields given change."""

    cause: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    scope: Scope | None = None
    start_ts: Moment | None = None
    expected_restore_ts: Moment | None = None


@dataclass(frozen=True, slots=True)
class Outage:
    id: int
    kind: str
    cause: str
    scope: Scope
    start_ts: float
    expected_restore_ts: float | None
    end_ts: float | None
    status: str  # open | closed
    created_by: str
    created_ts: float
    updated_ts: float
    reports: int = 0  # fault calls attached to it

    def active(self, now: float) -> bool:
        return self.status == "open" and self.start_ts <= now and (self.end_ts is None or now < self.end_ts)


def warnings_for(kind: str, start_ts: float, now: float, cfg: OutagesConfig) -> list[str]:
    """What the dispatcher is told but not stopped by."""
    out = []
    if kind == "planned" and start_ts - now < cfg.planned_min_days * 86400:
        days = max(0.0, (start_ts - now) / 86400)
        out.append(f"planned outage starts in {days:.1f} days: the rulebook asks for at least "
                   f"{cfg.planned_min_days:g} days' notice")
    return out


def merged(old: Outage, change: OutageChange) -> OutageIn:
    """The outage after `change`, validated as a whole (ValueError saying what is wrong)."""
    return OutageIn(kind=old.kind,  # type: ignore[arg-type]
                    cause=change.cause if change.cause is not None else old.cause,
                    scope=change.scope if change.scope is not None else old.scope,
                    start_ts=change.start_ts if change.start_ts is not None else old.start_ts,
                    expected_restore_ts=change.expected_restore_ts if change.expected_restore_ts is not None
                    else old.expected_restore_ts)


@dataclass(frozen=True, slots=True)
class Customer:
    account: str
    name: str
    phone: str
    area: str
    important: bool
    lang: str = "zh"


@dataclass(frozen=True, slots=True)
class Notice:
    """One customer told one way, at `due`."""

    channel: str  # phone | sms
    customer: Customer
    due: float


def notice_plan(outage: OutageIn | Outage, customers: Sequence[Customer], now: float,
                cfg: OutagesConfig) -> list[Notice]:
    """Who is told how, and when: the lead time before the start (not before now); important customers
    by `notices.important` (phone and SMS), everyone else by `notices.others` (SMS); important first."""
    if outage.kind not in ANNOUNCED:
        return []
    lead = (cfg.notices.planned_lead_days * 86400 if outage.kind == "planned"
            else cfg.notices.temporary_lead_hours * 3600)
    due = notice_due(outage.start_ts, lead, now, cfg.notices.window_ranges(), cfg.calendar)
    out: list[Notice] = []
    seen: set[tuple[str, str]] = set()
    for c in sorted(customers, key=lambda c: (not c.important, c.account, c.phone)):
        for channel in (cfg.notices.important if c.important else cfg.notices.others):
            key = (channel, c.phone)
            if key not in seen:
                seen.add(key)
                out.append(Notice(channel, c, due))
    return out


STEP_S = 900.0  # how finely an earlier moment inside the windows is looked for


def notice_due(start_ts: float, lead_s: float, now: float, windows: Sequence[TimeRange], calendar: Calendar) -> float:
    """When a notice goes: `lead_s` before the start (not before now), never at night: moved to the next moment
    inside `windows` if that still comes before the start, else back to the last one before it (the evening
    before, not the small hours); with no such moment left, the next window (a late notice, not a night one)."""
    due = max(now, start_ts - lead_s)
    nxt = next_allowed(due, windows, (), "any", calendar)
    if nxt is None:
        return due
    if nxt < start_ts:
        return nxt
    t = due
    while t - STEP_S >= now and due - t < 86400:
        t -= STEP_S
        if next_allowed(t, windows, (), "any", calendar) == t:
            return t
    return nxt


def when(ts: float | None, calendar: Calendar, lang: str) -> str:
    """A time as a message says it: 12月10日8:00 / 10 Dec 08:00; 待定 / to be announced when unknown."""
    if ts is None:
        return "待定" if lang == "zh" else "to be announced"
    local = calendar.local(ts)
    return f"{local.month}月{local.day}日{local:%H:%M}" if lang == "zh" else f"{local:%d %b %H:%M}"
