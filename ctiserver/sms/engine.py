"""The life of one message, as a table (pure: inputs and `now` in, the new state out).

    queued ──sent, gateway accepted──▶ accepted ──DLR delivered──▶ delivered
       │ ▲                               │ └─DLR SMSC accepted──▶ accepted (still waiting for the final report)
       │ └──gateway refused, or DLR failed / rejected, or no final report in time: attempts left──┘
       ├──gateway down (no answer): waits gateway_down_s, the attempt is not counted
       ├──number on the do-not-call list / blacklist──▶ excluded
       ├──outside the SMS windows or inside quiet hours, or over a cap──▶ queued (due later)
       └──no attempts left──▶ fallback (a call is placed instead) | failed (no fallback configured)

A transition the table does not have raises `IllegalTransition` naming the state and the event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..calendar import Calendar, DaysRule
from ..outbound.model import OutboundConfig, TimeRange, parse_ranges
from ..outbound.rules import Delivery, cap_blocked_until, next_allowed
from .model import STAFF_KINDS, RetryConfig, SmsConfig


class State:
    QUEUED = "queued"        # waiting for its due time (first send or a retry)
    ACCEPTED = "accepted"    # the gateway took it; waiting for the delivery report
    DELIVERED = "delivered"  # the handset got it (final)
    EXCLUDED = "excluded"    # do-not-call list or blacklist (final)
    FALLBACK = "fallback"    # undeliverable: handed over to a call (final)
    FAILED = "failed"        # undeliverable and no fallback (final)


FINAL = frozenset({State.DELIVERED, State.EXCLUDED, State.FALLBACK, State.FAILED})

# Kannel's delivery-report types (the %d of dlr-url)
DLR_DELIVERED, DLR_FAILED, DLR_BUFFERED, DLR_SMSC_ACK, DLR_SMSC_REJECT = 1, 2, 4, 8, 16

# event -> states it may happen in
_ALLOWED: dict[str, frozenset[str]] = {
    "submit": frozenset({State.QUEUED}),
    "dlr": frozenset({State.ACCEPTED, State.QUEUED, State.DELIVERED, State.FALLBACK, State.FAILED}),
    "report_timeout": frozenset({State.ACCEPTED}),
}


class IllegalTransition(ValueError):
    def __init__(self, state: str, event: str) -> None:
        super().__init__(f"a message in state {state!r} cannot take event {event!r}")
        self.state, self.event = state, event


@dataclass(frozen=True, slots=True)
class Message:
    """What the engine needs to know about one message (the store keeps more)."""

    id: int
    number: str
    kind: str
    state: str
    attempts: int   # sends the gateway accepted or refused (a gateway that was down does not count)
    due: float      # when it may be sent (queued) or when its report is overdue (accepted)
    account: str = ""
    area: str = ""
    quiet: str = ""  # the customer's own quiet hours, "12:00-14:00;21:00-08:00"
    error: str = ""


@dataclass(frozen=True, slots=True)
class SendRules:
    """The contact rules an SMS obeys, from sms.yaml and outbound.yaml (quiet hours)."""

    calendar: Calendar
    windows: tuple[TimeRange, ...]
    days: DaysRule
    quiet_default: tuple[TimeRange, ...] = ()
    quiet_areas: tuple[tuple[str, tuple[TimeRange, ...]], ...] = ()

    def quiet_for(self, area: str, own: str) -> list[TimeRange]:
        out = list(self.quiet_default)
        out += [r for a, ranges in self.quiet_areas if a == area for r in ranges]
        out += list(parse_ranges(own))
        return out

    @classmethod
    def of(cls, sms: SmsConfig, outbound: OutboundConfig) -> SendRules:
        """sms.yaml's windows and days, outbound.yaml's quiet hours (the same for calls and messages)."""
        quiet = outbound.quiet_hours
        return cls(calendar=sms.calendar, windows=sms.window_ranges(), days=sms.days,
                   quiet_default=tuple(TimeRange.parse(r) for r in quiet.default),
                   quiet_areas=tuple((area, tuple(TimeRange.parse(r) for r in ranges))
                                     for area, ranges in quiet.areas.items()))


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with a due message now: `send`, or `wait` until `until`, or `exclude`."""

    action: str
    until: float | None = None
    why: str = ""


