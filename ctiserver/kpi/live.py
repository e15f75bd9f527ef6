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
from .builder import CALL_KINDS, FactBuilder
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
    """Today's figures from the events seen so far (see the module docstring)."""

    def __init__(self, cfg: KpiConfig) -> None:
        self.cfg = cfg
        self._day: dt.date | None = None
        self._builder = FactBuilder()
        self.version = 0  # bumped by every event that can change a figure

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
        self._builder.add(ev)
        self.version += 1
        return True

    def add_all(self, evs: Iterable[Event]) -> LiveFigures:
        for ev in sorted(evs, key=lambda e: e.ts):
            self.add(ev)
        return self

    def figures(self, now: float) -> dict[str, Any]:
        """{"today": {...}, "halfhour": {...}}, each with "total", "tiers" {tier: {...}}, "queues" {...},
        and "longest_wait_s" of the calls still waiting."""
        start, end = self.day_range(now)
        facts = self._builder.call_facts()
        win = Window.build(start, end, now, self.cfg.zone(), 86400.0)
        rows = call_sums(facts, self.cfg, win, ["queue", "tier"])
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
        waits = [now - (f.t_enq if f.t_enq is not None else f.t0) for f in facts
                 if not f.is_out and start <= f.t0 < end and f.t_ans is None and f.t_ab is None and f.t_ovf is None
                 and f.t_cb is None and f.t_end is None and f.t0 >= fresh and f.t_enq is not None]
        out["waiting"] = len(waits)
        out["longest_wait_s"] = round(max(waits), 1) if waits else 0.0
        return out
