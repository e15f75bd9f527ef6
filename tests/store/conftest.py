"""Fixtures: every store test runs on a SQLite file and on the real PostgreSQL server.

PostgreSQL is always there in CI (scripts/setup.sh starts it), so nothing here
skips: if it is down, these tests fail and say so. Each test process gets its own
database `ctitest_store_<pid>` (dropped at the end, and on the next run if the
process was killed); each test gets an empty `public` schema.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ctiserver.store.engine import make_engine
from ctiserver.store.schema import events

from .tcpproxy import TcpProxy

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
# One database per test process, so two people (or CI and a person) running the
# suite at once on the same server do not cut each other's connections.
PG_DB = f"ctitest_store_{os.getpid()}"


def pg_url(port: int = PG_PORT, db: str = PG_DB) -> str:
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{port}/{db}"


def _in_thread(coro: Coroutine[Any, Any, None]) -> None:
    """Run `coro` to completion on its own loop, whatever loop this thread may be in."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


async def _admin(sql: str, *args: object) -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def _drop_database(name: str) -> None:
    await _admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE datname = $1 AND pid <> pg_backend_pid()", name)
    await _admin(f'DROP DATABASE IF EXISTS "{name}"')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _recreate_database() -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        names = [r[0] for r in await conn.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'ctitest\\_store\\_%'")]
    finally:
        await conn.close()
    for name in names:  # left behind by runs that were killed
        pid = name.rsplit("_", 1)[1]
        if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            await _drop_database(name)
    await _admin(f'CREATE DATABASE "{PG_DB}"')


async def _empty_schema() -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_DB)
    try:
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = $1 AND pid <> pg_backend_pid()", PG_DB)
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_session_database() -> Iterator[str]:
    """This process's PostgreSQL test database: created on first use, dropped at the end."""
    _in_thread(_recreate_database())
    yield pg_url()
    _in_thread(_drop_database(PG_DB))


@pytest.fixture
def pg_database(pg_session_database: str) -> str:
    return pg_session_database


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no tables) on each backend."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    request.getfixturevalue("pg_session_database")
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
