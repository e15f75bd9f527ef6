"""Engines: SQLite pragmas and transactional DDL, URL handling, PostgreSQL failing fast."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from ctiserver.store import engine as engine_module
from ctiserver.store.engine import UnsupportedDatabase, make_engine, normalise_url, reading

from .conftest import PG_HOST, PG_PORT, pg_url
from .tcpproxy import TcpProxy


def test_urls_get_the_async_driver() -> None:
    assert normalise_url("sqlite:////var/lib/cti/events.db") == "sqlite+aiosqlite:////var/lib/cti/events.db"
    assert normalise_url("postgres://cti:pw@db:5432/cti") == "postgresql+asyncpg://cti:pw@db:5432/cti"
    assert normalise_url("postgresql://db/cti") == "postgresql+asyncpg://db/cti"
    assert normalise_url("postgresql+asyncpg://db/cti") == "postgresql+asyncpg://db/cti"


@pytest.mark.parametrize("url", ["mysql://db/cti", "postgresql+psycopg2://db/cti", "not a url"])
def test_unsupported_urls_are_refused_clearly(url: str) -> None:
    with pytest.raises(UnsupportedDatabase) as err:
        make_engine(url)
    assert "sqlite+aiosqlite" in str(err.value) or "not a database URL" in str(err.value)


def test_error_message_hides_the_password() -> None:
    with pytest.raises(UnsupportedDatabase) as err:
        normalise_url("mysql://cti:s3cret@db/cti")
    assert "s3cret" not in str(err.value)


async def test_sqlite_runs_in_wal_with_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", busy_timeout_s=7)
    try:
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 7000
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
    finally:
        await engine.dispose()


async def test_sqlite_ddl_is_transactional(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(RuntimeError):
            async with engine.begin() as conn:
                await conn.execute(text("CREATE TABLE t (x INTEGER)"))
                raise RuntimeError("migration failed half way")
        async with engine.connect() as conn:
            names = (await conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'")).all()
        assert names == []
    finally:
        await engine.dispose()


async def test_sqlite_read_then_write_waits_for_another_writer_instead_of_failing(tmp_path: Path) -> None:
    """A transaction that reads, then writes, while another connection writes and commits: with a deferred
    BEGIN the first one's write failed at once ("database is locked": a stale snapshot cannot be upgraded);
    `engine.begin()` takes the write lock up front, so the other writer waits its turn and both commit."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", busy_timeout_s=30)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))

        async def other_writer() -> None:
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO t VALUES (2)"))

        async with engine.begin() as conn:
            n = (await conn.execute(text("SELECT count(*) FROM t"))).scalar()
            other = asyncio.create_task(other_writer())
            done, _ = await asyncio.wait({other}, timeout=1.0)  # it cannot finish while we hold the lock
            assert not done
            await conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": n})
        await asyncio.wait_for(other, 30)
        async with engine.connect() as conn:
            assert sorted(r[0] for r in await conn.execute(text("SELECT x FROM t"))) == [0, 2]
    finally:
        await engine.dispose()


async def test_sqlite_a_reader_does_not_hold_up_a_writer(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", busy_timeout_s=30)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x INTEGER)"))
        async with engine.connect() as reader:
            assert (await reader.execute(text("SELECT count(*) FROM t"))).scalar() == 0
            assert reader.in_transaction()
            async with engine.begin() as writer:  # would wait 30 s if the reader held the write lock
                await writer.execute(text("INSERT INTO t VALUES (1)"))
            assert (await reader.execute(text("SELECT count(*) FROM t"))).scalar() == 0  # its snapshot
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_refused_connection_fails_at_once(pg_database: str) -> None:
    async with TcpProxy(PG_HOST, PG_PORT) as proxy:
        await proxy.cut("refuse")
        engine = make_engine(pg_url(proxy.port), connect_timeout_s=30)
        try:
            with pytest.raises(OSError):
                # The outer bound only stops a broken test from hanging the suite.
                async with asyncio.timeout(20):
                    async with engine.connect() as conn:
                        await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()


@pytest.mark.postgres
async def test_postgres_silent_server_hits_the_connect_timeout(pg_database: str) -> None:
    async with TcpProxy(PG_HOST, PG_PORT) as proxy:
        await proxy.cut("hang")
        engine = make_engine(pg_url(proxy.port), connect_timeout_s=0.5)
        try:
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(20):
                    async with engine.connect() as conn:
                        await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()
            await proxy.restore()


@pytest.mark.postgres
async def test_postgres_half_open_link_hits_the_statement_timeout(pg_database: str) -> None:
    async with TcpProxy(PG_HOST, PG_PORT) as proxy:
        engine = make_engine(pg_url(proxy.port), statement_timeout_s=0.5)
        try:
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT 1"))).scalar() == 1
                await proxy.cut("hang")
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(20):
                        await conn.execute(text("SELECT 2"))
        finally:
            await proxy.restore()
            await engine.dispose()


@pytest.mark.postgres
async def test_postgres_pool_recovers_after_the_server_comes_back(pg_database: str) -> None:
    async with TcpProxy(PG_HOST, PG_PORT) as proxy:
        engine = make_engine(pg_url(proxy.port))
        try:
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT 1"))).scalar() == 1
            await proxy.cut("refuse")
            await proxy.restore()
            # The pooled connection died with the cut; pre-ping replaces it without an error.
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT 1"))).scalar() == 1
            assert proxy.connections_total == 2
        finally:
            await engine.dispose()


@pytest.mark.postgres
async def test_postgres_pool_pings_only_a_connection_idle_for_a_while_and_reads_go_without_begin(
        pg_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkout check that replaced pre-ping (three round trips per use): a connection in use a moment
    ago goes as it is, one idle for PING_AFTER_IDLE_S is pinged once; `reading()` sends no BEGIN/ROLLBACK."""
    sent: list[str] = []
    original = asyncpg.connection.Connection.execute

    async def spy(self: asyncpg.connection.Connection, query: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(query.strip().rstrip(";").split(" ", 1)[0])  # BEGIN, ROLLBACK, the ping's SELECT
        return await original(self, query, *args, **kwargs)

    monkeypatch.setattr(asyncpg.connection.Connection, "execute", spy)
    engine = make_engine(pg_database)
    try:
        async with engine.connect() as conn:  # connects (and SQLAlchemy reads the server's settings)
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        sent.clear()
        for _ in range(2):  # in use a moment ago: no ping
            async with engine.connect() as conn:
                assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        assert sent == ["BEGIN", "ROLLBACK"] * 2
        sent.clear()
        monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 0.0)  # every pooled connection is "idle" now
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 2"))).scalar() == 2
        assert sent == ["SELECT", "BEGIN", "ROLLBACK"]
        monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_S", 5.0)
        sent.clear()
        async with reading(engine) as conn:
            assert (await conn.execute(text("SELECT 3"))).scalar() == 3
            assert (await conn.execute(text("SELECT 4"))).scalar() == 4
        async with engine.begin() as conn:  # the isolation level went back with the connection
            await conn.execute(text("SELECT 5"))
        assert sent == ["BEGIN", "COMMIT"]
    finally:
        await engine.dispose()
