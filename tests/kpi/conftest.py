"""Databases for the KPI tests: a fresh SQLite file and a fresh PostgreSQL database `ctitest_kpi_<pid>`.

PostgreSQL is always running in CI (scripts/setup.sh); these tests do not skip without it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ctiserver.events import Event
from ctiserver.kpi.factsql import FACT_TABLES
from ctiserver.kpi.factstore import rebuild
from ctiserver.store.schema import events, metadata

# One database per test process: the lead's full run and a developer's run may overlap.
PG_DB = f"ctitest_kpi_{os.getpid()}"


async def fresh_pg(name: str = PG_DB) -> str:
    """Drop and recreate our own database; return its SQLAlchemy URL."""
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    try:
        # FORCE (PostgreSQL 13+) ends the previous test's lingering pooled connections first.
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


async def drop_pg(name: str = PG_DB) -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def load(engine: AsyncEngine, evs: Iterable[Event]) -> None:
    """Create the events and facts tables, append `evs` with SQLAlchemy Core, each with its own
    event_key, and derive their facts as the event store's fact sink does."""
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all, tables=[events, *FACT_TABLES])
        rows = [{**e.as_row(), "event_key": f"kpi-{i}"} for i, e in enumerate(evs)]
        if rows:
            await conn.execute(events.insert(), rows)
    if rows:
        await rebuild(engine, min(r["ts"] for r in rows), max(r["ts"] for r in rows) + 1)


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'kpi.db'}")
    yield engine
    await engine.dispose()


@pytest.fixture
async def pg_engine() -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(await fresh_pg())
    yield engine
    await engine.dispose()
    await drop_pg()


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """Each test taking `engine` runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        eng = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'kpi.db'}")
    else:
        eng = create_async_engine(await fresh_pg())
    yield eng
    await eng.dispose()
    if request.param == "postgresql":
        await drop_pg()
