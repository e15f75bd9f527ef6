"""Two nodes in one process on the real PostgreSQL: one leads and runs the leader features; cut off from the
database it stops by itself before its lease expires, and the other takes over with the next epoch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url

from ctiserver.clock import SystemClock
from ctiserver.ha.config import HaConfig
from ctiserver.ha.lease import Role, SteppedDown
from ctiserver.ha.node import Leadership
from ctiserver.ha.pg import Fenced, PgLease, read_lease
from ctiserver.lifecycle import FeatureGroup
from ctiserver.store.engine import make_engine

from ..store.tcpproxy import TcpProxy

TIMEOUT_S = 30.0  # a bound for a hung test only: the figures are asserted on the database's stamps


def node(name: str, url: str, log: list[str], stepped_down: list[float] | None = None,
         reasons: list[str] | None = None) -> tuple[Leadership, FeatureGroup]:
    @asynccontextmanager
    async def duty() -> AsyncIterator[None]:
        log.append(f"{name} start")
        try:
            yield
        finally:
            log.append(f"{name} stop")

    group = FeatureGroup("leader", [("duty", duty)])
    engine = make_engine(url, connect_timeout_s=1.0, statement_timeout_s=3.0)
    cfg = HaConfig(node=name, lease_ttl_s=3.0)
    def on_change(change: object) -> None:  # when the node decided to stop, on the host's clock (as the database's)
        if stepped_down is not None and isinstance(change, SteppedDown):
            stepped_down.append(SystemClock().now())
        if reasons is not None and isinstance(change, SteppedDown):
            reasons.append(change.reason)

    lease = PgLease(engine, name, f"http://{name}", cfg.lease_ttl_s)
    return Leadership(cfg, lease, group, on_change=on_change), group


async def test_the_leader_cut_off_from_the_database_stops_before_its_lease_ends_and_the_standby_takes_over(
        ha_db: str) -> None:
    url = make_url(ha_db)
    log: list[str] = []
    watcher = make_engine(ha_db)
    async with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        a_down: list[float] = []
        a, _ = node("a", url.set(port=proxy.port).render_as_string(hide_password=False), log, a_down)
        b, _ = node("b", ha_db, log)
        try:
            async with a(), b():
                await a.wait_role(Role.LEADER, TIMEOUT_S)
                assert log == ["a start"]
                assert b.status()["role"] == "standby" and b.status()["leader"] == "a"
                assert a.status() | {"last_error": ""} == {
                    "enabled": True, "role": "leader", "node": "a", "epoch": 1, "leader": "a",
                    "leader_address": "http://a", "lease_ttl_s": 3.0, "leader_features": True, "last_error": ""}
                await proxy.cut("hang")  # a's renewals go unanswered
                await a.wait_role(Role.STANDBY, TIMEOUT_S)
                assert log == ["a start", "a stop"]
                async with watcher.begin() as conn:  # a believes nothing any more: its claims are refused
                    try:
                        await a.claim(conn, "originate", "x")
                        raise AssertionError("claimed while not leading")
                    except Fenced:
                        pass
                await b.wait_role(Role.LEADER, TIMEOUT_S)
                assert b.epoch == 2 and log == ["a start", "a stop", "b start"]
                await proxy.restore()
                await a.wait_until(lambda st: st["leader"] == "b", TIMEOUT_S)  # a follows b, it does not fight
                assert a.status()["role"] == "standby" and log == ["a start", "a stop", "b start"]
            async with watcher.connect() as conn:
                took, acquired, a_expired = (await conn.execute(text(
                    "SELECT holder, acquired_ts, prev_expires_ts FROM ha_epochs WHERE epoch = 2"))).one()
            assert took == "b" and acquired >= a_expired  # never two leases at once
            assert a_down[0] < a_expired, "a must stop leading before its lease runs out"
            assert log == ["a start", "a stop", "b start", "b stop"]
            released = await read_lease(watcher)
            assert released is not None and not released.live()  # b gave the lease up as it stopped
        finally:
            await watcher.dispose()


async def test_when_the_leaders_session_ends_it_stops_at_once_and_the_standby_takes_over_before_the_expiry(
        ha_db: str) -> None:
    log: list[str] = []
    watcher = make_engine(ha_db)
    reasons: list[str] = []
    a, _ = node("a", ha_db, log, reasons=reasons)
    b, _ = node("b", ha_db, log)
    try:
        async with a(), b():
            await a.wait_role(Role.LEADER, TIMEOUT_S)
            await b.wait_until(lambda st: st["leader"] == "a", TIMEOUT_S)
            async with watcher.connect() as conn:  # what a kill -9 does to a's lease session: PostgreSQL ends it
                await conn.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = 1 "
                    "AND objsubid = 2 AND granted AND database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database())"))
            await b.wait_role(Role.LEADER, TIMEOUT_S)
            assert b.epoch == 2 and a.status()["role"] == "standby"
            assert reasons[0].startswith("its lease session ended")  # a stopped on its own session's end
            await a.wait_until(lambda st: st["leader"] == "b" and not st["leader_features"], TIMEOUT_S)
            async with watcher.connect() as conn:
                took, acquired, a_expires = (await conn.execute(text(
                    "SELECT holder, acquired_ts, prev_expires_ts FROM ha_epochs WHERE epoch = 2"))).one()
            assert took == "b" and acquired < a_expires  # b did not wait for a's lease to run out
            assert sorted(log) == ["a start", "a stop", "b start"]
    finally:
        await watcher.dispose()
