"""Per-bucket sums of facts, in Python: the pure path of the report.

The database computes the very same sums over the facts tables (kpi/factsql.py); kpi/metrics.py turns
either into KPIs. Each sum here mirrors one column of those queries, with the same float arithmetic
(durations in whole milliseconds, half up; "within 20 s" with 1 µs of tolerance), so the two paths
give identical numbers (tests/kpi/test_kpi_facts_paths.py checks it on SQLite and PostgreSQL).
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from ..events import Kind
from .builder import AgentInterval, CallFact, LegFact, ms
from .config import KpiConfig
from .facts import HALF_HOUR, HALF_HOUR_MS, Window

EPS = 1e-6
CALL_SUM_KEYS = ("offered", "ivr", "ivr_contained", "wanted", "queued", "blocked", "answered", "wait_ms",
                 "within_sl", "within_tier", "abandoned", "short_abandoned", "abandon_ms", "short_abandon_ms",
                 "abandoned_ringing", "callbacks", "queued_callbacks", "abandon_callbacks", "overflowed",
                 "timed_out", "lost", "in_queue", "queue_exits", "queue_ms", "transferred", "fcr_repeat_base",
                 "fcr_no_repeat", "fcr_disp_base", "fcr_resolved", "fcr_both_base", "fcr_both",
                 "answered_offers_1", "answered_offers_2", "answered_offers_3plus")
LEG_SUM_KEYS = ("offers", "answers", "ronas", "transfers", "handled", "talk_n", "talk_ms", "hold_n", "hold_ms",
                "ring_n", "ring_ms")


def offset_at(ts: float, win: Window) -> int:
    """The zone's UTC offset (s) at `ts`, as kpi/sqlfuncs.utc_offset's CASE picks it."""
    starts = [since for since, _ in win.transitions[1:]]
    i = bisect.bisect_right(starts, ts)
    return win.transitions[i][1]


def half_hour(ts: float, win: Window) -> int:
    return math.floor((ts + offset_at(ts, win)) / HALF_HOUR)


def _dims(values: dict[str, Any], dims: Sequence[str]) -> tuple[Any, ...]:
    return tuple(values[d] for d in dims)


def _rows(acc: dict[tuple[Any, ...], dict[str, int]], dims: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for key, sums in acc.items():
        row: dict[str, Any] = {"hh": key[0]}
        row.update({f"d_{d}": v for d, v in zip(dims, key[1:], strict=True)})
        row.update(sums)
        out.append(row)
    return out


def next_arrivals(facts: Iterable[CallFact]) -> dict[str, float | None]:
    """Per inbound call, when the same caller called next (the FCR repeat test), as SQL's LEAD does."""
    by_caller: dict[str | None, list[CallFact]] = defaultdict(list)
    for f in facts:
        if not f.is_out:
            by_caller[f.caller].append(f)
    nxt: dict[str, float | None] = {}
    for calls in by_caller.values():
        calls.sort(key=lambda f: (f.t0, f.call_id))
        for a, b in zip(calls, [*calls[1:], None], strict=True):
            nxt[a.call_id] = b.t0 if b is not None else None
    return nxt


def call_sums(facts: Sequence[CallFact], cfg: KpiConfig, win: Window, dims: Sequence[str],
              nxt: dict[str, float | None] | None = None) -> list[dict[str, Any]]:
    """Sums of per-call facts per (local half hour of arrival, dims): the `calls` family. `nxt`: each call's
    `next_arrivals` when `facts` are not all the calls (the FCR repeat test looks at the caller's next call)."""
    sl = cfg.service_level
    tiers = cfg.tier_targets
    if nxt is None:
        nxt = next_arrivals(facts)
    fresh = win.now - cfg.window.max_call_s
    fcr_window = cfg.fcr.window_h * 3600.0 + EPS
    acc: dict[tuple[Any, ...], dict[str, int]] = {}
    for f in facts:
        if f.is_out or not win.start <= f.t0 < win.end:
            continue
        key = (half_hour(f.t0, win), *_dims({"queue": f.queue, "tier": f.tier, "agent": f.agent}, dims))
        s = acc.get(key)
        if s is None:
            s = acc[key] = dict.fromkeys(CALL_SUM_KEYS, 0)
        q0 = f.t_enq if f.t_enq is not None else f.t0
        in_acd = f.t_enq is not None or f.t_ans is not None or f.t_ab is not None or f.t_ovf is not None
        wanted = in_acd or f.t_blk is not None or f.ivr_agent > 0
        answered = f.t_ans is not None
        abandoned = f.t_ans is None and f.t_ab is not None
        callback = wanted and f.t_ans is None and f.t_ab is None and f.t_cb is not None
        overflow_lost = f.t_ans is None and f.t_ab is None and f.t_cb is None and f.t_ovf is not None
        waiting = (in_acd and f.t_ans is None and f.t_ab is None and f.t_ovf is None and f.t_cb is None
                   and f.t_end is None and f.t0 >= fresh)
        lost = wanted and f.t_ans is None and (f.t_cb is None or f.t_ab is not None) and not waiting
        s["offered"] += 1
        s["ivr"] += f.ivr > 0
        s["ivr_contained"] += f.ivr_self > 0 and f.ivr_agent == 0 and f.t_blk is None and not in_acd
        s["wanted"] += wanted
        s["queued"] += in_acd
        s["blocked"] += f.t_blk is not None and f.t_ans is None
        if f.t_ans is not None:
            wait = f.t_ans - q0
            s["answered"] += 1
            s["wait_ms"] += ms(wait)
            s["within_sl"] += wait <= sl.threshold_s + EPS
            threshold = tiers.for_tier(f.tier).threshold_s if f.tier is not None else tiers.default.threshold_s
            s["within_tier"] += wait <= threshold + EPS
        if abandoned and f.t_ab is not None:
            ab_wait = f.t_ab - q0
            s["abandoned"] += 1
            s["abandon_ms"] += ms(ab_wait)
            if ab_wait < sl.short_abandon_s - EPS:
                s["short_abandoned"] += 1
                s["short_abandon_ms"] += ms(ab_wait)
            s["abandoned_ringing"] += f.offers > f.ronas
            s["abandon_callbacks"] += f.t_cb is not None
        s["callbacks"] += callback
        s["queued_callbacks"] += callback and in_acd
        s["overflowed"] += overflow_lost
        s["timed_out"] += overflow_lost and f.ovf_timeout > 0
        s["lost"] += lost
        s["in_queue"] += waiting
        exit_ts = next((t for t in (f.t_ans, f.t_ab, f.t_ovf, f.t_cb) if t is not None), None)
        if in_acd and exit_ts is not None:
            s["queue_exits"] += 1
            s["queue_ms"] += ms(exit_ts - q0)
        if answered:
            n = nxt.get(f.call_id)
            repeat = f.caller is not None and n is not None and n - f.t0 <= fcr_window
            s["transferred"] += f.transferred > 0
            offers = "answered_offers_1" if f.offers <= 1 else "answered_offers_2" if f.offers == 2 \
                else "answered_offers_3plus"
            s[offers] += 1
            s["fcr_repeat_base"] += f.caller is not None
            s["fcr_no_repeat"] += f.caller is not None and not repeat
            s["fcr_disp_base"] += f.disposed > 0
            s["fcr_resolved"] += f.resolved > 0
            s["fcr_both_base"] += f.caller is not None and f.disposed > 0
            s["fcr_both"] += f.caller is not None and f.resolved > 0 and not repeat
    return _rows(acc, dims)


