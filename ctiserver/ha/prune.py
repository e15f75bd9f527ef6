"""The leader's job that keeps `ha_claims` from growing forever: claims older than `ha.claims_keep_days`
are deleted, in batches, when a term begins and every hour after.

What fencing needs stays: the lease row (its epoch refuses a deposed leader's claim, ctiserver/ha/pg.py)
and `ha_epochs` (who led when) are never pruned. A claim itself only matters while the action it names
could be tried again: a dialer's attempt until its call ended (outbound `max_call_s`, minutes), a ring
within its term (the key carries the epoch; rings are counted upwards within a process). The shortest
allowed keep, one day, is far longer than any of those, so a pruned claim can no longer stop a double.
"""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ..lifecycle import RoundJob

log = logging.getLogger(__name__)

BATCH = 5000  # rows per DELETE: a short transaction that never holds many locks at once
_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::float8"


async def prune_claims(engine: AsyncEngine, keep_s: float, batch: int = BATCH) -> int:
    """Delete claims made more than `keep_s` ago (the database's clock); returns how many went."""
    total = 0
    while True:
        async with engine.begin() as conn:
            gone = (await conn.execute(text(
                "DELETE FROM ha_claims WHERE ctid IN (SELECT ctid FROM ha_claims "
                f"WHERE claimed_ts < {_NOW} - :keep LIMIT :batch)"), {"keep": keep_s, "batch": batch})).rowcount
        total += gone
        if gone < batch:
            return total


class ClaimsPruner(RoundJob):
    """A leader-group feature: `prune_claims` at the start of a term and every `every_s` after."""

    name = "HA claims prune"

    def __init__(self, engine: AsyncEngine, keep_s: float, *, every_s: float = 3600.0) -> None:
        super().__init__()
        self.engine, self.keep_s, self.every_s = engine, keep_s, every_s
        self.pruned_total = 0

    async def round(self) -> float:
        gone = await prune_claims(self.engine, self.keep_s)
        self.pruned_total += gone
        if gone:
            log.info("HA: pruned %d claim(s) older than %g days", gone, self.keep_s / 86400)
        return self.every_s

    def failed(self, exc: Exception) -> float:  # the database away: the next round tries again
        log.warning("HA: could not prune old claims (%s); trying again in %g s", exc, self.every_s)
        return self.every_s
