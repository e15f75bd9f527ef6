"""Shift patterns, agents and the rules of a roster (`roster:` in wfm.yaml), and the checks of a roster.

Time is counted in half hours (the forecast's and the staffing's unit). A pattern is a length, the
start times it may begin at, an optional meal whose place the roster chooses inside a window, and
short breaks at fixed offsets. A *variant* is one concrete way to work a pattern on a day (start and
meal slot); the solver picks at most one variant per agent and day. `violations` checks a finished
roster (the solver's or a supervisor's edit) against every rule, so a test can check each.

Pure: no clock, no IO.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from ..configfile import Strict

SLOT_MIN = 30
DAY_SLOTS = 24 * 60 // SLOT_MIN
_HHMM = re.compile(r"^([01]\d|2[0-3]):(00|30)$")
Hours = Annotated[float, Field(gt=0, le=16)]


def hhmm_slot(text: str) -> int:
    """'07:30' -> 15 (half hours since midnight); only whole and half hours."""
    if not _HHMM.match(text):
        raise ValueError(f"'{text}' is not a start time on the half hour like 07:00 or 07:30")
    h, m = text.split(":")
    return int(h) * 2 + int(m) // 30


def _half_hours(value: float, what: str) -> int:
    slots = value * 60 / SLOT_MIN
    if abs(slots - round(slots)) > 1e-9:
        raise ValueError(f"{what} must be a whole number of half hours, got {value}")
    return round(slots)


class Meal(Strict):
    """An unpaid meal the roster places inside [earliest_after_h, latest_after_h] hours after the start."""

    minutes: Annotated[int, Field(ge=30, le=120)] = 30
    earliest_after_h: Annotated[float, Field(ge=0.5)] = 3.0
    latest_after_h: Annotated[float, Field(ge=0.5)] = 5.0

    @model_validator(mode="after")
    def _window(self) -> Meal:
        _half_hours(self.minutes / 60, "meal minutes")
        _half_hours(self.earliest_after_h, "meal earliest_after_h")
        _half_hours(self.latest_after_h, "meal latest_after_h")
        if self.latest_after_h < self.earliest_after_h:
            raise ValueError("meal window: latest_after_h is before earliest_after_h")
        return self


class Break(Strict):
    """A short paid break at a fixed offset: it takes `minutes`/30 of an agent out of that half hour."""

    minutes: Annotated[int, Field(ge=5, le=30)] = 15
    after_h: Annotated[float, Field(ge=0.5)]

    @field_validator("after_h")
    @classmethod
    def _on_slot(cls, v: float) -> float:
        _half_hours(v, "break after_h")
        return v


class Pattern(Strict):
    length_h: Hours  # from login to logout, meal included
    start_times: Annotated[list[str], Field(min_length=1)]
    meal: Meal | None = None
    breaks: list[Break] = Field(default_factory=list)

    @field_validator("start_times")
    @classmethod
    def _starts(cls, v: list[str]) -> list[str]:
        for s in v:
            hhmm_slot(s)
        if len(set(v)) != len(v):
            raise ValueError("start_times lists a time twice")
        return v

    @model_validator(mode="after")
    def _fits(self) -> Pattern:
        n = _half_hours(self.length_h, "length_h")
        if self.meal is not None:
            end = _half_hours(self.meal.latest_after_h, "") + self.meal.minutes // SLOT_MIN
            if end >= n:
                raise ValueError(f"the meal window (until {self.meal.latest_after_h} h + {self.meal.minutes} min) "
                                 f"does not end before the shift's end ({self.length_h} h)")
        meal_slots = set() if self.meal is None else set(range(
            _half_hours(self.meal.earliest_after_h, ""),
            _half_hours(self.meal.latest_after_h, "") + self.meal.minutes // SLOT_MIN))
        for b in self.breaks:
            at = _half_hours(b.after_h, "")
            if at >= n:
                raise ValueError(f"a break at {b.after_h} h is not inside the {self.length_h} h shift")
            if at in meal_slots:
                raise ValueError(f"a break at {b.after_h} h falls in the meal window")
        return self

    @property
    def slots(self) -> int:
        return _half_hours(self.length_h, "length_h")


class Rules(Strict):
    max_consecutive_days: Annotated[int, Field(ge=1, le=7)] = 6
    min_rest_h: Annotated[float, Field(ge=0, le=48)] = 11.0  # from one shift's end to the next one's start
    max_days_per_week: Annotated[int, Field(ge=1, le=7)] = 5
    max_hours_per_week: Annotated[float, Field(gt=0, le=84)] = 44.0  # paid (meals excluded)


class AgentRules(Strict):
    """What the roster needs to know about an agent beyond acd.yaml (which gives ids, names, skills)."""

    team: str = ""
    patterns: list[str] = Field(default_factory=list)  # allowed patterns (empty: all)
    days_per_week: Annotated[int, Field(ge=0, le=7)] | None = None  # contract; None: up to the rule's max
    unavailable: list[dt.date] = Field(default_factory=list)  # leave, training away from the floor
    leader: bool | None = None  # may lead a shift; None: when acd.yaml gives them the supervisor skill


@dataclass(frozen=True)
class Agent:
    """An agent as the roster sees them: acd.yaml's id, name and skills with wfm.yaml's rules."""

    id: str
    skills: frozenset[str]
    name: str = ""
    team: str = ""
    patterns: tuple[str, ...] = ()
    days_per_week: int | None = None
    unavailable: frozenset[dt.date] = frozenset()
    leader: bool = False


class RosterConfig(Strict):
    patterns: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")], Pattern] = Field(default_factory=dict)
    rules: Rules = Field(default_factory=Rules)
    agents: dict[str, AgentRules] = Field(default_factory=dict)  # by acd.yaml agent id
    solver_seconds: Annotated[float, Field(gt=0, le=3600)] = 20.0
    leader_skill: str = "supervisor"  # the acd.yaml skill of shift leaders (班长席)

    @model_validator(mode="after")
    def _refs(self) -> RosterConfig:
        for aid, a in self.agents.items():
            unknown = [p for p in a.patterns if p not in self.patterns]
            if unknown:
                raise ValueError(f"agent {aid}: unknown pattern(s) {', '.join(unknown)} "
                                 f"(patterns: {', '.join(sorted(self.patterns)) or 'none'})")
            if a.days_per_week is not None and a.days_per_week > self.rules.max_days_per_week:
                raise ValueError(f"agent {aid}: days_per_week {a.days_per_week} is over the rule's "
                                 f"max_days_per_week {self.rules.max_days_per_week}")
        for name, p in self.patterns.items():
            paid = p.length_h - (p.meal.minutes / 60 if p.meal else 0)
            if paid > self.rules.max_hours_per_week:
                raise ValueError(f"pattern {name}: {paid} paid hours is over max_hours_per_week")
        return self

    def allowed(self, agent: Agent) -> list[str]:
        return list(agent.patterns) or sorted(self.patterns)

    def roster_agents(self, acd_agents: list[tuple[str, str, list[str]]]) -> list[Agent]:
        """(id, name, skills) from acd.yaml merged with this file's rules; an id here that acd.yaml does not
        know raises ValueError."""
        known = {aid for aid, _, _ in acd_agents}
        stray = sorted(set(self.agents) - known)
        if stray:
            raise ValueError(f"wfm.yaml roster.agents: {', '.join(stray)} not agents of acd.yaml")
        out = []
        for aid, name, skills in acd_agents:
            r = self.agents.get(aid, AgentRules())
            out.append(Agent(aid, frozenset(skills), name, r.team, tuple(r.patterns), r.days_per_week,
                             frozenset(r.unavailable),
                             r.leader if r.leader is not None else self.leader_skill in skills))
        return out


@dataclass(frozen=True)
class Variant:
    """One way to work a pattern on a day: on duty from `start` (slot of the day) for `length` slots."""

    pattern: str
    start: int  # half hour of the day the shift starts
    length: int  # half hours from start to end
    meal: tuple[int, ...]  # offsets (from start) of the meal's half hours
    breaks: tuple[tuple[int, float], ...]  # (offset, share of the half hour lost)
    paid_slots: int

    def coverage(self) -> list[tuple[int, float]]:
        """(offset from the start, share of an agent on the phones) for each half hour of the shift."""
        lost = dict(self.breaks)
        meal = set(self.meal)
        return [(i, 0.0 if i in meal else 1.0 - lost.get(i, 0.0)) for i in range(self.length)]

    @property
    def label(self) -> str:
        def t(slot: int) -> str:
            slot %= DAY_SLOTS
            return f"{slot // 2:02d}:{(slot % 2) * 30:02d}"
        meal = f" meal {t(self.start + self.meal[0])}" if self.meal else ""
        return f"{self.pattern} {t(self.start)}-{t(self.start + self.length)}{meal}"


def variants(name: str, p: Pattern) -> list[Variant]:
    """Every start time × meal position of pattern `name`."""
    out: list[Variant] = []
    n = p.slots
    breaks = tuple((_half_hours(b.after_h, ""), b.minutes / SLOT_MIN) for b in p.breaks)
    for start in (hhmm_slot(s) for s in p.start_times):
        if p.meal is None:
            out.append(Variant(name, start, n, (), breaks, n))
            continue
        m = p.meal.minutes // SLOT_MIN
        for off in range(_half_hours(p.meal.earliest_after_h, ""), _half_hours(p.meal.latest_after_h, "") + 1):
            out.append(Variant(name, start, n, tuple(range(off, off + m)), breaks, n - m))
    return out


@dataclass(frozen=True)
class Assignment:
    agent: str
    day: int  # 0..6, Monday first
    variant: Variant


@dataclass(frozen=True)
class Carried:
    """What the week before leaves an agent: their Sunday shift (None: off) and the run of days worked up
    to that Sunday (the rest and consecutive-days rules reach across the week boundary)."""

    last: Variant | None
    run: int


def carried(previous: list[Assignment]) -> dict[str, Carried]:
    """Per agent, what the previous week's roster leaves this week."""
    days: dict[str, dict[int, Variant]] = {}
    for a in previous:
        days.setdefault(a.agent, {})[a.day] = a.variant
    out = {}
    for agent, mine in days.items():
        run = 0
        while 6 - run in mine:
            run += 1
        out[agent] = Carried(mine.get(6), run)
    return out


