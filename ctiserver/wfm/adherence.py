"""Schedule adherence and attendance: the ACD's agent states against the roster.

Adherence (the industry's definition): of the time an agent was scheduled, the share in which they
did what the schedule said. On the phones when scheduled for the phones: logged in and available,
ringing, talking or wrapping up, or not ready for a reason that is work (`WORK_REASONS`: after-call
work). On a meal or break when scheduled for one: not ready or logged out. Anything else is out of
adherence (not ready "break" at 10:00 when the break is at 11:00, logged out mid-shift, a missed
ring). Attendance: the first login after the shift's start (late login, beyond `grace_s`) and the
last logout before its end (early logout); nobody logged in by start + grace is absent (so far).

Pure: `agent.state` events and the day's roster in, figures out; `now` comes from the caller's clock.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ..calendar import Calendar
from ..events import Event, Kind
from .shifts import SLOT_MIN, Assignment

ON_PHONES = frozenset({"available", "reserved", "ringing", "on_call", "wrap_up"})
WORK_REASONS = frozenset({"after_call"})  # not ready, but working: counts as on the phones
AWAY = frozenset({"not_ready", "logged_out"})


@dataclass(frozen=True)
class Planned:
    """One agent's day from the roster, in epoch seconds: the shift and its off-phone parts."""

    agent: str
    start: float
    end: float
    off: tuple[tuple[float, float, str], ...]  # (from, to, 'meal'|'break')

    def activity(self, t: float) -> str | None:
        """'phones', 'meal', 'break' or None (not scheduled) at `t`."""
        if not self.start <= t < self.end:
            return None
        for a, b, what in self.off:
            if a <= t < b:
                return what
        return "phones"


def planned_day(assignments: Iterable[Assignment], week: dt.date, day: dt.date, calendar: Calendar) -> list[Planned]:
    """The roster's shifts that start on `day` as Planned (breaks take their minutes from the half hour's start)."""
    out = []
    index = (day - week).days
    for asg in assignments:
        if asg.day != index:
            continue
        v = asg.variant
        base = calendar.at(day, v.start * SLOT_MIN)
        off: list[tuple[float, float, str]] = []
        if v.meal:
            off.append((base + v.meal[0] * SLOT_MIN * 60, base + (v.meal[-1] + 1) * SLOT_MIN * 60, "meal"))
        for at, share in v.breaks:
            a = base + at * SLOT_MIN * 60
            off.append((a, a + share * SLOT_MIN * 60, "break"))
        out.append(Planned(asg.agent, base, base + v.length * SLOT_MIN * 60, tuple(sorted(off))))
    return out


@dataclass
class AgentAdherence:
    agent: str
    scheduled_s: float = 0.0
    adherent_s: float = 0.0
    late_login_s: float | None = None  # None: on time (or not started yet)
    early_logout_s: float | None = None
    absent: bool = False
    now_activity: str | None = None  # what the roster says now
    now_state: str = "logged_out"
    now_reason: str | None = None
    now_in_adherence: bool | None = None
    out_reasons: dict[str, float] = field(default_factory=dict)  # state/reason -> seconds out of adherence

    @property
    def adherence(self) -> float | None:
        return self.adherent_s / self.scheduled_s if self.scheduled_s > 0 else None

    def as_dict(self) -> dict[str, Any]:
        return {"agent": self.agent, "scheduled_s": round(self.scheduled_s), "adherent_s": round(self.adherent_s),
                "adherence": None if self.adherence is None else round(self.adherence, 4),
                "late_login_s": None if self.late_login_s is None else round(self.late_login_s),
                "early_logout_s": None if self.early_logout_s is None else round(self.early_logout_s),
                "absent": self.absent, "now_activity": self.now_activity, "now_state": self.now_state,
                "now_reason": self.now_reason, "now_in_adherence": self.now_in_adherence,
                "out_reasons": {k: round(v) for k, v in sorted(self.out_reasons.items())}}


