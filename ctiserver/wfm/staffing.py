"""Agents required per queue and half hour from a forecast: Erlang C and Erlang A, tier targets, shrinkage.

Why both models: Erlang C assumes nobody hangs up, so it over-staffs a queue whose callers give up;
Erlang A (M/M/N+M) takes the patience estimated from history (time waited / abandons, the censored
maximum-likelihood estimate) and is the default. Both are printed so a planner sees the difference.

The target: each tier's SL target is kpi.yaml's (`tier_targets`: VIP 90/20, others 85/20). A queue
is staffed for the strictest target and threshold among the tiers it carries (a tier under
`MIN_TIER_SHARE` of its calls does not count). Why not the traffic-weighted blend: the ACD serves VIP
first, but a VIP caller who finds every agent busy still waits for the next one to free up (about
AHT / N), so with 10 % VIP the blend (85.5 %) left VIP at 89.7 % in the simulator. The simulator
(verify.py) checks each tier against its own target.

Shrinkage turns agents on the phones into agents to schedule: required / (1 - shrinkage).
Pure: no IO, no clock.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..kpi import erlang
from ..kpi.config import TierTargets
from .forecast import QueueForecast
from .history import SLOTS

SLOT_S = 1800.0
MIN_TIER_SHARE = 0.01


@dataclass(frozen=True)
class SlotNeed:
    queue: str
    day: str
    slot: int
    calls: float
    aht_s: float
    target: float
    threshold_s: float
    erlang_c: int  # agents on the phones, Erlang C
    erlang_a: int  # agents on the phones, Erlang A with the queue's patience
    required: int  # the configured model's figure
    scheduled: int  # required / (1 - shrinkage), rounded up
    expected_sl: float  # Erlang A's SL (answered within threshold / offered) with `required` agents

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def queue_target(mix: dict[str, float], targets: TierTargets) -> tuple[float, float]:
    """(target, threshold_s) for a queue: the strictest of its tiers' (tiers under MIN_TIER_SHARE aside)."""
    total = sum(mix.values())
    tiers = [t for t, share in mix.items() if total and share / total >= MIN_TIER_SHARE]
    if not tiers:
        return targets.default.target, targets.default.threshold_s
    return (max(targets.for_tier(t).target for t in tiers), min(targets.for_tier(t).threshold_s for t in tiers))


def agents_erlang_a(rate: float, aht_s: float, patience_s: float, threshold_s: float, target: float,
                    upper: int) -> int:
    """Fewest agents whose Erlang A SL (answered within threshold / offered) reaches `target`, searching
    from `upper` (Erlang C's answer): usually down, up when short patience makes early abandons miss it."""
    if rate <= 0:
        return 0

    def ok(n: int) -> bool:
        return erlang.erlang_a(n, rate, aht_s, patience_s, threshold_s).answered_within >= target

    n = max(1, upper)
    while not ok(n):  # abandons that do not count as answered can leave Erlang C's N a little short
        n += 1
    while n > 1 and ok(n - 1):
        n -= 1
    return n


def slot_need(queue: str, day: str, slot: int, calls: float, aht_s: float, target: float, threshold_s: float,
              patience_s: float, model: str, shrinkage: float) -> SlotNeed:
    rate = calls / SLOT_S
    if calls <= 0 or aht_s <= 0:
        return SlotNeed(queue, day, slot, calls, aht_s, target, threshold_s, 0, 0, 0, 0, 1.0)
    c = erlang.agents_needed(rate, aht_s, threshold_s, target)
    a = agents_erlang_a(rate, aht_s, patience_s, threshold_s, target, c)
    req = a if model == "erlang_a" else c
    sl = erlang.erlang_a(req, rate, aht_s, patience_s, threshold_s).answered_within
    return SlotNeed(queue, day, slot, round(calls, 2), round(aht_s, 1), round(target, 4), threshold_s, c, a, req,
                    math.ceil(req / (1.0 - shrinkage) - 1e-9), round(sl, 4))


def staffing_for(fc: QueueForecast, targets: TierTargets, *, model: str = "erlang_a", shrinkage: float = 0.0,
                 default_patience_s: float = 120.0) -> list[SlotNeed]:
    """Every (day, half hour) of the forecast."""
    target, threshold = queue_target(fc.tier_mix, targets)
    patience = fc.patience_s or default_patience_s
    return [slot_need(fc.queue, d.isoformat(), s, fc.calls[(d, s)], fc.aht_s[(d, s)], target, threshold,
                      patience, model, shrinkage)
            for d in fc.days for s in range(SLOTS)]
