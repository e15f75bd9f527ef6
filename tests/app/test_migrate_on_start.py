"""A start migrates the schema to its end however long that takes; only reaching the database is bounded."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from ctiserver.app import server as server_module
from ctiserver.app.server import CtiServer
from ctiserver.config import load_server_config
from ctiserver.lifecycle import TaskOwner
from ctiserver.store import engine as store_engine

REPO = Path(__file__).resolve().parents[2]


def a_server(tmp_path: Path) -> CtiServer:
    cfg = tmp_path / "config"
    shutil.copytree(REPO / "config", cfg)
    return CtiServer(cfg, load_server_config(cfg), base_dir=tmp_path)


async def test_a_migration_longer_than_the_reach_bound_runs_to_its_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    real = store_engine.migrate
    runs: list[str] = []

    async def slow_migrate(url: str, target: str = "head") -> None:
        runs.append(url)
        await asyncio.sleep(0.6)  # an upgrade rewriting a big table: longer than reaching the database may take
        await real(url, target)

    monkeypatch.setattr(server_module, "DB_REACH_S", 0.3)
    monkeypatch.setattr(store_engine, "migrate", slow_migrate)
    server = a_server(tmp_path)
    async with TaskOwner("test") as tasks:
        await server._migrate_or_retry(tasks)
    assert len(runs) == 1 and "retrying" not in caplog.text  # done on the first try, not cancelled
    assert await store_engine.current_revision(server.db_url) == store_engine.head_revision()


async def test_a_database_out_of_reach_is_retried_in_the_background(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    async def never(url: str) -> Any:
        await asyncio.sleep(3600)

    monkeypatch.setattr(server_module, "DB_REACH_S", 0.2)
    monkeypatch.setattr(store_engine, "current_revision", never)
    server = a_server(tmp_path)
    async with TaskOwner("test") as tasks:
        await server._migrate_or_retry(tasks)
        assert "retrying in the background" in caplog.text