def adherent(activity: str, state: str, reason: str | None) -> bool:
    if activity == "phones":
        return state in ON_PHONES or (state == "not_ready" and reason in WORK_REASONS)
    return state in AWAY  # meal or break: off the phones


def _timeline(events: Iterable[Event]) -> dict[str, list[tuple[float, str, str | None]]]:
    out: dict[str, list[tuple[float, str, str | None]]] = {}
    for e in sorted((e for e in events if e.kind == Kind.AGENT_STATE and e.agent_id), key=lambda e: e.ts):
        assert e.agent_id is not None
        out.setdefault(e.agent_id, []).append((e.ts, str(e.data.get("state")), e.data.get("reason")))
    return out


def _state_at(changes: list[tuple[float, str, str | None]], stamps: list[float],
              before: tuple[str, str | None], t: float) -> tuple[str, str | None]:
    i = bisect.bisect_right(stamps, t) - 1
    return (changes[i][1], changes[i][2]) if i >= 0 else before


def _activity(plans: list[Planned], t: float) -> str | None:
    for p in plans:
        act = p.activity(t)
        if act is not None:
            return act
    return None


def _pieces(plans: list[Planned], changes: list[tuple[float, str, str | None]], before: tuple[str, str | None],
            since: float, until: float, cuts: Iterable[float] = ()
            ) -> Iterator[tuple[float, float, str | None, str, str | None]]:
    """[since, until) cut where the state or the schedule changes (and at `cuts`): (from, to, what the
    roster says, state, reason) per piece. The one timeline adherence and the report's half hours share."""
    stamps = [ts for ts, _, _ in changes]
    edges = {since, until} | {ts for ts in stamps if since < ts < until} | {x for x in cuts if since < x < until} | \
        {x for p in plans for x in (p.start, p.end, *(y for a, b, _ in p.off for y in (a, b))) if since < x < until}
    for a, b in itertools.pairwise(sorted(edges)):
        state, reason = _state_at(changes, stamps, before, a)
        yield a, b, _activity(plans, a), state, reason


def adherence(plans: list[Planned], events: Iterable[Event], now: float, *, grace_s: float = 120.0,
              initial: dict[str, tuple[str, str | None]] | None = None) -> list[AgentAdherence]:
    """Each planned agent's adherence from the shift's start to min(now, end). `events`: agent.state events
    (others are ignored); `initial`: state before the first event (default logged out)."""
    lines = _timeline(events)
    out = []
    for p in plans:
        r = AgentAdherence(p.agent)
        start_state = (initial or {}).get(p.agent, ("logged_out", None))
        changes = [(ts, st, rs) for ts, st, rs in lines.get(p.agent, []) if ts <= now]
        stamps = [ts for ts, _, _ in changes]

        state_at = partial(_state_at, changes, stamps, start_state)

        for a, b, act, state, reason in _pieces([p], changes, start_state, p.start, min(now, p.end)):
            if act is None:
                continue
            r.scheduled_s += b - a
            if adherent(act, state, reason):
                r.adherent_s += b - a
            else:
                key = f"{state}:{reason}" if reason else state
                r.out_reasons[key] = r.out_reasons.get(key, 0.0) + (b - a)
        # attendance: logged in at the start, else the first login after it; the last logout before the end
        prev = state_at(p.start)[0]
        first_login = p.start if prev != "logged_out" else None
        last_logout: float | None = None
        for ts, st, _ in changes:
            if ts <= p.start or ts >= p.end:
                continue
            if st != "logged_out" and prev == "logged_out" and first_login is None:
                first_login = ts
            if st == "logged_out" and prev != "logged_out":
                last_logout = ts
            prev = st
        if first_login is not None and first_login - p.start > grace_s:
            r.late_login_s = first_login - p.start
        elif first_login is None and now - p.start > grace_s:
            r.absent = True
        if last_logout is not None and prev == "logged_out" and p.end - last_logout > grace_s:
            r.early_logout_s = p.end - last_logout
        r.now_state, r.now_reason = state_at(now)
        r.now_activity = p.activity(now)
        r.now_in_adherence = None if r.now_activity is None else adherent(r.now_activity, r.now_state, r.now_reason)
        out.append(r)
    return out


