"""Live KPI figures for the wallboard, from the event stream, with the report's own definitions.

`LiveFigures` folds each event into today's call facts with the fact builder (kpi/builder.py) and
computes, when asked, the figures a supervisor watches: service level, ASA, abandon rate, answered,
offered, calls waiting and the longest wait; in total, per tier and per queue; for today and for this
half hour. The sums are kpi/sums.call_sums and the ratios kpi/metrics.derive, the very functions the
report uses, so at the end of a day the live figures equal `ctiserver report` for that day.

Pure: no IO, no clock; `now` comes with every call. The adapter (kpi/livefeed.py) feeds it the server's
events and pushes the figures over the supervisors' WebSocket when they change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from ..events import Event
from .builder import CALL_KINDS, CallFact, FactBuilder
from .config import KpiConfig
from .facts import Window
from .metrics import CALL_SUMS, derive
from .sums import call_sums, half_hour

FIGURES = ("calls_offered", "answered", "service_level", "asa_s", "abandon_rate", "abandoned_counted",
           "in_queue")


def figures_of(cfg: KpiConfig, sums: dict[str, Any] | None, threshold_s: float | None = None) -> dict[str, Any]:
    """The wallboard's figures from summed call facts (kpi/metrics.derive, as the report computes them)."""
    m = derive(cfg, sums, None, None, None, None, None)
    out = {k: m[k] for k in FIGURES}
    if threshold_s is not None and sums is not None:  # a tier's own target time, as the report's tiers[]
        short = sums["short_abandoned"] if cfg.service_level.exclude_short_abandons else 0
        offered = sums["queued"] - sums["queued_callbacks"] - short - sums["in_queue"]
        out["service_level"] = round(sums["within_tier"] / offered, 6) if offered else None
    return out


def _add(acc: dict[str, Any], row: dict[str, Any]) -> None:
    for k in CALL_SUMS:
        acc[k] = acc.get(k, 0) + (row.get(k) or 0)


