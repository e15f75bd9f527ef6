"""The month's inspection sample (pure, reproducible with a seed).

Every recorded call that must be inspected is taken (sheet.yaml `sampling`): complaints, low survey
ratings, calls longer than the threshold, transferred calls; then `per_agent` more per agent at random,
spread over the month: the agent's calls in time order are cut into `per_agent` equal stretches of the
month and one call is drawn from each (a stretch without calls gives its draw to the others), so the
sample covers early and late in the month and the agent's different shifts. The draw for an agent
depends only on the seed, the month and that agent, so adding a call of another agent changes nothing.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from .sheet import Sampling

REASONS = ("complaint", "low_rating", "long", "transfer", "random")


@dataclass(frozen=True)
class CallFacts:
    call_id: str
    agent_id: str
    start_ts: float
    duration_s: float
    queue: str | None = None
    recording_id: int | None = None
    rating: int | None = None
    categories: frozenset[str] = field(default_factory=frozenset)
    transferred: bool = False


@dataclass(frozen=True)
class Pick:
    call: CallFacts
    reason: str
    due_ts: float


def _must(call: CallFacts, plan: Sampling) -> str | None:
    if plan.complaints and call.categories & set(plan.complaint_categories):
        return "complaint"
    if plan.low_rating_max and call.rating is not None and call.rating <= plan.low_rating_max:
        return "low_rating"
    if plan.long_call_s and call.duration_s > plan.long_call_s:
        return "long"
    if plan.transferred and call.transferred:
        return "transfer"
    return None


def sample(calls: Iterable[CallFacts], plan: Sampling, *, month: str, start: float, end: float, seed: int,
           due_after_s: float = 3 * 86400.0) -> list[Pick]:
    """The picks of the month [start, end): every must-inspect call, then the random ones; each due
    `due_after_s` after its call (at the latest `due_after_s` after the month's end). Sorted by agent, time."""
    by_agent: dict[str, list[CallFacts]] = {}
    for c in calls:
        if start <= c.start_ts < end:
            by_agent.setdefault(c.agent_id, []).append(c)
    picks: list[Pick] = []
    for agent in sorted(by_agent):
        mine = sorted(by_agent[agent], key=lambda c: (c.start_ts, c.call_id))
        taken: dict[str, str] = {}
        for c in mine:
            reason = _must(c, plan)
            if reason is not None and c.call_id not in taken:
                taken[c.call_id] = reason
        rest = [c for c in mine if c.call_id not in taken]
        rng = random.Random(f"{seed}:{month}:{agent}")
        n = min(plan.per_agent, len(rest))
        if n:
            span = (end - start) / plan.per_agent
            buckets: list[list[CallFacts]] = [[] for _ in range(plan.per_agent)]
            for c in rest:
                buckets[min(plan.per_agent - 1, int((c.start_ts - start) // span))].append(c)
            chosen: list[CallFacts] = [rng.choice(b) for b in buckets if b][:n]
            left = [c for c in rest if c not in chosen]
            while len(chosen) < n:  # empty stretches: their draws from what is left
                extra = rng.choice(left)
                left.remove(extra)
                chosen.append(extra)
            for c in chosen:
                taken[c.call_id] = "random"
        for c in mine:
            if c.call_id in taken:
                picks.append(Pick(c, taken[c.call_id], min(c.start_ts, end) + due_after_s))
    return picks
