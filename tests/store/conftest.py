"""Fixtures: every store test runs on a SQLite file and on the real PostgreSQL server.

PostgreSQL is always there in CI (scripts/setup.sh starts it), so nothing here
skips: if it is down, these tests fail and say so. The database `ctitest_store` is
dropped and recreated once per session; each test gets an empty `public` schema.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from ctiserver.store.engine import make_engine
from ctiserver.store.schema import events

from .tcpproxy import TcpProxy

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
PG_DB = "ctitest_store"


def pg_url(port: int = PG_PORT, db: str = PG_DB) -> str:
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{port}/{db}"


async def _recreate_database() -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = $1 AND pid <> pg_backend_pid()", PG_DB)
        await conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}"')
        await conn.execute(f'CREATE DATABASE "{PG_DB}"')
    finally:
        await conn.close()


async def _empty_schema() -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_DB)
    try:
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = $1 AND pid <> pg_backend_pid()", PG_DB)
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


_recreated = False


async def _ensure_database() -> str:
    global _recreated
    if not _recreated:
        await _recreate_database()
        _recreated = True
    return pg_url()


@pytest.fixture
async def pg_database() -> str:
    """The PostgreSQL test database (recreated on first use in this session)."""
    return await _ensure_database()


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no tables) on each backend."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    await _ensure_database()
    await _empty_schema()
    return pg_url()


async def create_events_table(url: str) -> None:
    """The `events` table from schema.py (test_migrations proves revision 0001 builds the same).

    Writer tests use this rather than `migrate()` so that they test the writer
    alone, whatever state other features' revisions are in.
    """
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda c: events.create(c))
    finally:
        await engine.dispose()


@pytest.fixture
async def store_url(db_url: str) -> str:
    """A database holding an empty `events` table, on each backend."""
    await create_events_table(db_url)
    return db_url


@pytest.fixture
async def pg_store_url(pg_database: str) -> str:
    """The PostgreSQL test database with an empty `events` table."""
    await _empty_schema()
    await create_events_table(pg_database)
    return pg_database


@pytest.fixture
async def pg_proxy(pg_store_url: str) -> AsyncIterator[TcpProxy]:
    """A cuttable TCP proxy in front of the (migrated) PostgreSQL test database."""
    proxy = TcpProxy(PG_HOST, PG_PORT)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
