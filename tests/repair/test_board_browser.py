"""The dispatch board and the crew's page in headless Chromium, on the production server: a dispatcher
signs in to /dispatch and sees the order dispatched through the API with its crew and next deadline; the
crew opens its link on a phone-sized page and acknowledges, arrives and sends the 30-minute report; the
board follows each step."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, async_playwright, expect

from tests.production import PASSWORD, Running, production_server

pytestmark = pytest.mark.browser
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def prod(tmp_path: Path) -> AsyncIterator[Running]:
    async with production_server(tmp_path) as running:
        await running.add_user("9001", "dispatcher")
        yield running


async def test_the_board_follows_the_crew_through_its_page(prod: Running, browser: Browser) -> None:
    async with aiohttp.ClientSession() as http:
        token = await prod.login(http, "9001")
        async with http.post(f"{prod.url}/api/repair/orders", json={"area": "高新区"},
                             headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 201, await r.text()
            body = await r.json()
    order_id, crew_url = body["order"]["id"], body["crew_url"]
    assert (body["order"]["crew"], body["order"]["area_class"]) == ("GX1", "suburb")

    board = await (await browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")).new_page()
    await board.goto(f"{prod.url}/dispatch")
    await board.fill("#agent_no", "9001")
    await board.fill("#password", PASSWORD)
    await board.click("#login-form button[type=submit]")
    row = board.locator(f"#orders tr[data-order='{order_id}']")
    await expect(row).to_have_attribute("data-stage", "dispatched", timeout=15_000)
    await expect(row).to_contain_text("高新区抢修班")
    await expect(row).to_contain_text("接单")  # the next deadline: acknowledge

    crew = await (await browser.new_context(viewport={"width": 390, "height": 844})).new_page()
    await crew.goto(prod.url + crew_url)
    await expect(crew.locator("#stage")).to_have_attribute("data-stage", "dispatched")
    await crew.click("#ack")
    await expect(crew.locator("#stage")).to_have_attribute("data-stage", "acknowledged")
    await expect(row).to_have_attribute("data-stage", "acknowledged", timeout=15_000)
    await expect(row).to_contain_text("到达")  # next: arrive within 90 minutes (suburb)
    await crew.click("#arrive")
    await expect(crew.locator("#stage")).to_have_attribute("data-stage", "arrived")
    await crew.fill("#cause", "树枝碰线")
    await crew.fill("#location", "高新大道18号杆")
    await crew.click("#report button[type=submit]")
    await expect(crew.locator("#stage")).to_have_attribute("data-stage", "reported")
    await expect(row).to_have_attribute("data-stage", "reported", timeout=15_000)
    await expect(row).to_contain_text("树枝碰线")
    await crew.goto(prod.url + "/crew/" + "x" * 20)  # another token: nothing to see
    await expect(crew.locator("#err")).not_to_be_empty()

    await prod.server.store.flush(timeout=10)  # the steps' events are in the store: the loop's KPIs
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{prod.url}/api/repair/kpis", headers={"Authorization": f"Bearer {token}"}) as r:
            kpis = await r.json()
    assert kpis["arrival_by_class"]["suburb"]["orders"] == 1
    assert kpis["arrival_by_class"]["suburb"]["on_time_rate"] == 1.0
    assert kpis["report_on_time_rate"] == 1.0