def plan(msg: Message, now: float, rules: SendRules, cfg: SmsConfig, listed: str | None,
         history: Sequence[Delivery]) -> Verdict:
    """Whether a queued message goes now. `listed`: the list its number is on now (dnc/blacklist) or None;
    `history`: the account's messages counted by the caps."""
    if msg.state != State.QUEUED:
        raise IllegalTransition(msg.state, "plan")
    if listed is not None:
        return Verdict("exclude", why="do-not-call list" if listed == "dnc" else listed)
    if msg.kind in STAFF_KINDS:
        return Verdict("send")  # to a crew on duty: no windows, quiet hours or caps
    start = next_allowed(now, rules.windows, rules.quiet_for(msg.area, msg.quiet), rules.days,
                         rules.calendar)
    if start is None:
        return Verdict("wait", now + 86400.0, "no sending window within a year")
    if start > now:
        return Verdict("wait", start, "outside the SMS windows or in quiet hours")
    blocked = cap_blocked_until(msg.account, msg.kind, now, cfg.caps, history)
    if blocked is not None:
        return Verdict("wait", blocked, f"over the {msg.kind} cap")
    return Verdict("send")


def _retry_or_give_up(msg: Message, now: float, retry: RetryConfig, fallback: bool, error: str) -> Message:
    if msg.attempts < retry.max_attempts:
        return replace(msg, state=State.QUEUED, due=now + retry.delay(msg.attempts), error=error)
    return replace(msg, state=State.FALLBACK if fallback else State.FAILED, error=error)


def after_submit(msg: Message, outcome: str, now: float, cfg: SmsConfig, error: str = "") -> Message:
    """The gateway's answer to a send: `accepted`, `refused` (it answered no) or `down` (no answer)."""
    if msg.state not in _ALLOWED["submit"]:
        raise IllegalTransition(msg.state, "submit")
    if outcome == "down":
        return replace(msg, due=now + cfg.retry.gateway_down_s, error=error or "gateway down")
    tried = replace(msg, attempts=msg.attempts + 1)
    if outcome == "accepted":
        return replace(tried, state=State.ACCEPTED, due=now + cfg.retry.report_timeout_s, error="")
    if outcome == "refused":
        return _retry_or_give_up(tried, now, cfg.retry, cfg.fallback_call, error or "refused by the gateway")
    raise ValueError(f"unknown send outcome {outcome!r}")


def after_dlr(msg: Message, status: int, now: float, cfg: SmsConfig, answer: str = "") -> Message:
    """A delivery report. Reports of an attempt already settled (a late one, a duplicate per part) change
    nothing; a delivered report always wins (a message reported failed and then delivered was delivered)."""
    if msg.state not in _ALLOWED["dlr"]:
        raise IllegalTransition(msg.state, "dlr")
    if status & DLR_DELIVERED:
        if msg.state not in (State.ACCEPTED, State.QUEUED):
            return msg  # settled already (a call was placed instead, or a duplicate report)
        return replace(msg, state=State.DELIVERED, error="")
    if msg.state != State.ACCEPTED:
        return msg  # late or duplicate
    if status & (DLR_FAILED | DLR_SMSC_REJECT):
        why = "undeliverable" if status & DLR_FAILED else "rejected by the SMSC"
        return _retry_or_give_up(msg, now, cfg.retry, cfg.fallback_call, f"{why}: {answer}".rstrip(": "))
    return msg  # buffered / SMSC ack: still waiting for the final report


def after_report_timeout(msg: Message, now: float, cfg: SmsConfig) -> Message:
    """Accepted long ago and never reported delivered: sent again (or given up) as a failure."""
    if msg.state not in _ALLOWED["report_timeout"]:
        raise IllegalTransition(msg.state, "report_timeout")
    return _retry_or_give_up(msg, now, cfg.retry, cfg.fallback_call, "no delivery report")
