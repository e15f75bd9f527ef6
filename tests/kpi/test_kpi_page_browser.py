"""The /reports page in a real browser (Debian's chromium via Playwright): charts are drawn from the API."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import async_playwright, expect
from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.kpi.config import KpiConfig
from ctiserver.kpi.http import add_report_routes
from ctiserver.web.guard import new_app

from .conftest import load
from .test_kpi_golden import golden_day

CHROMIUM = "/usr/bin/chromium"


@pytest.mark.browser
async def test_reports_page_draws_the_golden_day(sqlite_engine: AsyncEngine) -> None:
    await load(sqlite_engine, golden_day())
    app = new_app()
    add_report_routes(app, lambda: sqlite_engine, KpiConfig())
    server = TestServer(app)
    await server.start_server()
    errors: list[str] = []
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(str(server.make_url("/reports")))
            await page.fill("#from", "2026-11-23")
            await page.fill("#to", "2026-11-24")
            await page.click("#load")
            await expect(page.locator("#status")).to_contain_text("2026-11-23T00:00")
            # SL line, volume lines, stacked agent bars and tier bars are drawn.
            assert await page.locator("#sl path").count() >= 1
            assert await page.locator("#vol path").count() == 3
            assert await page.locator("#agents rect").count() > 10
            assert await page.locator("#tiers rect").count() == 8  # 4 tiers x (SL, target)
            tier_rows = await page.locator("#tier-table tr").all_inner_texts()
            assert any(r.startswith("vip") and "50.0%" in r for r in tier_rows)
            staffing = await page.locator("#staffing tr").all_inner_texts()
            assert any(r.startswith("09:00") for r in staffing)
            # A bad range shows the server's reason instead of a broken page.
            await page.fill("#to", "2026-11-01")
            await page.click("#load")
            await expect(page.locator("#status")).to_have_class("error")
            assert "after" in await page.locator("#status").inner_text()
            await browser.close()
    finally:
        await server.close()
    assert errors == []
