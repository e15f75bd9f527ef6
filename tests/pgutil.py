"""Helpers for tests against the real PostgreSQL server (always running in CI, see scripts/setup.sh)."""

from __future__ import annotations

import asyncpg

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"


MADE: set[str] = set()  # databases this test session created: dropped when it ends (tests/conftest.py)


async def fresh_database(name: str) -> str:
    """Drop and recreate database `name`; return its SQLAlchemy async URL."""
    MADE.add(name)
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return pg_url(name)


async def drop_database(name: str) -> None:
    """Drop database `name`, ending its sessions first."""
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await conn.close()


async def drop_made() -> None:
    for name in sorted(MADE):
        await drop_database(name)
    MADE.clear()


def pg_url(name: str, port: int = PG_PORT) -> str:
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{port}/{name}"
