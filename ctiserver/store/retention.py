"""The leader's daily database job: month partitions made ahead, expired months dropped.

At the start of a term and every day at `database.retention.run_at` (local time, the calendar's zone):

1. PostgreSQL: the partitions of the current UTC month and the next `MONTHS_AHEAD` are created where
   missing (rows the DEFAULT partition took meanwhile move into theirs), so the writer's rows land in
   month partitions and the next month's DROP stays a DROP.
2. `events_months` / `facts_months` (ctiserver.yaml, `database.retention`): everything before the start of
   the local month that many months back goes, in whole UTC months (store/partitions.py says why UTC):
   partitions are DETACHed and DROPped on PostgreSQL (constant time), rows deleted by range on SQLite
   (proportional to the rows, in short transactions). The facts group takes the half-hour rollups of
   those months with it. Every drop is logged.

Recordings have their own retention (ctiserver/recording); this job does not touch them.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from ..clock import Clock
from ..config import Retention
from ..lifecycle import RoundJob
from .partitions import EVENTS, FACTS, Dropped, cutoff, drop_before, drop_bound, ensure_months, next_daily_run

log = logging.getLogger(__name__)


async def sweep(engine: AsyncEngine, rules: Retention, now: float, zone: ZoneInfo) -> list[Dropped]:
    """One round: months ahead made, expired months dropped. Returns what went."""
    await ensure_months(engine, now)
    out: list[Dropped] = []
    for label, months, specs in (("events", rules.events_months, EVENTS), ("facts", rules.facts_months, FACTS)):
        if months is None:
            continue
        bound = drop_bound(cutoff(now, months, zone))
        day = dt.datetime.fromtimestamp(bound, dt.UTC).date().isoformat()
        for spec in specs:
            for d in await drop_before(engine, spec, bound):
                out.append(d)
                if d.rows is None:
                    log.info("retention: dropped partition %s (%s: %d month(s) kept; before %s UTC)",
                             d.what, label, months, day)
                else:
                    log.info("retention: deleted %d row(s) of %s before %s UTC (%s: %d month(s) kept)",
                             d.rows, d.what if d.what != "rows" else spec.table, day, label, months)
    return out


class RetentionJob(RoundJob):
    """A leader-group feature: `sweep` when the term begins and daily at `rules.run_at` after that."""

    name = "database retention"

    def __init__(self, engine: Callable[[], AsyncEngine | None], rules: Retention, clock: Clock,
                 zone: ZoneInfo) -> None:
        super().__init__()
        self.engine, self.rules, self.clock, self.zone = engine, rules, clock, zone
        self.dropped: list[Dropped] = []

    async def sweep_once(self) -> list[Dropped]:
        engine = self.engine()
        if engine is None:
            return []
        gone = await sweep(engine, self.rules, self.clock.now(), self.zone)
        self.dropped += gone
        return gone

    def _until_next_run(self) -> float:
        now = self.clock.now()
        return next_daily_run(now, self.zone, self.rules.run_minute()) - now

    async def round(self) -> float:
        await self.sweep_once()
        return self._until_next_run()

    def failed(self, exc: Exception) -> float:  # the database away, a lock not granted in time: tomorrow
        log.warning("retention: the database's monthly upkeep failed (%s); next try at %s local",
                    exc, self.rules.run_at)
        return self._until_next_run()
