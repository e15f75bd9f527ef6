"""Revision 0003 builds the desktop tables exactly as ctiserver/web/tables.py defines them; the API on PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from ctiserver.store.engine import make_engine, migrate
from ctiserver.web.tables import dispositions, sessions, users, work_order_history, work_orders

from ..pgutil import fresh_database
from .conftest import login, make_desk

TABLES = [users, sessions, dispositions, work_orders, work_order_history]
PG_DB = f"ctitest_desktop_{os.getpid()}"


def _diffs(conn: Connection) -> list[object]:
    only = MetaData()
    for table in TABLES:
        table.to_metadata(only)
    names = {t.name for t in TABLES}
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})

    def ours(diff: object) -> bool:
        item = diff[0] if isinstance(diff, list) else diff
        obj = item[1] if isinstance(item, tuple) and len(item) > 1 else None
        table = getattr(obj, "table", obj)
        return getattr(table, "name", None) in names or getattr(obj, "name", None) in names

    return [d for d in compare_metadata(ctx, only) if ours(d)]


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_migration_matches_the_table_definitions(backend: str, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}" if backend == "sqlite" else await fresh_database(PG_DB)
    await migrate(url)
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_diffs) == []
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_api_on_postgresql(tmp_path: Path) -> None:
    desk = await make_desk(tmp_path, url=await fresh_database(PG_DB + "_api"))
    client: TestClient[Any, Any] = TestClient(TestServer(desk.app))
    await client.start_server()
    try:
        h = await login(client, "1001")
        r = await client.post("/api/dispositions", headers=h, json={"category": "complaint", "note": "服务态度",
                                                                    "resolved": False})
        assert r.status == 201
        r = await client.post("/api/workorders", headers=h, json={
            "incoming_number": "13800138000", "category": "complaint", "customer_name": "王小明",
            "content": "抄表员态度差", "anonymous": True})
        wo = await r.json()
        url = f"/api/workorders/{wo['id']}/status"
        supervisor = await login(client, "2001")
        for status, extra in [("dispatched", {"unit": "marketing"}), ("resolved", {}), ("closed", {}),
                              ("reopened", {"note": "不满意"})]:
            r = await client.post(url, headers=supervisor if status == "reopened" else h,
                                  json={"status": status, **extra})
            assert r.status == 200, await r.text()
        full = await (await client.get(f"/api/workorders/{wo['id']}", headers=h)).json()
        assert len(full["history"]) == 5 and full["customer_name"] == "匿名 anonymous"
        r = await client.post("/api/dispositions", headers=h,
                              json={"category": "inquiry", "resolved": True, "note": "a\x00b"})
        assert r.status == 422  # NUL never reaches PostgreSQL (which would refuse it with a 500)
    finally:
        await client.close()
        await desk.engine.dispose()