def leg_sums(legs: Iterable[LegFact], win: Window, dims: Sequence[str]) -> list[dict[str, Any]]:
    """Agent-leg facts per (local half hour they happened in, dims): the `legs` family."""
    acc: dict[tuple[Any, ...], dict[str, int]] = {}
    for leg in legs:
        if not win.start <= leg.ts < win.end:
            continue
        key = (half_hour(leg.ts, win), *_dims({"queue": leg.queue, "tier": leg.tier, "agent": leg.agent}, dims))
        s = acc.get(key)
        if s is None:
            s = acc[key] = dict.fromkeys(LEG_SUM_KEYS, 0)
        k = leg.kind
        if k == Kind.ACD_OFFER:
            s["offers"] += 1
        elif k == Kind.ACD_ANSWER:
            s["answers"] += 1
            if leg.ring_ms is not None:
                s["ring_n"] += 1
                s["ring_ms"] += leg.ring_ms
        elif k == Kind.ACD_RONA:
            s["ronas"] += 1
        elif k == Kind.ACD_TRANSFER:
            s["transfers"] += 1
        elif k == Kind.ACD_COMPLETE:
            s["handled"] += 1
            if leg.talk_ms is not None:
                s["talk_n"] += 1
                s["talk_ms"] += leg.talk_ms
            if leg.hold_ms is not None:
                s["hold_n"] += 1
                s["hold_ms"] += leg.hold_ms
    return _rows(acc, dims)


def state_key(state: str | None, reason: str | None) -> str | None:
    """Not-ready time is kept per reason ("not_ready:lunch"), on_call outside the ACD apart ("on_call:direct");
    every other state as it is."""
    if reason and (state == "not_ready" or (state == "on_call" and reason == "direct")):
        return f"{state}:{reason}"
    return state


def agent_time_sums(intervals: Iterable[AgentInterval], cfg: KpiConfig, win: Window,
                    dims: Sequence[str]) -> list[dict[str, Any]]:
    """State time in ms per (local half hour, [agent], state): the `agent_time` family.

    Each state counts for at most `window.agent_lookback_s` (a state nobody ended does not run on
    for ever), clipped to the range and to `now`, cut at half-hour edges; logged_out time is not
    kept. So a half hour's figure does not depend on where the report's range starts (what lets
    kpi/rollup.py roll agent time up a day at a time).
    """
    cap = min(win.end, win.now)
    lo = win.start - cfg.window.agent_lookback_s
    acc: dict[tuple[Any, ...], int] = defaultdict(int)
    for iv in intervals:
        if not lo <= iv.t_start < cap or iv.state == "logged_out":
            continue
        s = win.start if iv.t_start < win.start else iv.t_start
        e = cap if iv.t_end is None or iv.t_end > cap else iv.t_end
        e = min(e, iv.t_start + cfg.window.agent_lookback_s)
        if not e > s:
            continue
        off = offset_at(s, win) * 1000
        ls, le = ms(s) + off, ms(e) + off
        if le <= ls:  # shorter than half a millisecond: nothing to count (as the SQL finds no piece)
            continue
        b0, b1 = ls // HALF_HOUR_MS, (le - 1) // HALF_HOUR_MS
        dk = tuple(iv.agent for d in dims if d == "agent")
        state = state_key(iv.state, iv.reason)
        if b0 == b1:
            acc[(b0, *dk, state)] += le - ls
            continue
        acc[(b0, *dk, state)] += (b0 + 1) * HALF_HOUR_MS - ls
        acc[(b1, *dk, state)] += le - b1 * HALF_HOUR_MS
        for h in range(b0 + 1, b1):
            acc[(h, *dk, state)] += HALF_HOUR_MS
    out = []
    for key, v in acc.items():
        row: dict[str, Any] = {"hh": key[0], "state": key[-1], "ms": v}
        row.update({f"d_{d}": val for d, val in zip(dims, key[1:-1], strict=True)})
        out.append(row)
    return out
