"""/api/reports and /reports over a real aiohttp server and the golden day in SQLite."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ctiserver.clock import FakeClock
from ctiserver.kpi.config import KpiConfig
from ctiserver.kpi.http import add_report_routes
from ctiserver.web.guard import new_app

from .conftest import load
from .test_kpi_golden import EXPECTED_TOTAL, NOW, cfg, golden_day


@pytest.fixture
async def client(sqlite_engine: AsyncEngine) -> AsyncIterator[TestClient]:
    await load(sqlite_engine, golden_day())
    app = new_app()
    add_report_routes(app, lambda: sqlite_engine, cfg(), now=FakeClock(NOW).now, max_days=31)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_api_report_for_the_golden_day(client: TestClient) -> None:
    res = await client.get("/api/reports", params={"from": "2026-11-23", "to": "2026-11-24", "by": "band"})
    assert res.status == 200
    body = await res.json()
    assert body["schema"] == "ctiserver.kpi.report/1"
    assert [r["key"]["band"] for r in body["rows"]] == ["flat", "peak", "valley"]
    # The server's clock reads two days after the golden day, as in the golden test: the same totals.
    assert body["total"]["calls_offered"] == EXPECTED_TOTAL["calls_offered"]
    assert body["total"]["service_level"] == EXPECTED_TOTAL["service_level"]


async def test_api_csv_download(client: TestClient) -> None:
    res = await client.get("/api/reports", params={"from": "2026-11-23", "to": "2026-11-24", "format": "csv"})
    assert res.status == 200 and res.content_type == "text/csv"
    lines = (await res.text()).splitlines()
    assert lines[0].startswith("calls_offered,") and lines[-1].startswith("13,")


@pytest.mark.parametrize(("params", "words"), [
    ({"from": "yesterday"}, "not a date"),
    ({"from": "2026-11-23", "to": "2026-11-22"}, "after"),
    ({"from": "2026-01-01", "to": "2026-11-22"}, "at most 31 days"),
    ({"by": "halfhour,colour"}, "unknown grouping 'colour'"),
    ({"format": "xml"}, "json, csv or xlsx"),
    ({"lang": "fr"}, "lang must be en or zh"),
    ({"fom": "2026-11-23"}, "unknown parameter"),
])
async def test_bad_parameters_give_400_json(client: TestClient, params: dict[str, str], words: str) -> None:
    res = await client.get("/api/reports", params=params)
    assert res.status == 400
    body = await res.json()
    assert words in body["error"]["message"] and body["error"]["id"]


async def test_store_down_gives_503() -> None:
    broken = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nothing")
    app = new_app()
    add_report_routes(app, lambda: broken, KpiConfig(), now=FakeClock(NOW).now)
    try:
        async with TestClient(TestServer(app)) as c:
            res = await c.get("/api/reports", params={"from": "2026-11-23"})
            assert res.status == 503
            assert (await res.json())["error"]["id"] == "store_unavailable"
    finally:
        await broken.dispose()


async def test_reports_page_is_self_contained(client: TestClient) -> None:
    res = await client.get("/reports")
    assert res.status == 200 and res.content_type == "text/html"
    csp = res.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert "<script>" not in await res.text() and "<style>" not in await res.text()
    html = await res.text() + await (await client.get("/reports.js")).text()
    assert "/api/reports" in html and "<svg" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")  # no CDN, no external assets
    assert "https://" not in html
    assert "innerHTML" not in html  # data is set as text, never parsed as markup


async def test_the_report_names_its_metrics_queues_and_tiers_and_no_target_for_unqueued_calls(
        sqlite_engine: AsyncEngine) -> None:
    await load(sqlite_engine, golden_day())
    app = new_app()
    names = {"queues": {"billing": {"zh": "电费查询", "en": "Billing"}},
             "tiers": {"vip": {"zh": "VIP大客户", "en": "VIP"}}}
    add_report_routes(app, lambda: sqlite_engine, cfg(), now=FakeClock(NOW).now, max_days=31, names=names)
    async with TestClient(TestServer(app)) as c:
        body = await (await c.get("/api/reports", params={"from": "2026-11-23", "to": "2026-11-24"})).json()
    assert body["names"]["metrics"]["asa_s"] == {"zh": "平均应答速度（秒）", "en": "Average speed of answer (s)"}
    assert {t["metric"] for t in body["targets"]} <= set(body["names"]["metrics"])
    assert body["names"]["queues"] == names["queues"] and body["names"]["tiers"] == names["tiers"]
    [unqueued] = [t for t in body["tiers"] if t["tier"] is None]  # IVR-only calls: no tier, so no target
    assert (unqueued["target"], unqueued["threshold_s"], unqueued["met"]) == (None, None, None)
    assert [t["target"] for t in body["tiers"] if t["tier"] == "vip"] == [0.90]
