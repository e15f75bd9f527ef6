"""The lease and the claims on the real PostgreSQL: takeover, expiry, fencing of a deposed leader."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from ctiserver.ha.lease import Decision
from ctiserver.ha.pg import AlreadyClaimed, Fenced, PgLease, claim, lock_space, read_lease
from ctiserver.store.engine import make_engine


async def expire(engine, by: float = 0.001) -> None:  # type: ignore[no-untyped-def]
    """The lease's TTL runs out now (the database's clock; no waiting)."""
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE ha_lease SET expires_ts = EXTRACT(EPOCH FROM clock_timestamp()) - :by"),
                           {"by": by})


async def test_one_node_takes_the_lease_the_other_observes_until_it_expires(ha_db: str) -> None:
    engine = make_engine(ha_db)
    try:
        a, b = PgLease(engine, "a", "http://a:8080", 3.0), PgLease(engine, "b", "http://b:8080", 3.0)
        assert await read_lease(engine) is None
        row, did = await a.attempt(None)
        assert did is Decision.TAKE_OVER and row.holder == "a" and row.epoch == 1
        assert row.expires_ts == pytest.approx(row.db_now + 3.0)
        row, did = await b.attempt(None)
        assert did is Decision.OBSERVE and row.holder == "a" and row.address == "http://a:8080" and row.live()
        row, did = await a.attempt(1)
        assert did is Decision.RENEW and row.epoch == 1
        await expire(engine)
        row, did = await b.attempt(None)
        assert did is Decision.TAKE_OVER and row.holder == "b" and row.epoch == 2
        row, did = await a.attempt(1)  # the deposed leader's renewal is refused
        assert did is Decision.OBSERVE and row.holder == "b"
        async with engine.connect() as conn:
            history = (await conn.execute(text("SELECT epoch, holder, prev_holder, acquired_ts - prev_renewed_ts "
                                               "FROM ha_epochs ORDER BY epoch"))).all()
        assert [(e, h, p) for e, h, p, _ in history] == [(1, "a", None), (2, "b", "a")]
        assert history[1][3] > 0  # the takeover's gap, from the database's own stamps
        assert await b.release(2) and not await b.release(2 + 1)
        assert not (await read_lease(engine)).live()  # type: ignore[union-attr]
    finally:
        await engine.dispose()


async def test_a_deposed_leader_cannot_claim_and_of_two_believers_exactly_one_claim_wins(ha_db: str) -> None:
    old, new = make_engine(ha_db), make_engine(ha_db)  # two engines, as two processes would have
    try:
        await PgLease(old, "a", "", 3.0).attempt(None)  # a: epoch 1
        await expire(old)
        await PgLease(new, "b", "", 3.0).attempt(None)  # b: epoch 2; a still believes it leads
        results = []

        async def act(engine, node: str, epoch: int, key: str) -> None:  # type: ignore[no-untyped-def]
            try:
                async with engine.begin() as conn:
                    await claim(conn, "originate", key, node=node, epoch=epoch)
                    await conn.execute(text("SELECT 1"))  # the action's own record goes here
                results.append((node, key, "won"))
            except (Fenced, AlreadyClaimed) as exc:
                results.append((node, key, type(exc).__name__))

        for n in range(5):  # both at once, five times over
            await asyncio.gather(act(old, "a", 1, f"ob-c1-{n}"), act(new, "b", 2, f"ob-c1-{n}"))
        assert sorted(results) == sorted([("a", f"ob-c1-{n}", "Fenced") for n in range(5)]
                                         + [("b", f"ob-c1-{n}", "won") for n in range(5)])
        results.clear()
        await asyncio.gather(act(new, "b", 2, "ob-c2-1"), act(new, "b", 2, "ob-c2-1"))
        assert sorted(r[2] for r in results) == ["AlreadyClaimed", "won"]  # one leader, the same action twice
        async with new.connect() as conn:
            rows = (await conn.execute(text("SELECT kind, key, epoch, holder FROM ha_claims ORDER BY key"))).all()
        assert [tuple(r) for r in rows] == [("originate", f"ob-c1-{n}", 2, "b") for n in range(5)] + \
            [("originate", "ob-c2-1", 2, "b")]
    finally:
        await old.dispose()
        await new.dispose()


async def test_a_claim_rolls_back_with_its_transaction(ha_db: str) -> None:
    engine = make_engine(ha_db)
    try:
        await PgLease(engine, "a", "", 3.0).attempt(None)
        with pytest.raises(RuntimeError, match="the record failed"):
            async with engine.begin() as conn:
                await claim(conn, "ring", "call-1/1001/1", node="a", epoch=1)
                raise RuntimeError("the record failed")
        async with engine.begin() as conn:  # nothing was claimed: it can be claimed again
            await claim(conn, "ring", "call-1/1001/1", node="a", epoch=1)
    finally:
        await engine.dispose()


async def lock_holders(engine, epoch: int) -> list[int]:  # type: ignore[no-untyped-def]
    """The backends holding the lock of `epoch` (PostgreSQL's own view: pg_locks)."""
    async with engine.connect() as conn:
        return [int(r[0]) for r in (await conn.execute(text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = :space AND objid = :epoch "
            "AND objsubid = 2 AND granted AND database = (SELECT oid FROM pg_database WHERE datname = "
            "current_database())"), {"space": lock_space("cti"), "epoch": epoch})).all()]


async def test_the_holder_keeps_its_epoch_lock_and_when_its_session_ends_a_standby_takes_over_at_once(
        ha_db: str) -> None:
    engine = make_engine(ha_db)
    a, b = PgLease(engine, "a", "", 3.0), PgLease(engine, "b", "", 3.0)
    lost: list[str] = []
    ended = asyncio.Event()
    a.on_lost = lambda why: (lost.append(why), ended.set())  # type: ignore[func-returns-value]
    try:
        row, did = await a.attempt(None)
        assert did is Decision.TAKE_OVER and row.epoch == 1
        (holder,) = await lock_holders(engine, 1)  # taken with the epoch, on a's lease session
        row, _ = await a.attempt(1)  # renewals keep it: the same session
        assert await lock_holders(engine, 1) == [holder]
        assert not await b.watch(1, 0.1)  # a's session is alive: the lock stays held
        row, did = await b.attempt(None, orphaned=2)  # a claim of another epoch's end changes nothing
        assert did is Decision.OBSERVE and row.holder == "a"
        async with engine.connect() as conn:  # a's process dies: PostgreSQL ends its session
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": holder})
        assert await b.watch(1, 5.0)  # the lock is free: a's session is gone
        row, did = await b.attempt(None, orphaned=1)
        assert did is Decision.TAKE_OVER and row.holder == "b" and row.epoch == 2
        assert await lock_holders(engine, 2) != [] and await lock_holders(engine, 1) == []
        async with engine.connect() as conn:  # taken before a's lease expired, by the database's stamps
            acquired, prev_expires = (await conn.execute(text(
                "SELECT acquired_ts, prev_expires_ts FROM ha_epochs WHERE epoch = 2"))).one()
        assert acquired < prev_expires
        await asyncio.wait_for(ended.wait(), 5.0)  # a's termination listener: its connection closed
        assert lost == ["the connection to PostgreSQL closed"] and not a.session_alive()
        row, did = await a.attempt(None)  # a new session; the deposed node only looks
        assert did is Decision.OBSERVE and row.holder == "b"
        await b.close()  # b stops: its session, and so its lock, end
        assert await lock_holders(engine, 2) == [] and await a.watch(2, 5.0)
    finally:
        await a.close()
        await b.close()
        await engine.dispose()
