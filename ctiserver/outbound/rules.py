"""Contact rules, all pure: when a contact may be called, how often, and what follows an outcome.

* Calling windows are local time; a window that runs across midnight belongs to the
  day it starts on (22:00-02:00 on a holiday eve is the eve's window), so holiday
  and working-day checks apply to that day.
* Quiet hours (per area, per customer) are cut out of the windows.
* Frequency caps count deliveries (reached contacts) and live attempts per account
  and campaign kind, however many campaigns target the account.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol
from zoneinfo import ZoneInfo

from ..calendar import Calendar, DaysRule
from .model import (
    REACHED,
    ContactStatus,
    LateFeeConfig,
    Outcome,
    RetryPolicy,
    TimeRange,
)

SEARCH_DAYS = 400  # how far ahead we look for an open window before calling it never


def deliver_by(calendar: Calendar, arrived: date, working_days: int) -> float:
    """Epoch seconds at the end of the `working_days`-th working day after the data arrived."""
    return calendar.at(calendar.add_working_days(arrived, working_days), 1440)


def _local(day: date, minute: int, tz: ZoneInfo) -> float:
    return (datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(minutes=minute)).timestamp()


Interval = tuple[float, float]


def _subtract(intervals: list[Interval], cut: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for start, end in intervals:
        pieces = [(start, end)]
        for cs, ce in cut:
            nxt: list[tuple[float, float]] = []
            for ps, pe in pieces:
                if ce <= ps or cs >= pe:
                    nxt.append((ps, pe))
                    continue
                if cs > ps:
                    nxt.append((ps, cs))
                if ce < pe:
                    nxt.append((ce, pe))
            pieces = nxt
        out.extend(pieces)
    return out


def _day_intervals(day: date, ranges: Iterable[TimeRange], tz: ZoneInfo) -> list[tuple[float, float]]:
    out = []
    for r in ranges:
        end_day_offset = 1440 if r.across_midnight else 0
        out.append((_local(day, r.start, tz), _local(day, r.end + end_day_offset, tz)))
    return out


def next_allowed(now: float, windows: Sequence[TimeRange], quiet: Sequence[TimeRange], days_rule: DaysRule,
                 calendar: Calendar, hours: str | None = None) -> float | None:
    """The earliest moment >= now inside a calling window and outside quiet hours; None if none in a year.

    `hours` (an hours set of calendar.yaml) replaces `windows` and `days_rule`: each day's windows are the
    set's open spans for that kind of day."""
    tz = calendar.zone
    today = calendar.today(now)
    for offset in range(-1, SEARCH_DAYS):
        day = today + timedelta(days=offset)
        if hours is not None:
            todays = [TimeRange(a, b) for a, b in calendar.spans(hours, day)]
        elif calendar.day_allowed(day, days_rule):
            todays = list(windows)
        else:
            continue
        open_ = [iv for iv in _day_intervals(day, todays, tz) if iv[1] > now]
        if not open_:
            continue
        cut = [iv for d in (day - timedelta(days=1), day, day + timedelta(days=1))
               for iv in _day_intervals(d, quiet, tz)]
        for start, end in sorted(_subtract(open_, cut)):
            if end > now and end > start:
                return max(start, now)
    return None


class CapRule(Protocol):
    """A frequency cap (outbound's FrequencyCap, the SMS caps): `max` of `kind` per `per_days` days."""

    @property
    def kind(self) -> str: ...
    @property
    def max(self) -> int: ...
    @property
    def per_days(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """A past delivery (or a live attempt) that counts against an account's frequency cap."""

    account: str
    kind: str
    ts: float


def cap_blocked_until(account: str, kind: str, now: float, caps: Sequence[CapRule],
                      history: Sequence[Delivery]) -> float | None:
    """None if the account may be called now for `kind`, else when the oldest counted delivery expires."""
    if not account:
        return None
    worst: float | None = None
    for cap in caps:
        if cap.kind != kind:
            continue
        span = cap.per_days * 86400
        recent = sorted(d.ts for d in history
                        if d.account == account and d.kind == kind and d.ts > now - span)
        if len(recent) >= cap.max:
            until = recent[len(recent) - cap.max] + span
            worst = until if worst is None else max(worst, until)
    return worst


@dataclass(frozen=True, slots=True)
class AfterOutcome:
    status: str
    next_due: float | None  # when the next attempt may start (pending only)


def after_outcome(policy: RetryPolicy, attempts_made: int, outcome: str, now: float) -> AfterOutcome:
    """What happens to a contact once an attempt ended with `outcome`."""
    rule = policy.rule(outcome)
    if rule is not None and rule.retry and attempts_made < policy.max_attempts:
        return AfterOutcome(ContactStatus.PENDING, now + rule.delay_s)
    if outcome in REACHED or (outcome == Outcome.MACHINE and policy.machine_is_delivered):
        return AfterOutcome(ContactStatus.DONE, None)
    return AfterOutcome(ContactStatus.NOT_REACHED, None)


def classify(kind: str, outcome: str, dtmf: str) -> str:
    """Read the digit the customer pressed (if any) for this campaign kind."""
    if outcome != Outcome.ANSWERED:
        return outcome
    digit = (dtmf or "").strip()[-1:]
    if digit == "0":
        return Outcome.AGENT
    if kind == "survey":
        return Outcome.RATED if digit in {"1", "2", "3", "4", "5"} else Outcome.ANSWERED
    return Outcome.CONFIRMED if digit == "1" else Outcome.ANSWERED


@dataclass(frozen=True, slots=True)
class LateFee:
    amount: Decimal
    days: int
    rate_per_day: Decimal  # the rate applied to the current-year part (for the message)
    rule_zh: str
    rule_en: str


def _money(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def late_fee(arrears: Decimal, due: date, as_of: date, business: bool, cfg: LateFeeConfig) -> LateFee:
    """电费违约金: a daily rate on the arrears from the day after the due date up to `as_of`.

    Residential: one rate. Business: one rate for days in the due date's year, a
    higher one for days in later years. A fee under `minimum` is charged as `minimum`.
    """
    days = max(0, (as_of - due).days)
    if days == 0 or arrears <= 0:
        return LateFee(Decimal("0.00"), 0, cfg.residential_per_day if not business
                       else cfg.business_current_year_per_day, "未逾期，无违约金", "not overdue, no late fee")
    if not business:
        rate = cfg.residential_per_day
        fee = arrears * rate * days
        permille = (rate * 1000).normalize()
        zh = f"居民用户按欠费金额每日千分之{permille}计收，逾期{days}天"
        en = f"residential: {permille} per mille of the arrears per day, {days} days overdue"
    else:
        year_end = date(due.year, 12, 31)
        in_year = max(0, min(days, (year_end - due).days))
        later = days - in_year
        rate = cfg.business_current_year_per_day
        fee = arrears * (rate * in_year + cfg.business_prior_years_per_day * later)
        p1 = (rate * 1000).normalize()
        p2 = (cfg.business_prior_years_per_day * 1000).normalize()
        zh = f"非居民用户当年欠费每日千分之{p1}、跨年欠费每日千分之{p2}计收，逾期{days}天"
        en = (f"business: {p1} per mille per day in the billing year and {p2} per mille per day after it, "
              f"{days} days overdue")
    fee = _money(fee)
    if fee < cfg.minimum:
        fee = _money(cfg.minimum)
        zh += f"，不足{cfg.minimum}元按{cfg.minimum}元收取"
        en += f", at least {cfg.minimum} yuan"
    return LateFee(fee, days, rate, zh, en)
