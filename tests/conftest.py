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


def pytest_configure(config: pytest.Config) -> None:
    """Browser assertions wait on the page (Playwright's `expect` retries until the state holds); their
    default bound of 5 s is too short for a first report or a page's first data on a busy CI machine, so the
    bound is 30 s. A passing test waits no longer than before."""
    with contextlib.suppress(ImportError):
        from playwright.async_api import expect

        expect.set_options(timeout=30_000)
