"""Work-order deadlines (`config/workorders.yaml`): the one table, and the pure deadline engine.

The 95598 stages of a work order (工单): it is *accepted* (受理: the call), *dispatched* (派单)
to a responsible unit, and *replied* (回复: the unit's answer, status `resolved`); once closed, the
customer gets a satisfaction *callback* (回访). The table gives, per category, when each stage is
due, counted from acceptance (a reopened order is accepted again when reopened), and when a
reminder (预警) goes out before it; an ordinary order is replied within 2+1 working days: the
reminder after 2, overdue (escalated to the supervisors) after 3. Working days are calendar.yaml's.

The desktop (due times, overdue flags), the KPI report (closed on time: the deadline an order got
when it was opened) and the satisfaction callbacks (their due time) all read this one table.

Pure: `WorkorderTable.deadlines` takes the acceptance time, `alerts` takes `now` and the orders'
stored deadlines and returns the reminders and escalations due and when to look again; the
desktop's `WorkorderWatch` (web/workorder_watch.py) sends them as events.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from ..calendar import Calendar, load_calendar, load_site_model
from ..configfile import Strict

WORKORDERS_FILE = "workorders.yaml"
# statuses in which a stage is still to be done
DISPATCH_PENDING = frozenset({"open", "reopened"})
REPLY_PENDING = frozenset({"open", "dispatched", "reopened"})
StageName = Literal["dispatch", "reply"]
Level = Literal["reminder", "escalation"]


class Limit(Strict):
    """A time allowed: minutes, hours, or working days (same local time on the Nth working day after)."""

    minutes: Annotated[float, Field(gt=0)] | None = None
    hours: Annotated[float, Field(gt=0)] | None = None
    working_days: Annotated[int, Field(gt=0, le=60)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Limit:
        if sum(x is not None for x in (self.minutes, self.hours, self.working_days)) != 1:
            raise ValueError("give exactly one of minutes, hours or working_days")
        return self

    def after(self, start_ts: float, calendar: Calendar) -> float:
        """The moment this limit runs out for something that started at `start_ts`.

        Working days count whole days after the start day, holidays skipped and make-up workdays
        counted: a Friday-afternoon order with 2 working days is due Tuesday afternoon."""
        if self.minutes is not None:
            return start_ts + self.minutes * 60
        if self.hours is not None:
            return start_ts + self.hours * 3600
        assert self.working_days is not None
        local = calendar.local(start_ts)
        day = calendar.add_working_days(local.date(), self.working_days)
        return dt.datetime.combine(day, local.timetz()).timestamp()

    def _plain_s(self) -> float | None:
        if self.minutes is not None:
            return self.minutes * 60
        return self.hours * 3600 if self.hours is not None else None

    def longest_s(self) -> float:
        """An upper bound of the limit in seconds (working days: with the longest holiday break)."""
        plain = self._plain_s()
        return plain if plain is not None else (self.working_days or 0) * 86400.0 * 7 / 5 + 14 * 86400.0


class Stage(Strict):
    """When a stage is due, and when a reminder goes out before it (none: no reminder)."""

    due: Limit
    warn: Limit | None = None

    @model_validator(mode="after")
    def _warn_first(self) -> Stage:
        if self.warn is None:
            return self
        a, b = self.warn._plain_s(), self.due._plain_s()
        same_days = self.warn.working_days is not None and self.due.working_days is not None
        if (a is not None and b is not None and a >= b) or \
                (same_days and (self.warn.working_days or 0) >= (self.due.working_days or 0)):
            raise ValueError("warn must come before due")
        return self


class CategoryDeadlines(Strict):
    """One work-order category's stages: dispatch (none: no dispatch deadline), reply, callback."""

    dispatch: Stage | None = None
    reply: Stage
    callback: Limit = Field(default_factory=lambda: Limit(working_days=1))  # 回访, counted from closing


def _ordinary(days: int = 2, grace: int = 1) -> CategoryDeadlines:
    return CategoryDeadlines(dispatch=Stage(due=Limit(hours=2)),
                             reply=Stage(warn=Limit(working_days=days), due=Limit(working_days=days + grace)))


def _default_categories() -> dict[str, CategoryDeadlines]:
    """The sample table (config/workorders.yaml ships the same)."""
    return {
        "fault_repair": CategoryDeadlines(dispatch=Stage(warn=Limit(minutes=5), due=Limit(minutes=10)),
                                          reply=Stage(warn=Limit(hours=20), due=Limit(hours=24))),
        "complaint": CategoryDeadlines(dispatch=Stage(due=Limit(hours=2)),
                                       reply=Stage(warn=Limit(hours=36), due=Limit(hours=48))),
        "report": CategoryDeadlines(dispatch=Stage(due=Limit(hours=2)),
                                    reply=Stage(warn=Limit(hours=168), due=Limit(hours=216))),
        "inquiry": _ordinary(2, 1),
        "business": _ordinary(4, 1),
    }


# --- repair crews (issue 16): the steps of a repair order --------------------------------------------


class CrewStep(Strict):
    """A crew step's time allowed (minutes), and a reminder that many minutes into it (none: no reminder)."""

    due_minutes: Annotated[float, Field(gt=0, le=24 * 60)]
    warn_minutes: Annotated[float, Field(gt=0, le=24 * 60)] | None = None

    @model_validator(mode="after")
    def _warn_first(self) -> CrewStep:
        if self.warn_minutes is not None and self.warn_minutes >= self.due_minutes:
            raise ValueError("warn_minutes must come before due_minutes")
        return self

    def due_ts(self, start_ts: float) -> float:
        return start_ts + self.due_minutes * 60

    def warn_ts(self, start_ts: float) -> float | None:
        return None if self.warn_minutes is None else start_ts + self.warn_minutes * 60


