"""Check a staffing plan by playing the forecast day through the simulator (the production ACD engine).

Erlang formulas assume one queue, exponential handle times and patience, and no routing rules; the
live ACD has tiers served by priority, overflow, ring times. So the plan is run: callers arrive at the
forecast's rate per half hour, agent k is on duty in every half hour that needs at least k agents
(stable people, not a new crowd every half hour), and the simulated service level per tier is set
beside its target. Pure: the simulator is seeded and runs on a virtual clock.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ..acd.config import AcdConfig
from ..calendar import Calendar
from ..events import Kind
from ..kpi.config import TierTargets
from ..sim.scenario import Scenario, ScenarioFile
from ..sim.simulate import simulate
from .forecast import QueueForecast
from .history import SLOTS
from .staffing import SlotNeed


@dataclass(frozen=True)
class TierResult:
    tier: str
    offered: int
    answered_in_time: int
    service_level: float | None
    target: float
    threshold_s: float

    @property
    def met(self) -> bool:
        return self.service_level is not None and self.service_level >= self.target


def _label(slot: int) -> str:
    return f"{slot // 2:02d}:{(slot % 2) * 30:02d}"


def duty_spans(agents: list[int]) -> list[list[str]]:
    """Per agent k (0-based), the 'HH:MM-HH:MM' spans of half hours where `agents[slot] > k`."""
    out: list[list[str]] = []
    for k in range(max(agents, default=0)):
        spans: list[str] = []
        start: int | None = None
        for s in range(SLOTS + 1):
            on = s < SLOTS and agents[s] > k
            if on and start is None:
                start = s
            elif not on and start is not None:
                spans.append(f"{_label(start)}-{'24:00' if s == SLOTS else _label(s)}")
                start = None
        out.append(spans)
    return out


def roster_spans(assignments: list[Any], day: int) -> list[list[str]]:
    """Per rostered agent on week day `day`, the spans of half hours they are fully on the phones
    (meals and half hours with a break left out: the check errs on the safe side)."""
    out: list[list[str]] = []
    for asg in assignments:
        if asg.day != day:
            continue
        on = [0] * SLOTS
        for off, share in asg.variant.coverage():
            t = asg.variant.start + off
            if t < SLOTS and share >= 1.0:
                on[t] = 1
        spans = duty_spans(on)
        if spans:
            out.append(spans[0])
    return out


def simulate_day(acd: AcdConfig, calendar: Calendar, targets: TierTargets, queue: str, day: dt.date,
                 calls: list[float], aht_s: float, agents: list[int] | list[list[str]], patience_s: float | None,
                 tier_mix: dict[str, float], *, seed: int = 1) -> tuple[list[TierResult], dict[str, Any]]:
    """One queue's day: `calls[s]` expected arrivals per half hour; `agents` either agents on the phones
    per half hour (agent k on duty wherever at least k are needed) or each agent's duty spans."""
    tiers = {t: w for t, w in tier_mix.items() if t in acd.tier_rank and w > 0} or {acd.default_tier: 1.0}
    duty: list[list[str]] = [a for a in agents if isinstance(a, list)] if agents and isinstance(agents[0], list) \
        else duty_spans([a for a in agents if isinstance(a, int)])
    groups = [{"prefix": f"w{k + 1}x", "count": 1, "skills": {queue: 5}, "shifts": spans}
              for k, spans in enumerate(duty) if spans]
    spec: dict[str, Any] = {
        "name": f"{queue} {day}", "start": f"{day.isoformat()}T00:00", "hours": 24, "seed": seed,
        "arrivals": {_label(s): max(0.0, c) for s, c in enumerate(calls)}, "skills": {queue: 1}, "tiers": tiers,
        "handle_time": {"dist": "exponential", "mean_s": aht_s}, "ring_time": {"dist": "fixed", "mean_s": 1.0},
        "config_agents": False, "agents": groups}
    if patience_s:
        spec["patience"] = {"dist": "exponential", "mean_s": patience_s}
    sc = Scenario(ScenarioFile.model_validate(spec), acd, calendar.zone)
    res = simulate(sc, seed)
    offered: dict[str, int] = defaultdict(int)
    in_time: dict[str, int] = defaultdict(int)
    for e in res.events:
        tier = e.tier or acd.default_tier
        if e.kind == Kind.ACD_ENQUEUE:
            offered[tier] += 1
        elif e.kind == Kind.ACD_ANSWER and float(e.data.get("wait_s", 1e9)) <= targets.for_tier(tier).threshold_s:
            in_time[tier] += 1
    out = []
    for tier in sorted(offered, key=lambda t: acd.tier_rank.get(t, 99)):
        t = targets.for_tier(tier)
        n = offered[tier]
        out.append(TierResult(tier, n, in_time[tier], in_time[tier] / n if n else None, t.target, t.threshold_s))
    summary = res.summary(min(t.threshold_s for t in out) if out else 20.0)
    return out, {"calls": res.calls, "answered": res.answered, "abandoned": res.abandoned,
                 "service_level": summary["service_level"], "abandon_rate": summary["abandon_rate"],
                 "agent_hours": sum(_hours(span) for spans in duty for span in spans)}


def _hours(span: str) -> float:
    a, b = span.split("-")
    return (_minutes(b) - _minutes(a)) / 60


def _minutes(text: str) -> int:
    h, m = text.split(":")
    return int(h) * 60 + int(m)


def verify_plan(acd: AcdConfig, calendar: Calendar, targets: TierTargets, fc: QueueForecast, needs: list[SlotNeed],
                default_patience_s: float, *, seed: int = 1) -> list[dict[str, Any]]:
    """Each forecast day of one queue simulated with `needs`' required agents: simulated SL per tier."""
    out = []
    for d in fc.days:
        per_slot = {n.slot: n.required for n in needs if n.day == d.isoformat()}
        calls = [fc.calls[(d, s)] for s in range(SLOTS)]
        total = sum(calls)
        aht = sum(c * fc.aht_s[(d, s)] for s, c in enumerate(calls)) / total if total else 1.0
        tiers, summary = simulate_day(acd, calendar, targets, fc.queue, d, calls, aht,
                                      [per_slot.get(s, 0) for s in range(SLOTS)],
                                      fc.patience_s or default_patience_s, fc.tier_mix, seed=seed)
        out.append({"queue": fc.queue, "date": d.isoformat(), **summary,
                    "tiers": [{"tier": t.tier, "offered": t.offered, "simulated_sl": round(t.service_level or 0.0, 4),
                               "target": t.target, "threshold_s": t.threshold_s, "met": t.met} for t in tiers]})
    return out
