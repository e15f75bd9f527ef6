"""Fixtures for outbound tests: the same store on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ctiserver.outbound.store import TABLES, OutboundStore
from ctiserver.store.schema import metadata

# One database per test process, so two runs at once (a developer and CI) never share tables.
PREFIX = "ctitest_outbound_"
PG_DB = f"{PREFIX}{os.getpid()}"
_pg_ready = False


def _gone(pid: str) -> bool:
    return not Path(f"/proc/{pid}").exists()


async def _pg_admin() -> asyncpg.Connection:
    return await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")


async def _ensure_pg_database() -> str:
    global _pg_ready
    if not _pg_ready:
        conn = await _pg_admin()
        try:
            for row in await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", PREFIX + "%"):
                pid = row["datname"][len(PREFIX):]
                if pid.isdigit() and pid != str(os.getpid()) and _gone(pid):
                    await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')  # a dead run's
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", PG_DB):
                await conn.execute(f'CREATE DATABASE "{PG_DB}"')
        finally:
            await conn.close()
        _pg_ready = True
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_DB}"


@pytest.fixture(scope="session", autouse=True)
def _drop_pg_database() -> Iterator[None]:
    yield
    if _pg_ready:
        async def drop() -> None:
            conn = await _pg_admin()
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop())


async def make_engine(kind: str, tmp_path: Path) -> AsyncEngine:
    if kind == "sqlite":
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbound.db'}")
    else:
        engine = create_async_engine(await _ensure_pg_database())
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: metadata.drop_all(sync, tables=list(reversed(TABLES))))
        await conn.run_sync(lambda sync: metadata.create_all(sync, tables=list(TABLES)))
    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    eng = await make_engine(request.param, tmp_path)
    yield eng
    await eng.dispose()


@pytest.fixture
async def store(engine: AsyncEngine) -> OutboundStore:
    return OutboundStore(engine)
