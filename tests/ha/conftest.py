"""A migrated PostgreSQL database per test (ctitest_ha_<pid>): the lease and claims live there."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from ctiserver.store.engine import migrate

from ..pgutil import fresh_database

PG_DB = f"ctitest_ha_{os.getpid()}"


@pytest.fixture
async def ha_db() -> AsyncIterator[str]:
    url = await fresh_database(PG_DB)
    await migrate(url)
    yield url
