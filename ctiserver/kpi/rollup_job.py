"""The leader's rollup builder: each half hour rolled up as soon as it settles, so no report waits for it.

Without it, the first report over a range builds the half-hour rollups it lacks (kpi/rollup.py), and a
manager opening last month's report after a quiet night pays for a month of them (seconds at a
province's volume). The builder keeps the last `rollups.build_days` days (kpi.yaml) rolled up:

* when its term begins, every settled half hour of those days that has no rollup (never built, or
  dropped because the fact sink rewrote its facts) is built;
* then once per half hour, just after the next one settles (`window.max_call_s` after its end, plus
  `SLACK_S` for the writer's last batch), the same again: the new half hour and any dropped since.

Each round is `rollup.ensure` over the span, so what it builds is exactly what a report would have
built, under the same settings digest, a day per transaction. The span starts no earlier than the
facts' retention keeps (`not_before`), so months the retention job dropped are not rolled up again,
and no earlier than the first call fact (a new site has nothing before it to roll up).
`due_span` and `next_round_at` are the pure rules; the loop only sleeps and calls.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..clock import Clock
from ..lifecycle import RoundJob
from .config import KpiConfig
from .facts import HALF_HOUR
from .factsql import call_facts
from .rollup import ensure, settled_until

log = logging.getLogger(__name__)

SLACK_S = 60.0  # after a half hour settles: the store writer's batch and the fact sink have written it
RETRY_S = 300.0  # after a failed round (the database away): try again this much later


def due_span(cfg: KpiConfig, now: float, not_before: float | None = None) -> tuple[int, int] | None:
    """The UTC half-hour buckets [b0, b1) the builder keeps rolled up at `now`, or None (nothing)."""
    days = cfg.rollups.build_days
    if days <= 0:
        return None
    start = now - days * 86400.0
    if not_before is not None:
        start = max(start, not_before)
    b0, b1 = math.ceil(start / HALF_HOUR), settled_until(cfg, now)
    return (b0, b1) if b1 > b0 else None


def next_round_at(cfg: KpiConfig, now: float) -> float:
    """When the next half hour settles (the first bucket not settled at `now`), plus the slack."""
    return (settled_until(cfg, now) + 1) * HALF_HOUR + cfg.window.max_call_s + SLACK_S


class RollupJob(RoundJob):
    """A leader-group feature: a round when the term begins, then one per half hour as it settles."""

    name = "KPI rollups"

    def __init__(self, engine: Callable[[], AsyncEngine | None], cfg: KpiConfig, clock: Clock, *,
                 not_before: Callable[[float], float | None] = lambda _now: None) -> None:
        super().__init__()
        self.engine, self.cfg, self.clock, self.not_before = engine, cfg, clock, not_before
        self.built = 0  # half hours built by this job since it started

    async def round_once(self) -> int:
        """Build what is missing of the due span; how many half hours were built."""
        engine = self.engine()
        now = self.clock.now()
        span = due_span(self.cfg, now, self.not_before(now))
        if engine is None or span is None:
            return 0
        async with engine.connect() as conn:  # (a new site: nothing before its first call to roll up)
            first = (await conn.execute(select(func.min(call_facts.c.bucket)))).scalar()
        if first is None or first >= span[1]:
            return 0
        built = await ensure(engine, self.cfg, max(span[0], int(first)), span[1], now)
        self.built += built
        if built:
            log.info("KPI rollups: %d half hour(s) rolled up (kept: the last %d day(s))", built,
                     self.cfg.rollups.build_days)
        return built

    async def round(self) -> float:
        await self.round_once()
        now = self.clock.now()
        return next_round_at(self.cfg, now) - now

    def failed(self, exc: Exception) -> float:
        log.warning("KPI rollups: a round failed (%s); again in %.0f s", exc, RETRY_S)
        return RETRY_S

    def enabled(self) -> bool:
        return self.cfg.rollups.build_days > 0
