"""Queue history per local half hour, from ACD events: what the forecast and the staffing learn from.

Why from events and not from the KPI report: the forecast needs every half hour of many weeks per
queue (offered calls, handle time) plus what Erlang A needs (how long callers wait before they give
up), and the same rows come from the event store, from the simulator's event list and from a test's
generator, so one pure function builds them. Offered = `acd.enqueue`; handle time = talk + hold +
wrap-up of `acd.complete` (the KPI report's AHT); patience from `acd.abandon` and `acd.answer` waits.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..calendar import Calendar
from ..events import Kind

SLOTS = 48  # half hours in a day
KINDS = (Kind.ACD_ENQUEUE, Kind.ACD_COMPLETE, Kind.ACD_ABANDON, Kind.ACD_ANSWER)


@dataclass
class QueueHistory:
    """One queue's history: per (local day, half-hour index) counts, plus waits for patience."""

    queue: str
    offered: dict[tuple[dt.date, int], float] = field(default_factory=lambda: defaultdict(float))
    handled: dict[tuple[dt.date, int], float] = field(default_factory=lambda: defaultdict(float))
    handle_s: dict[tuple[dt.date, int], float] = field(default_factory=lambda: defaultdict(float))
    tiers: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    abandons: int = 0
    wait_total_s: float = 0.0  # waits of answered and abandoned callers (censored observations count)

    def days(self) -> list[dt.date]:
        keys = [d for d, _ in self.offered] + [d for d, _ in self.handled]
        if not keys:
            return []
        first, last = min(keys), max(keys)
        return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]

    def patience_s(self) -> float | None:
        """Mean patience, the maximum-likelihood estimate for exponential patience with censoring:
        total time callers spent waiting / callers who gave up (None: nobody gave up)."""
        if self.abandons == 0 or self.wait_total_s <= 0:
            return None
        return self.wait_total_s / self.abandons

    def tier_mix(self) -> dict[str, float]:
        total = sum(self.tiers.values())
        return {t: n / total for t, n in sorted(self.tiers.items())} if total else {}


def slot_of(calendar: Calendar, ts: float) -> tuple[dt.date, int]:
    """(local date, half-hour index 0..47) of epoch `ts` in the calendar's time zone."""
    local = calendar.local(ts)
    return local.date(), (local.hour * 60 + local.minute) // 30


def build_history(rows: Iterable[tuple[str, float, str | None, str | None, dict[str, Any] | None]],
                  calendar: Calendar) -> dict[str, QueueHistory]:
    """(kind, ts, queue, tier, data) rows -> one QueueHistory per queue. Other kinds are ignored."""
    out: dict[str, QueueHistory] = {}
    for kind, ts, queue, tier, data in rows:
        if not queue or kind not in KINDS:
            continue
        h = out.get(queue)
        if h is None:
            h = out[queue] = QueueHistory(queue)
        data = data or {}
        if kind == Kind.ACD_ENQUEUE:
            h.offered[slot_of(calendar, ts)] += 1
            h.tiers[tier or "normal"] += 1
        elif kind == Kind.ACD_COMPLETE:
            if data.get("kind") == "callback":
                continue
            talk = _num(data.get("talk_s")) + _num(data.get("hold_s")) + _num(data.get("wrap_up_s"))
            key = slot_of(calendar, ts)
            h.handled[key] += 1
            h.handle_s[key] += talk
        elif kind == Kind.ACD_ABANDON:
            h.abandons += 1
            h.wait_total_s += _num(data.get("wait_s"))
        elif kind == Kind.ACD_ANSWER and data.get("kind") != "callback":
            h.wait_total_s += _num(data.get("wait_s"))
    return out


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0.0
