"""A repair order's steps, as a table, and its deadlines (pure: the order and `now` in, decisions out).

    dispatched ──ack──▶ acknowledged ──arrive──▶ arrived ──report──▶ reported ──restore──▶ restored
         └────────────arrive (arrival acknowledges)──┘    └──────────restore (with cause)──────┘
    any open step ──cancel──▶ cancelled

Deadlines (workorders.yaml `crews:`, the one table): acknowledge within `acknowledge` of dispatch;
arrive within the area class's `arrive` of dispatch (city 45 min, suburb 90, remote 120); the report
within `report` (30 min) of arrival; restoration by the time the crew reported (if it did). A step
still to be done gets its reminder at its warning time and an escalation to the shift leader once
overdue, each once. An illegal step raises `IllegalStep` naming the stage and the step.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..workorders.deadlines import CrewDeadlines

DISPATCHED, ACKNOWLEDGED, ARRIVED, REPORTED, RESTORED, CANCELLED = (
    "dispatched", "acknowledged", "arrived", "reported", "restored", "cancelled")
OPEN = frozenset({DISPATCHED, ACKNOWLEDGED, ARRIVED, REPORTED})
STEPS: dict[tuple[str, str], str] = {
    (DISPATCHED, "ack"): ACKNOWLEDGED,
    (DISPATCHED, "arrive"): ARRIVED,
    (ACKNOWLEDGED, "arrive"): ARRIVED,
    (ARRIVED, "report"): REPORTED,
    (ARRIVED, "restore"): RESTORED,
    (REPORTED, "report"): REPORTED,  # a new expected time
    (REPORTED, "restore"): RESTORED,
    **{(s, "cancel"): CANCELLED for s in (DISPATCHED, ACKNOWLEDGED, ARRIVED, REPORTED)},
}


class IllegalStep(ValueError):
    def __init__(self, stage: str, step: str) -> None:
        super().__init__(f"a repair order that is {stage} cannot take step {step!r}")
        self.stage, self.step = stage, step


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    crew: str
    area: str
    area_class: str
    stage: str
    dispatched_ts: float
    ack_ts: float | None = None
    arrived_ts: float | None = None
    reported_ts: float | None = None
    restored_ts: float | None = None
    expected_ts: float | None = None  # restoration, as the crew reported it
    cause: str = ""
    location: str = ""
    alerted: frozenset[str] = frozenset()  # "arrive.reminder", "report.escalation", ...


def step(order: Order, name: str, now: float, *, cause: str = "", location: str = "",
         expected_ts: float | None = None) -> Order:
    """The order after the crew's (or the dispatcher's) step `name` at `now`."""
    to = STEPS.get((order.stage, name))
    if to is None:
        raise IllegalStep(order.stage, name)
    if name == "ack":
        return replace(order, stage=to, ack_ts=now)
    if name == "arrive":
        return replace(order, stage=to, arrived_ts=now, ack_ts=order.ack_ts or now)
    if name == "report":
        if not cause or not location or expected_ts is None:
            raise ValueError("the report needs the cause, the location and the expected restoration time")
        return replace(order, stage=to, reported_ts=order.reported_ts or now, cause=cause, location=location,
                       expected_ts=expected_ts)
    if name == "restore":
        if not (cause or order.cause):
            raise ValueError("restoration needs the cause")
        return replace(order, stage=to, restored_ts=now, cause=cause or order.cause,
                       location=location or order.location)
    return replace(order, stage=to)


@dataclass(frozen=True, slots=True)
class Due:
    step: str        # acknowledge | arrive | report | restore
    warn_ts: float | None
    due_ts: float


def deadlines(order: Order, table: CrewDeadlines) -> list[Due]:
    """The deadlines of the steps still to be done."""
    out: list[Due] = []
    if order.stage not in OPEN:
        return out
    d = order.dispatched_ts
    if order.stage == DISPATCHED:
        s = table.acknowledge
        out.append(Due("acknowledge", s.warn_ts(d), s.due_ts(d)))
    if order.stage in (DISPATCHED, ACKNOWLEDGED):
        s = table.arrive_for(order.area_class)
        out.append(Due("arrive", s.warn_ts(d), s.due_ts(d)))
    if order.stage == ARRIVED and order.arrived_ts is not None:
        s = table.report
        out.append(Due("report", s.warn_ts(order.arrived_ts), s.due_ts(order.arrived_ts)))
    if order.stage == REPORTED and order.expected_ts is not None:
        warn = order.expected_ts - table.restore_warn_minutes * 60 if table.restore_warn_minutes else None
        out.append(Due("restore", warn, order.expected_ts))
    return out


@dataclass(frozen=True, slots=True)
class Alert:
    order_id: int
    step: str
    level: str  # reminder (to the crew) | escalation (to the shift leader)
    due_ts: float

    @property
    def key(self) -> str:
        return f"{self.step}.{self.level}"


def alerts(orders: Iterable[Order], now: float, table: CrewDeadlines) -> tuple[list[Alert], float | None]:
    """The reminders and escalations due at `now` not sent yet, and when to look again."""
    out: list[Alert] = []
    upcoming: list[float] = []
    for o in orders:
        for due in deadlines(o, table):
            escalated = f"{due.step}.escalation" in o.alerted
            if now > due.due_ts:
                if not escalated:
                    out.append(Alert(o.id, due.step, "escalation", due.due_ts))
                continue
            upcoming.append(due.due_ts)
            if due.warn_ts is not None and f"{due.step}.reminder" not in o.alerted:
                if now >= due.warn_ts:
                    out.append(Alert(o.id, due.step, "reminder", due.due_ts))
                else:
                    upcoming.append(due.warn_ts)
    return out, min(upcoming, default=None)


def on_time(order: Order, table: CrewDeadlines) -> dict[str, bool | None]:
    """Per step: was it done by its deadline (None: not done, or no deadline)? For the KPIs."""
    d = order.dispatched_ts
    out: dict[str, bool | None] = {"arrive": None, "report": None}
    if order.arrived_ts is not None:
        out["arrive"] = order.arrived_ts <= table.arrive_for(order.area_class).due_ts(d)
        if order.reported_ts is not None:
            out["report"] = order.reported_ts <= table.report.due_ts(order.arrived_ts)
    return out