AreaClassName = Literal["city", "suburb", "remote"]


def _arrive_defaults() -> dict[AreaClassName, CrewStep]:
    """95598: arrive within 45 minutes in the city, 90 in the suburbs, 2 hours in remote areas."""
    return {"city": CrewStep(warn_minutes=35, due_minutes=45), "suburb": CrewStep(warn_minutes=75, due_minutes=90),
            "remote": CrewStep(warn_minutes=100, due_minutes=120)}


class CrewDeadlines(Strict):
    """The deadlines of a repair order's steps: acknowledge and arrive counted from dispatch (arrival by
    the area's class), the report (cause, location, expected restoration) from arrival."""

    acknowledge: CrewStep = Field(default_factory=lambda: CrewStep(warn_minutes=3, due_minutes=5))
    arrive: dict[AreaClassName, CrewStep] = Field(default_factory=_arrive_defaults)
    report: CrewStep = Field(default_factory=lambda: CrewStep(warn_minutes=20, due_minutes=30))
    restore_warn_minutes: Annotated[float, Field(ge=0, le=600)] = 15  # reminder before the reported time

    def arrive_for(self, area_class: str) -> CrewStep:
        for name, step in self.arrive.items():
            if name == area_class:
                return step
        return self.arrive.get("city") or _arrive_defaults()["city"]


@dataclass(frozen=True, slots=True)
class Deadlines:
    """An order's deadlines, epoch seconds (None: that stage has no deadline or no reminder)."""

    dispatch_warn_ts: float | None
    dispatch_due_ts: float | None
    warn_ts: float | None  # the reply reminder
    due_ts: float  # the reply deadline: overdue after it


class WorkorderTable(Strict):
    """config/workorders.yaml: the deadlines of each work-order category."""

    categories: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,29}$")], CategoryDeadlines] = Field(
        default_factory=_default_categories, min_length=1)
    calendar: Calendar = Field(default_factory=Calendar)  # the site calendar (calendar.yaml), put in by the loader
    crews: CrewDeadlines = Field(default_factory=lambda: CrewDeadlines())  # repair crews' steps (issue 16)

    def rules(self, category: str) -> CategoryDeadlines | None:
        return self.categories.get(category)

    def deadlines(self, category: str, accepted_ts: float) -> Deadlines:
        """The deadlines of an order of `category` accepted (or reopened) at `accepted_ts`; KeyError if the
        category takes no work order."""
        c = self.categories[category]
        cal = self.calendar

        def at(limit: Limit | None) -> float | None:
            return None if limit is None else limit.after(accepted_ts, cal)

        return Deadlines(dispatch_warn_ts=at(c.dispatch.warn) if c.dispatch else None,
                         dispatch_due_ts=at(c.dispatch.due) if c.dispatch else None,
                         warn_ts=at(c.reply.warn), due_ts=c.reply.due.after(accepted_ts, cal))

    def callback_due(self, category: str, closed_ts: float) -> float:
        """When the satisfaction callback of an order closed at `closed_ts` is due (unknown category:
        the default of one working day)."""
        c = self.categories.get(category)
        limit = c.callback if c is not None else Limit(working_days=1)
        return limit.after(closed_ts, self.calendar)

    def longest_s(self) -> float:
        """An upper bound of any reply deadline in seconds (how far the KPI report reads past a range)."""
        return max(c.reply.due.longest_s() for c in self.categories.values())


def load_workorder_table(config_dir: str | Path, calendar: Calendar | None = None) -> WorkorderTable:
    """`<config_dir>/workorders.yaml` (absent: the sample table), with the site calendar."""
    site = calendar if calendar is not None else load_calendar(config_dir)
    return load_site_model(Path(config_dir) / WORKORDERS_FILE, WorkorderTable, site)


# --- reminders and escalations -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderClock:
    """What the engine needs of one stored order: its status, deadlines and the alerts already sent."""

    id: int
    status: str
    dispatch_warn_ts: float | None
    dispatch_due_ts: float | None
    warn_ts: float | None
    due_ts: float
    alerted: frozenset[str] = frozenset()  # "dispatch.reminder", "reply.escalation", ...


@dataclass(frozen=True, slots=True)
class Alert:
    order_id: int
    stage: StageName
    level: Level
    due_ts: float  # the stage's deadline

    @property
    def key(self) -> str:
        return f"{self.stage}.{self.level}"


def alerts(orders: Iterable[OrderClock], now: float) -> tuple[list[Alert], float | None]:
    """The reminders and escalations due at `now` that were not sent yet, and the next moment to look again
    (a reminder's time, or a deadline: its escalation follows as soon as it has passed).

    A stage still to be done gets a reminder once its warning time has come and an escalation once
    it is overdue (after its due time); a stage already overdue gets the escalation only."""
    out: list[Alert] = []
    upcoming: list[float] = []
    for o in orders:
        stages: list[tuple[StageName, float | None, float | None]] = []
        if o.status in DISPATCH_PENDING and o.dispatch_due_ts is not None:
            stages.append(("dispatch", o.dispatch_warn_ts, o.dispatch_due_ts))
        if o.status in REPLY_PENDING:
            stages.append(("reply", o.warn_ts, o.due_ts))
        for stage, warn, due in stages:
            assert due is not None
            escalated = f"{stage}.escalation" in o.alerted
            if now > due:
                if not escalated:
                    out.append(Alert(o.id, stage, "escalation", due))
                continue
            if not escalated:
                upcoming.append(due)
            if warn is not None and f"{stage}.reminder" not in o.alerted:
                if now >= warn:
                    out.append(Alert(o.id, stage, "reminder", due))
                else:
                    upcoming.append(warn)
    return out, min(upcoming, default=None)

