"""Fixtures of the HA tests.

`ha_db`: a migrated PostgreSQL database per test (ctitest_ha_<pid>): the lease and claims live there.

`rig`: the HA rig (tests/ha/rig.py), built once (about 30 s) and removed after the last test of this folder.
Every test leaves it as it found it (nodes and Asterisks running, links up); a test that kills or cuts
something brings it back before it ends (`cti` does). Removing the rig must leave nothing behind: the
teardown checks that (namespaces, links, mounts, processes, folders).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from ctiserver.store.engine import migrate

from ..pgutil import PG_HOST, PG_PORT, PG_USER, fresh_database
from .cti import RigCti
from .rig import Rig

PG_DB = f"ctitest_ha_{os.getpid()}"


@pytest.fixture
async def ha_db() -> AsyncIterator[str]:
    url = await fresh_database(PG_DB)
    await migrate(url)
    yield url


@pytest.fixture(scope="package")
def rig() -> Iterator[Rig]:
    built = Rig().up()
    try:
        yield built
    finally:
        built.down()
        assert built.leftovers() == [], "the rig left these behind"


@pytest.fixture
async def cti(rig: Rig) -> AsyncIterator[RigCti]:
    """The test's view of the rig: AMI recorders on both Asterisks, a supervisor's HTTP session per node."""
    view = RigCti(rig)
    await view.start()
    try:
        yield view
    finally:
        await view.close()
        await asyncio.to_thread(view.restore)


@pytest.fixture(scope="session", autouse=True)
def _drop_ha_database() -> Iterator[None]:
    yield

    async def drop() -> None:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())
