"""The leader's claims prune (ctiserver/ha/prune.py) on real PostgreSQL: claims older than the keep go, in
batches; younger ones, the lease and the epochs stay; the job runs at the start of a term."""

from __future__ import annotations

from sqlalchemy import text

from ctiserver.ha.pg import PgLease, claim
from ctiserver.ha.prune import ClaimsPruner, prune_claims
from ctiserver.store.engine import make_engine

DAY = 86400.0


async def claims_aged(engine, ages_days: list[float]) -> None:
    """Claims under epoch 1, made `age` days ago by the database's clock."""
    async with engine.begin() as conn:
        for i, age in enumerate(ages_days):
            await claim(conn, "ring", f"r{i}", node="a", epoch=1)
            await conn.execute(text("UPDATE ha_claims SET claimed_ts = claimed_ts - :s WHERE key = :k"),
                               {"s": age * DAY, "k": f"r{i}"})


async def keys(engine) -> list[str]:
    async with engine.connect() as conn:
        return sorted(r[0] for r in await conn.execute(text("SELECT key FROM ha_claims")))


async def test_claims_older_than_the_keep_go_in_batches_the_rest_stays(ha_db: str) -> None:
    engine = make_engine(ha_db)
    try:
        await PgLease(engine, "a", "", 3.0).attempt(None)
        await claims_aged(engine, [0, 0.5, 6.9, 7.1, 8, 30, 400])
        assert await prune_claims(engine, 7 * DAY, batch=2) == 4  # two full batches, then an empty one
        assert await keys(engine) == ["r0", "r1", "r2"]
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM ha_epochs"))).scalar_one() == 1
            assert (await conn.execute(text("SELECT holder FROM ha_lease"))).scalar_one() == "a"
        assert await prune_claims(engine, 7 * DAY) == 0
    finally:
        await engine.dispose()


async def test_the_job_prunes_when_a_term_begins(ha_db: str) -> None:
    engine = make_engine(ha_db)
    try:
        await PgLease(engine, "a", "", 3.0).attempt(None)
        await claims_aged(engine, [1.5, 0.2])
        pruner = ClaimsPruner(engine, 1 * DAY)
        async with pruner.run():
            await pruner.wait_rounds(1)
        assert (pruner.rounds, pruner.pruned_total) == (1, 1)
        assert await keys(engine) == ["r1"]
    finally:
        await engine.dispose()
