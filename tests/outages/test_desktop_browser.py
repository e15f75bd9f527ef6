"""The agent desktop's outage form (issue 16): a work order attaches to an outage under way in the caller's area.

The whole server runs from the sample config against the sandbox Asterisk; a dispatcher enters a fault outage
for 城东区 through the API. 李秀英 (13800000002, 城东区) calls and is put through to agent 1001 (a sim agent that
answers), whose page in headless Chromium pops her record: the work-order form lists the 城东区 outage (and no
other area's), chosen already; the agent files the work order, which is attached to the outage (the form says
so, the outage's report count is up, the report row holds the work order)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, async_playwright, expect
from sqlalchemy import select

from ctiserver.app.server import CtiServer
from ctiserver.app.wiring import build_server
from ctiserver.config import load_server_config
from ctiserver.outages.store import outage_reports
from ctiserver.web.auth import create_user
from ctiserver.web.tables import work_orders
from tests.asterisk_fixture import AmiRecorder, originate_caller
from tests.live_config import KEYS_TO_AGENT, sandbox_config

pytestmark = [pytest.mark.browser, pytest.mark.asterisk]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "desk-secret-1"


@pytest.fixture
async def live(asterisk_sandbox: Any, ami: AmiRecorder, tmp_path: Path) -> AsyncIterator[CtiServer]:
    cfg_dir = sandbox_config(tmp_path, asterisk_sandbox, local_agents=True)
    server = await build_server(cfg_dir, load_server_config(cfg_dir), sample_data=True, base_dir=tmp_path)
    await server.start()
    await ami.setvar("CTI_AGI", f"127.0.0.1:{server.cfg.agi.port}")
    await ami.setvar("AGENT_1001_MODE", "answer")
    await ami.setvar("AGENT_1001_TALK", "40")
    try:
        await asyncio.wait_for(server.ami["pbx1"].wait_connected(), 20)
        await server.features.ivr.wait_prerendered()
        await create_user(server.store.engine, "1001", "张三", "agent", PASSWORD, now=server.clock.now())
        await create_user(server.store.engine, "9001", "调度员", "dispatcher", PASSWORD, now=server.clock.now())
        yield server
    finally:
        await ami.hang_up_callers()
        await server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def enter_outage(base: str, area: str, cause: str, now: float) -> int:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/auth/login", json={"agent_no": "9001", "password": PASSWORD}) as r:
            assert r.status == 200, await r.text()
            auth = {"Authorization": f"Bearer {(await r.json())['token']}"}
        async with http.post(f"{base}/api/outages", headers=auth, json={
                "kind": "fault", "cause": cause, "scope": {"areas": [area]}, "start_ts": now - 300,
                "expected_restore_ts": now + 3 * 3600}) as r:
            assert r.status == 201, await r.text()
            return int((await r.json())["outage"]["id"])


async def test_the_agent_attaches_the_work_order_to_the_callers_outage(live: CtiServer, ami: AmiRecorder,
                                                                       browser: Browser) -> None:
    base = f"http://127.0.0.1:{live.http_port}"
    now = live.clock.now()
    east = await enter_outage(base, "城东区", "10千伏东环线故障", now)
    west = await enter_outage(base, "城西区", "台区变压器故障", now)

    context = await browser.new_context(viewport={"width": 1366, "height": 900})
    page = await context.new_page()
    await page.goto(base + "/agent")
    await page.fill("#agent_no", "1001")
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#conn")).to_contain_text("online", timeout=15_000)
    await page.click("#acd-login")
    await expect(page.locator("#state")).to_have_attribute("data-state", "not_ready")
    await page.click("#ready")
    await expect(page.locator("#state")).to_have_attribute("data-state", "available")

    await originate_caller(ami, "13800000002", keys=KEYS_TO_AGENT, name="李秀英", hold_s=60,
                           agi=f"127.0.0.1:{live.cfg.agi.port}")
    await expect(page.locator("#pop-name")).to_have_text("李秀英", timeout=90_000)
    await expect(page.locator("#pop-area")).to_have_text("城东区")
    options = page.locator("#wo-outage option")
    await expect(options).to_have_count(2, timeout=15_000)  # none, and 城东区's outage (not 城西区's)
    await expect(page.locator("#wo-outage")).to_have_value(str(east))
    assert f"#{west} " not in " ".join(await options.all_inner_texts())
    assert "10千伏东环线故障" in await options.nth(1).inner_text()

    await page.select_option("#wo-category", "fault_repair")
    await page.fill("#wo-content", "城东区停电报修")
    await page.select_option("#wo-unit", index=1)
    await page.click("#wo-form button[type=submit]")
    await expect(page.locator("#wo-ok")).to_contain_text(f"#{east}", timeout=15_000)
    await expect(page.locator("#wo-err")).to_be_empty()
    await context.close()

    async with live.store.engine.connect() as conn:
        wo = (await conn.execute(select(work_orders))).mappings().one()
        reports = (await conn.execute(select(outage_reports).where(outage_reports.c.outage_id == east))
                   ).mappings().all()
    assert [(r["workorder_id"], r["number"]) for r in reports] == [(wo["id"], "13800000002")]
    assert reports[0]["call_id"] == wo["call_id"] and wo["call_id"]