def team_adherence(rows: list[AgentAdherence], teams: dict[str, str]) -> dict[str, float | None]:
    """Adherence per team (agent id -> team; '' for none): total adherent time / total scheduled time."""
    sums: dict[str, list[float]] = {}
    for r in rows:
        s = sums.setdefault(teams.get(r.agent, ""), [0.0, 0.0])
        s[0] += r.adherent_s
        s[1] += r.scheduled_s
    return {t: (a / s if s > 0 else None) for t, (a, s) in sorted(sums.items())}


def on_phones(state: str, reason: str | None) -> bool:
    """Working the phones (what conformance counts): the states adherence accepts for 'phones'."""
    return adherent("phones", state, reason)


def half_hours(plans: list[Planned], events: Iterable[Event], since: float, until: float, slot_of: Any,
               initial: dict[str, tuple[str, str | None]] | None = None) -> list[dict[str, Any]]:
    """Per agent and half hour of [since, until) (`until`: at most now): the roster's and the agent's
    seconds, with the same pieces and `adherent` as `adherence`. Adherence = adherent / scheduled;
    conformance = seconds on the phones / seconds scheduled on the phones (over 100 %: worked beyond the
    schedule). `slot_of(ts)` -> (date, half-hour index) in the site's zone. Half hours with neither a
    schedule nor time logged in are left out."""
    lines = _timeline(events)
    by_agent: dict[str, list[Planned]] = {}
    for p in plans:
        by_agent.setdefault(p.agent, []).append(p)
    step = SLOT_MIN * 60
    # the site zone is whole half hours off UTC, so local half hours start on multiples of 1800 s
    edges = [k * step for k in range(math.floor(since / step) + 1, math.ceil(until / step))]
    rows: dict[tuple[str, Any, int], dict[str, Any]] = {}
    for agent in sorted(set(by_agent) | set(lines)):
        changes = [c for c in lines.get(agent, []) if c[0] <= until]
        before = (initial or {}).get(agent, ("logged_out", None))
        for a, b, act, state, reason in _pieces(by_agent.get(agent, []), changes, before, since, until, edges):
            if act is None and state == "logged_out":
                continue
            day, slot = slot_of(a)
            r = rows.setdefault((agent, day, slot), {
                "agent": agent, "date": day.isoformat(), "time": f"{slot // 2:02d}:{(slot % 2) * 30:02d}",
                "scheduled": set(), "scheduled_s": 0.0, "scheduled_phones_s": 0.0, "adherent_s": 0.0,
                "phones_s": 0.0, "states": {}})
            d = b - a
            if act is not None:
                r["scheduled"].add(act)
                r["scheduled_s"] += d
                r["scheduled_phones_s"] += d if act == "phones" else 0.0
                r["adherent_s"] += d if adherent(act, state, reason) else 0.0
            r["phones_s"] += d if on_phones(state, reason) else 0.0
            key = f"{state}:{reason}" if reason else state
            r["states"][key] = r["states"].get(key, 0.0) + d
    out = []
    for r in rows.values():
        r["scheduled"] = "+".join(sorted(r["scheduled"])) or "-"
        states = sorted(r.pop("states").items(), key=lambda x: (-x[1], x[0]))
        r["actual"] = ", ".join(f"{k} {round(v)}s" for k, v in states)
        r["adherence"] = round(r["adherent_s"] / r["scheduled_s"], 4) if r["scheduled_s"] else None
        r["conformance"] = round(r["phones_s"] / r["scheduled_phones_s"], 4) if r["scheduled_phones_s"] else None
        for k in ("scheduled_s", "scheduled_phones_s", "adherent_s", "phones_s"):
            r[k] = round(r[k])
        out.append(r)
    return sorted(out, key=lambda r: (r["agent"], r["date"], r["time"]))