class LiveFigures:
    """Today's figures from the events seen so far (see the module docstring).

    Incremental: the sums are kept per (half hour, queue, tier) together with each call's share of them, and
    `figures` recomputes only the calls that changed since the last time (a new event), those whose share
    `now` alone has just changed (a call still waiting stops counting as waiting, and counts as lost, once
    `window.max_call_s` has passed since it arrived), and the other calls of their callers (first-call
    resolution looks at the caller's next call). Every open call was once redone at every refresh: under a
    100-call load that was most of the wallboard's CPU. A refresh once cost a pass over every call of
    the day (the wallboard refreshes after every burst of events); the figures are the same."""

    def __init__(self, cfg: KpiConfig) -> None:
        self.cfg = cfg
        self._day: dt.date | None = None
        self._builder = FactBuilder()
        self.version = 0  # bumped by every event that can change a figure
        self._dirty: set[str] = set()  # calls with an event since the last figures()
        self._window: tuple[float, float, tuple[Any, ...]] | None = None  # what the kept shares were made for
        self._share: dict[str, tuple[tuple[Any, ...], dict[str, int]]] = {}  # call -> (its sums' key, its sums)
        self._sums: dict[tuple[Any, ...], dict[str, int]] = {}  # key -> the sums of every kept share
        self._open: dict[str, CallFact] = {}  # calls that may still be waiting (the board's waiting list)
        self._fresh: dict[str, float] = {}  # open calls whose share counts them waiting: call -> its arrival
        self._now = float("-inf")  # the `now` of the last figures()
        self._caller: dict[str, str] = {}  # inbound call -> its caller (FCR: the caller's next call)
        self._calls_of: dict[str, set[str]] = {}  # caller -> calls
        self._t0: dict[str, float] = {}  # call -> when it arrived (for the calls in _caller)
        self._nxt: dict[str, float | None] = {}  # call -> its caller's next arrival, as its share was made

    def day_range(self, now: float) -> tuple[float, float]:
        cal = self.cfg.calendar
        today = cal.today(now)
        return cal.at(today), cal.at(today + dt.timedelta(days=1))

    def add(self, ev: Event) -> bool:
        """Fold one event in; True if it can change the figures."""
        if ev.kind not in CALL_KINDS or ev.call_id is None:
            return False
        day = self.cfg.calendar.today(ev.ts)
        if self._day is None or day > self._day:
            # A new day: yesterday's calls no longer count on today's board, but those still going on
            # are kept, so that their late events do not look like new calls.
            self._day = day
            self._builder.forget_before(self.cfg.calendar.at(day) - self.cfg.window.max_call_s)
            self._window = None  # every share is made again
        self._builder.add(ev)
        self._dirty.add(ev.call_id)
        self.version += 1
        return True

    def add_all(self, evs: Iterable[Event]) -> LiveFigures:
        for ev in sorted(evs, key=lambda e: e.ts):
            self.add(ev)
        return self

    def _update(self, win: Window) -> list[CallFact]:
        """Bring the kept shares up to `win`; return the facts of the calls that may still be waiting."""
        shape = (win.start, win.end, tuple(win.transitions))
        if self._window != shape:  # a new day (or its zone's offsets): every call again
            self._window = shape
            self._share.clear()
            self._sums.clear()
            self._open.clear()
            self._fresh.clear()
            self._caller.clear()
            self._calls_of.clear()
            self._t0.clear()
            self._nxt.clear()
            self._dirty = set(self._builder.call_ids())
        # An unchanged call's share moves with `now` only when it stops counting as waiting (kpi/sums.call_sums:
        # `t0 >= now - max_call_s`); the same test here redoes exactly those.
        # (A clock that went back can make a call waiting again: then every open call is redone.)
        fresh = win.now - self.cfg.window.max_call_s
        if win.now < self._now:
            changed = self._dirty | set(self._open)
        else:
            changed = self._dirty | {c for c, t0 in self._fresh.items() if not t0 >= fresh}
        self._now = win.now
        self._dirty = set()
        facts: dict[str, CallFact | None] = {c: self._builder.fact_of(c) for c in changed}
        touched = {self._caller.get(c) for c in changed}  # their callers before (a call may change caller)
        for call, fact in facts.items():  # callers as they are now (an event may name one)
            old = self._caller.pop(call, None)
            if old is not None:
                self._calls_of[old].discard(call)
            self._t0.pop(call, None)
            if fact is not None and not fact.is_out and fact.caller is not None:
                self._caller[call] = fact.caller
                self._calls_of.setdefault(fact.caller, set()).add(call)
                self._t0[call] = fact.t0
                touched.add(fact.caller)
        # first-call resolution: a call's share depends on when its caller called next (kpi/sums.next_arrivals);
        # a changed call moves only its neighbours' next call, so only calls whose next call moved are redone
        nxt: dict[str, float | None] = {}
        for caller in touched:
            if caller is None:
                continue
            calls = sorted(self._calls_of.get(caller, ()), key=lambda c: (self._t0[c], c))
            for a, b in zip(calls, [*calls[1:], None], strict=True):
                nxt[a] = self._t0[b] if b is not None else None
                if a not in facts and nxt[a] != self._nxt.get(a):
                    facts[a] = self._builder.fact_of(a)
        for call, fact in facts.items():
            self._drop(call)
            self._open.pop(call, None)
            self._fresh.pop(call, None)
            self._nxt.pop(call, None)
            if fact is None:
                continue
            if fact.t_ans is None and fact.t_ab is None and fact.t_ovf is None and fact.t_cb is None \
                    and fact.t_end is None:
                self._open[call] = fact
                if fact.t0 >= fresh:
                    self._fresh[call] = fact.t0
            self._nxt[call] = nxt.get(call)
            rows = call_sums([fact], self.cfg, win, ["queue", "tier"], {call: self._nxt[call]})
            if rows:
                row = rows[0]
                key = (row["hh"], row["d_queue"], row["d_tier"])
                share = {k: row[k] for k in CALL_SUMS}
                self._share[call] = (key, share)
                acc = self._sums.setdefault(key, dict.fromkeys(CALL_SUMS, 0))
                for k, v in share.items():
                    acc[k] += v
        return list(self._open.values())

    def _drop(self, call: str) -> None:
        kept = self._share.pop(call, None)
        if kept is None:
            return
        key, share = kept
        acc = self._sums[key]
        for k, v in share.items():
            acc[k] -= v
        if not acc["offered"]:  # no call left in it (each counted call adds one to offered)
            del self._sums[key]

    def rows(self) -> list[dict[str, Any]]:
        """The kept sums as of the last `figures`, shaped as kpi/sums.call_sums(facts, ..., ["queue", "tier"])
        over today's calls gives them (in no particular order)."""
        return [{"hh": key[0], "d_queue": key[1], "d_tier": key[2], **sums} for key, sums in self._sums.items()]

    def figures(self, now: float) -> dict[str, Any]:
        """{"today": {...}, "halfhour": {...}}, each with "total", "tiers" {tier: {...}}, "queues" {...},
        and "longest_wait_s" of the calls still waiting."""
        start, end = self.day_range(now)
        win = Window.build(start, end, now, self.cfg.zone(), 86400.0)
        open_facts = self._update(win)
        rows = self.rows()
        hh_now = half_hour(now, win)
        out: dict[str, Any] = {}
        for label, pick in (("today", lambda r: True), ("halfhour", lambda r: r["hh"] == hh_now)):
            total: dict[str, Any] = {}
            tiers: dict[str, dict[str, Any]] = {}
            queues: dict[str, dict[str, Any]] = {}
            for r in rows:
                if not pick(r):
                    continue
                _add(total, r)
                if r["d_tier"] is not None:
                    _add(tiers.setdefault(r["d_tier"], {}), r)
                if r["d_queue"] is not None:
                    _add(queues.setdefault(r["d_queue"], {}), r)
            targets = self.cfg.tier_targets
            out[label] = {
                "total": figures_of(self.cfg, total or None),
                "tiers": {t: figures_of(self.cfg, s, targets.for_tier(t).threshold_s)
                          for t, s in sorted(tiers.items())},
                "queues": {q: figures_of(self.cfg, s) for q, s in sorted(queues.items())},
            }
        fresh = now - self.cfg.window.max_call_s
        waits = [now - (f.t_enq if f.t_enq is not None else f.t0) for f in open_facts
                 if not f.is_out and start <= f.t0 < end and f.t_ans is None and f.t_ab is None and f.t_ovf is None
                 and f.t_cb is None and f.t_end is None and f.t0 >= fresh and f.t_enq is not None]
        out["waiting"] = len(waits)
        out["longest_wait_s"] = round(max(waits), 1) if waits else 0.0
        return out