def violations(assignments: list[Assignment], cfg: RosterConfig, agent_list: list[Agent],
               week: dt.date, before: dict[str, Carried] | None = None) -> list[str]:
    """Every rule a roster breaks, one line each (empty: none). `week` is its Monday; `before`: what the
    previous week's roster leaves (`carried`), for the rules that reach across the week boundary."""
    out: list[str] = []
    agents = {a.id: a for a in agent_list}
    rules = cfg.rules
    by_agent: dict[str, dict[int, Variant]] = {}
    for asg in assignments:
        a = agents.get(asg.agent)
        if a is None:
            out.append(f"{asg.agent}: not an agent of wfm.yaml")
            continue
        days = by_agent.setdefault(asg.agent, {})
        if asg.day in days:
            out.append(f"{asg.agent}: two shifts on day {asg.day + 1}")
        days[asg.day] = asg.variant
        if asg.variant.pattern not in cfg.allowed(a):
            out.append(f"{asg.agent}: pattern {asg.variant.pattern} is not one of theirs")
        elif asg.variant not in variants(asg.variant.pattern, cfg.patterns[asg.variant.pattern]):
            out.append(f"{asg.agent}: {asg.variant.label} is not a start time / meal place of the pattern")
        if week + dt.timedelta(days=asg.day) in a.unavailable:
            out.append(f"{asg.agent}: rostered on {week + dt.timedelta(days=asg.day)}, when unavailable")
    for aid, days in sorted(by_agent.items()):
        a = agents[aid]
        if len(days) > rules.max_days_per_week:
            out.append(f"{aid}: {len(days)} days, over max_days_per_week {rules.max_days_per_week}")
        if a.days_per_week is not None and len(days) != a.days_per_week:
            out.append(f"{aid}: {len(days)} days, the contract says {a.days_per_week}")
        hours = sum(v.paid_slots for v in days.values()) * SLOT_MIN / 60
        if hours > rules.max_hours_per_week + 1e-9:
            out.append(f"{aid}: {hours:g} paid hours, over max_hours_per_week {rules.max_hours_per_week:g}")
        run = 0
        for d in range(7):
            run = run + 1 if d in days else 0
            if run > rules.max_consecutive_days:
                out.append(f"{aid}: {run} days in a row, over max_consecutive_days {rules.max_consecutive_days}")
                break
        prior = (before or {}).get(aid)
        if prior is not None and prior.run:
            lead = 0
            while lead in days:
                lead += 1
            if prior.run + lead > rules.max_consecutive_days:
                out.append(f"{aid}: {prior.run + lead} days in a row across the week boundary, over "
                           f"max_consecutive_days {rules.max_consecutive_days}")
        if prior is not None and prior.last is not None and 0 in days:
            rest = (DAY_SLOTS + days[0].start) - (prior.last.start + prior.last.length)
            if rest * SLOT_MIN / 60 < rules.min_rest_h:
                out.append(f"{aid}: {rest * SLOT_MIN / 60:g} h rest between last Sunday and Monday, "
                           f"under min_rest_h {rules.min_rest_h:g}")
        for d in range(6):
            if d in days and d + 1 in days:
                rest = (DAY_SLOTS + days[d + 1].start) - (days[d].start + days[d].length)
                if rest * SLOT_MIN / 60 < rules.min_rest_h:
                    out.append(f"{aid}: {rest * SLOT_MIN / 60:g} h rest between day {d + 1} and {d + 2}, "
                               f"under min_rest_h {rules.min_rest_h:g}")
    return out
