"""Callbacks the ACD asks for: the pure rules of when to hand one to the ACD and what follows a try.

A callback is a durable record (see `store.py`) with a life of its own:

    pending ──plan: due, in window, queue open, room──▶ queued (waiting in the ACD for an agent)
    queued ──ACD offers an agent, the agent answers──▶ dialing (the customer is being called)
    dialing ──customer reached──▶ done
    dialing ──not reached──▶ pending (retry later) | not_reached (tries spent, or past due)
    pending/queued ──the customer redialled / a supervisor──▶ cancelled
    pending ──past due_ts──▶ expired
    pending ──its number is on the do-not-call list or blacklist now (not a kept place)──▶ cancelled

Nothing here touches IO; `plan` and `after_try` take `now` and return decisions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ..calendar import Calendar
from ..outbound.model import AcdCallbackConfig, TimeRange
from ..outbound.rules import next_allowed


class CallbackStatus:
    PENDING = "pending"
    QUEUED = "queued"
    DIALING = "dialing"
    DONE = "done"
    NOT_REACHED = "not_reached"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


OPEN = (CallbackStatus.PENDING, CallbackStatus.QUEUED, CallbackStatus.DIALING)
FINAL = (CallbackStatus.DONE, CallbackStatus.NOT_REACHED, CallbackStatus.EXPIRED, CallbackStatus.CANCELLED)

# What a try ends with (the customer's leg, from Asterisk's DIALSTATUS, or our own reading).
REACHED = "answered"
DIALSTATUS_OUTCOME = {
    "ANSWER": REACHED, "BUSY": "busy", "NOANSWER": "no_answer", "CONGESTION": "congestion",
    "CHANUNAVAIL": "failed", "CANCEL": "agent_hangup", "DONTCALL": "failed", "TORTURE": "failed",
    "INVALIDARGS": "failed",
}
# Why an agent did not take the callback ring (AMI OriginateResponse Reason) -> the ACD's RONA reason.
AGENT_RING_REASONS = {"5": "busy", "8": "congestion", "3": "noanswer", "1": "noanswer", "0": "noanswer"}


@dataclass(frozen=True, slots=True)
class CallbackView:
    """What the planner needs of one stored callback."""

    id: int
    number: str
    skill: str
    tier: str
    reason: str
    status: str
    attempts: int
    next_ts: float
    due_ts: float
    place_ts: float
    windows: tuple[TimeRange, ...] = ()  # its own calling windows (e.g. by customer class); () = the policy's


@dataclass(slots=True)
class CallbackPlan:
    queue: list[CallbackView]  # hand these to the ACD now, in this order
    expire: list[int]  # past due without being reached
    next_deadline: float | None
    blocked: Counter[str] = field(default_factory=Counter)
    exclude: list[tuple[int, str]] = field(default_factory=list)  # (id, list): listed since it was scheduled


@dataclass(frozen=True, slots=True)
class AfterTry:
    status: str
    next_ts: float | None  # pending only: when it may be queued again


class CallbackRules:
    """The policy of `acd_callbacks` in outbound.yaml, with the site calendar and quiet hours."""

    def __init__(self, cfg: AcdCallbackConfig, *, calendar: Calendar, quiet: Sequence[TimeRange] = ()) -> None:
        self.cfg = cfg
        self.calendar = calendar
        self.quiet = tuple(quiet)
        self.windows = cfg.window_ranges

    def plan(self, now: float, pending: Sequence[CallbackView], in_acd: int,
             queue_open: Callable[[str], bool], listed: Mapping[str, str] | None = None) -> CallbackPlan:
        """Which pending callbacks go to the ACD now: the earliest due first (then the oldest place),
        inside the calling windows and outside quiet hours, while their queue is open and fewer than
        `max_in_acd` callbacks already wait there.

        `listed` (number -> list) says which numbers are on the do-not-call list or the blacklist
        now: a work-order callback to one, or an automatic one while `skip_dnc` is on, is given up,
        however long ago it was scheduled. A kept place never is: the customer asked for that call."""
        out = CallbackPlan([], [], None)
        deadlines: list[float] = []
        room = self.cfg.max_in_acd - in_acd
        opens: dict[tuple[TimeRange, ...], float | None] = {}  # when each set of windows opens
        for cb in sorted(pending, key=lambda c: (c.due_ts, c.place_ts, c.id)):
            if cb.status != CallbackStatus.PENDING:
                continue
            if now >= cb.due_ts:
                out.expire.append(cb.id)
                continue
            if cb.next_ts > now:
                deadlines.append(min(cb.next_ts, cb.due_ts))
                continue
            on_list = (listed or {}).get(cb.number)
            if on_list is not None and gives_way_to_lists(cb.reason, self.cfg.skip_dnc):
                out.exclude.append((cb.id, on_list))
                out.blocked["dnc" if on_list == "dnc" else "blacklist"] += 1
                continue
            if cb.reason != "in_place":  # a kept place rings at its turn, whatever the hour
                windows = cb.windows or self.windows
                if windows not in opens:
                    opens[windows] = next_allowed(now, windows, self.quiet, self.cfg.days, self.calendar)
                opens_at = opens[windows]
                if opens_at is None or opens_at >= cb.due_ts:
                    out.blocked["outside_window"] += 1
                    deadlines.append(cb.due_ts)  # it will expire unless the rules change
                    continue
                if opens_at > now:
                    out.blocked["outside_window"] += 1
                    deadlines.append(opens_at)
                    continue
            if not queue_open(cb.skill):
                out.blocked["queue_closed"] += 1
                deadlines.append(now + 60.0)  # the ACD's calendars are looked at again in a minute
                continue
            if room <= 0:
                out.blocked["acd_full"] += 1  # a callback leaving the ACD makes room (the caller re-plans)
                continue
            out.queue.append(cb)
            room -= 1
        future = [d for d in deadlines if d > now]
        out.next_deadline = min(future) if future else None
        return out

    def after_try(self, attempts_made: int, outcome: str, now: float, due_ts: float) -> AfterTry:
        """Reached: done. Not reached: another try after the outcome's delay while tries are left and the
        try would start before the callback is due; else not reached for good."""
        if outcome == REACHED:
            return AfterTry(CallbackStatus.DONE, None)
        delay = self.cfg.retry.delay(outcome)
        if delay is None:
            delay = self.cfg.retry.failed
        counts = outcome != "agent_hangup"  # the agent gave up, not the customer: it costs no try
        if (not counts or attempts_made < self.cfg.max_attempts) and now + delay < due_ts:
            return AfterTry(CallbackStatus.PENDING, now + delay)
        return AfterTry(CallbackStatus.NOT_REACHED, None)


def gives_way_to_lists(reason: str, skip_dnc: bool) -> bool:
    """Whether a callback of this reason is given up when its number is on the do-not-call list or the
    blacklist: work-order callbacks always, other automatic ones while `skip_dnc` is on, a kept place
    (the customer asked for that call) never."""
    return reason != "in_place" and (reason == "workorder" or skip_dnc)


def dial_outcome(dialstatus: str) -> str:
    """Asterisk's DIALSTATUS of the customer's leg as a try outcome."""
    return DIALSTATUS_OUTCOME.get(dialstatus.strip().upper(), "failed")


def whisper_text(template: str, number: str, reason: str, skill: str) -> str:
    return template.format(number=number, last4=number[-4:], reason=reason, skill=skill) if template else ""
