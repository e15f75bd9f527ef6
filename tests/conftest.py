"""Shared test plumbing. Integration fixtures live in plugin modules so each area can use them."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests import pgutil

pytest_plugins = ["tests.asterisk_fixture"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The PostgreSQL databases this session made (named per process) go with it, not left to pile up."""
    if pgutil.MADE:
        with contextlib.suppress(Exception):  # PostgreSQL gone: nothing to tidy
            asyncio.run(pgutil.drop_made())
