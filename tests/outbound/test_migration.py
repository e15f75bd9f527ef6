"""Revisions 0004 and 0005 build the outbound tables exactly as ctiserver/outbound/store.py and
ctiserver/callbacks/store.py define them."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from ctiserver.callbacks.store import TABLES as CALLBACK_TABLES
from ctiserver.outbound.store import TABLES as OUTBOUND_TABLES
from ctiserver.store.engine import make_engine, migrate

PG_DB = f"ctitest_outbound_migration_{os.getpid()}"
TABLES = (*OUTBOUND_TABLES, *CALLBACK_TABLES)


async def _fresh_pg() -> str:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{PG_DB}"')
    finally:
        await conn.close()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{PG_DB}"


async def _drop_pg() -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
    finally:
        await conn.close()


def _diffs(conn: Connection) -> list[object]:
    only = MetaData()
    for table in TABLES:
        table.to_metadata(only)
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    names = {t.name for t in TABLES}

    def ours(diff: object) -> bool:
        item = diff[0] if isinstance(diff, list) else diff
        obj = item[1] if isinstance(item, tuple) and len(item) > 1 else None
        table = getattr(obj, "table", obj)
        return getattr(table, "name", None) in names or getattr(obj, "name", None) in names

    return [d for d in compare_metadata(ctx, only) if ours(d)]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_migration_matches_the_table_definitions(backend: str, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}" if backend == "sqlite" else await _fresh_pg()
    await migrate(url)
    await migrate(url)  # a second run changes nothing
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_diffs) == []
    finally:
        await engine.dispose()
        if backend == "postgres":
            await _drop_pg()
