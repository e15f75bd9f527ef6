"""Arrivals from history: rebuild a scenario's traffic from what the event store saw.

Why: "what if we had had 10 more agents last month?" is best asked with last
month's own traffic. We average the queue entries (`acd.enqueue`) per local half
hour of the day over the last `days` days of the store, and take the queue mix,
the tier mix and the talk-time distribution from the same days. Staffing and
routing stay the scenario's; only the traffic is replaced.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from datetime import datetime

from sqlalchemy import func, select

from ..events import Kind
from ..kpi.config import KpiConfig
from ..store.engine import make_engine
from ..store.schema import events
from .scenario import Dist, Scenario


def traffic_from_rows(enqueues: list[tuple[float, str | None, str | None]], talks: list[float], days: float,
                      sc: Scenario, kpi: KpiConfig) -> dict[str, object]:
    """Pure part: (ts, queue, tier) rows and talk times -> scenario fields to override."""
    zone = kpi.zone()
    per_slot: Counter[str] = Counter()
    skills: Counter[str] = Counter()
    tiers: Counter[str] = Counter()
    known_skills, known_tiers = set(sc.acd.skills), set(sc.acd.tier_rank)
    for ts, queue, tier in enqueues:
        local = datetime.fromtimestamp(ts, zone)
        minute = local.hour * 60 + local.minute
        slot = minute - minute % 30
        per_slot[f"{slot // 60:02d}:{slot % 60:02d}"] += 1
        if queue in known_skills:
            skills[queue] += 1
        if tier in known_tiers:
            tiers[tier] += 1
    update: dict[str, object] = {
        "arrivals": {k: v / days for k, v in sorted(per_slot.items())},
        "calls_per_half_hour": 0.0,
    }
    if skills:
        update["skills"] = dict(skills)
    if tiers:
        update["tiers"] = dict(tiers)
    if len(talks) >= 2:
        mean, sd = statistics.fmean(talks), statistics.stdev(talks)
        if mean > 0 and sd > 0:
            update["handle_time"] = Dist(dist="lognormal", mean_s=mean, sd_s=sd)
            update["handle_time_by_skill"] = {}
    return update


async def arrivals_from_store(sc: Scenario, url: str, kpi: KpiConfig, *, days: int = 28) -> Scenario:
    """The scenario with arrivals, mixes and talk times from the last `days` days of the store."""
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            last = (await conn.execute(select(func.max(events.c.ts)).where(
                events.c.kind == Kind.ACD_ENQUEUE))).scalar()
            if last is None:
                raise ValueError(f"no calls in the event store at {url}")
            since = float(last) - days * 86400.0
            first = (await conn.execute(select(func.min(events.c.ts)).where(
                events.c.kind == Kind.ACD_ENQUEUE, events.c.ts >= since))).scalar()
            rows = (await conn.execute(select(events.c.ts, events.c.queue, events.c.tier).where(
                events.c.kind == Kind.ACD_ENQUEUE, events.c.ts >= since))).all()
            talk_rows = (await conn.execute(select(events.c.data).where(
                events.c.kind == Kind.ACD_COMPLETE, events.c.ts >= since))).all()
    finally:
        await engine.dispose()
    span_days = max(1.0, math.ceil((float(last) - float(first)) / 86400.0))
    talks = [float(r[0]["talk_s"]) for r in talk_rows
             if isinstance(r[0], dict) and isinstance(r[0].get("talk_s"), int | float)]
    update = traffic_from_rows([(float(t), q, tr) for t, q, tr in rows], talks, span_days, sc, kpi)
    spec = sc.spec.model_copy(update=update)
    return Scenario(spec, sc.acd, sc.zone)
