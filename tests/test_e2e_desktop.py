"""The whole product in one test: a real call through the sandbox Asterisk pops on a real browser.

The full server (AMI, FastAGI IVR, ACD, desktop, store) runs in-process from a copy
of the sample config; agents are Local-channel sim agents (`Local/<id>@sim-agents`).
A simulated caller (李秀英, 13800000002) walks the IVR and presses 0; the ACD
rings agent 1001, whose page in headless Chromium pops the customer's record;
the agent saves a disposition and a work order; both are in the database.
A second test queues callers with nobody ready and watches the wallboard count rise.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright, expect
from sqlalchemy import select

from ctiserver.app.server import CtiServer
from ctiserver.app.wiring import build_server
from ctiserver.config import load_server_config
from ctiserver.events import Kind
from ctiserver.store.query import fetch_events
from ctiserver.web.auth import create_user
from ctiserver.web.tables import dispositions, work_orders
from tests.asterisk_fixture import AmiRecorder, originate_caller
from tests.live_config import KEYS_TO_AGENT, sandbox_config
from tests.sipphone import agent_phone

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "e2e-secret-1"


def hotline_config(tmp: Path, info: Any, *, local_agents: bool) -> Path:
    """The sample config, pointed at the sandbox and a temp database; agents are the sandbox's PJSIP
    endpoints (softphones) as in production, or Local-channel sim agents."""
    return sandbox_config(tmp, info, local_agents=local_agents)


@pytest.fixture
async def live(request: pytest.FixtureRequest, asterisk_sandbox: Any, ami: AmiRecorder,
               tmp_path: Path) -> AsyncIterator[CtiServer]:
    local_agents = request.node.get_closest_marker("pjsip_agents") is None
    cfg_dir = hotline_config(tmp_path, asterisk_sandbox, local_agents=local_agents)
    server = await build_server(cfg_dir, load_server_config(cfg_dir), sample_data=True, base_dir=tmp_path)
    await server.start()
    await ami.setvar("CTI_AGI", f"127.0.0.1:{server.cfg.agi.port}")
    try:
        await asyncio.wait_for(server.ami["pbx1"].wait_connected(), 20)
        await server.features.ivr.wait_prerendered()  # static prompts ready, as after `ctiserver tts build`
        for agent_no, role in (("1001", "agent"), ("9001", "supervisor")):
            await create_user(server.store.engine, agent_no, "张三" if role == "agent" else "王主管", role, PASSWORD,
                              now=server.clock.now())
        yield server
    finally:
        await ami.setvar("CTI_AGI", "127.0.0.1:4573")
        await ami.setvar("AGENT_1001_MODE", "")
        await server.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


async def sign_in(page: Any, base: str, path: str, agent_no: str) -> None:
    await page.goto(base + path)
    await page.fill("#agent_no", agent_no)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#conn")).to_contain_text("online", timeout=15_000)


@pytest.mark.pjsip_agents
async def test_real_call_pops_on_the_agent_desktop(live: CtiServer, ami: AmiRecorder, browser: Browser,
                                                   asterisk_sandbox: Any) -> None:
    """Agent 1001's softphone is the sandbox's PJSIP endpoint agent1001 (`PJSIP/agent{id}`, as in production)."""
    base = f"http://127.0.0.1:{live.http_port}"
    sip = (asterisk_sandbox.ami_host, getattr(asterisk_sandbox, "sip_port", 5060))
    async with agent_phone("1001", sip, answer_after_s=1.0, talk_s=25.0) as phone:
        await _pop_and_file(live, ami, browser, base)
        call = await phone.wait_for_call("answered", timeout=10)  # the softphone really took the call
        assert call.answered_at is not None


async def _pop_and_file(live: CtiServer, ami: AmiRecorder, browser: Browser, base: str) -> None:
    context = await browser.new_context(viewport={"width": 1366, "height": 768})
    page = await context.new_page()
    await sign_in(page, base, "/agent", "1001")
    await page.click("#acd-login")
    await expect(page.locator("#state")).to_have_attribute("data-state", "not_ready")
    await page.click("#ready")
    await expect(page.locator("#state")).to_have_attribute("data-state", "available")

    await originate_caller(ami, "13800000002", keys=KEYS_TO_AGENT, name="李秀英", hold_s=60,
                           agi=f"127.0.0.1:{live.cfg.agi.port}")
    await expect(page.locator("#pop-name")).to_have_text("李秀英", timeout=90_000)
    await expect(page.locator("#pop-number")).to_have_text("13800000002")
    await expect(page.locator("#pop-account")).to_have_text("9100000002")
    await expect(page.locator("#pop-area")).to_have_text("城东区")
    await expect(page.locator("#pop-ivr")).not_to_be_empty()
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "e2e-agent-pop.png"))

    await page.select_option("#disp-category", "fault_repair")
    await page.fill("#disp-note", "城东区停电，已告知预计恢复时间")
    await page.click("#disp-form button[type=submit]")
    await expect(page.locator("#disp-ok")).to_contain_text("Saved")
    await page.select_option("#wo-category", "fault_repair")
    await page.fill("#wo-content", "城东区停电报修，请抢修")
    await page.select_option("#wo-unit", index=1)
    await page.click("#wo-form button[type=submit]")
    await expect(page.locator("#wo-ok")).to_contain_text("created")
    await context.close()

    engine = live.store.engine
    async with engine.connect() as conn:
        disp = (await conn.execute(select(dispositions))).mappings().one()
        wo = (await conn.execute(select(work_orders))).mappings().one()
    assert (disp["agent_no"], disp["category"]) == ("1001", "fault_repair")
    assert disp["note"] == "城东区停电，已告知预计恢复时间"
    assert (wo["incoming_number"], wo["category"], wo["content"]) == ("13800000002", "fault_repair",
                                                                       "城东区停电报修，请抢修")
    assert wo["call_id"] == disp["call_id"]
    want = {Kind.CALL_NEW, Kind.IVR_START, Kind.IVR_DTMF, Kind.ACD_ENQUEUE, Kind.ACD_OFFER, Kind.ACD_ANSWER,
            Kind.DISPOSITION, Kind.WORKORDER}
    for _ in range(40):  # the answer is reported from AMI DialEnd, moments after the pop (ringing)
        await live.store.flush(timeout=10)
        events = await fetch_events(engine, call_id=disp["call_id"])
        trail = [e.kind for e in events]
        if want <= set(trail):
            break
        await asyncio.sleep(0.5)
    offer = next(e for e in events if e.kind == Kind.ACD_OFFER)
    enqueue = next(e for e in events if e.kind == Kind.ACD_ENQUEUE)
    assert enqueue.data["caller_name"] == "李秀英"  # the CallerID name Asterisk gave (agi_calleridname)
    answer = next((e for e in events if e.kind == Kind.ACD_ANSWER), None)
    assert answer is not None and answer.agent_id == "1001", trail
    assert answer.ts - offer.ts < 10, "answer time comes from AMI, not from the end of the talk"
    for kind in (Kind.CALL_NEW, Kind.IVR_START, Kind.IVR_DTMF, Kind.ACD_ENQUEUE, Kind.ACD_OFFER, Kind.ACD_ANSWER,
                 Kind.DISPOSITION, Kind.WORKORDER):
        assert kind in trail, (kind, trail)


async def test_wallboard_counts_callers_queuing_in_asterisk(live: CtiServer, ami: AmiRecorder,
                                                            browser: Browser) -> None:
    base = f"http://127.0.0.1:{live.http_port}"
    context = await browser.new_context(viewport={"width": 1366, "height": 768})
    page = await context.new_page()
    await sign_in(page, base, "/wallboard", "9001")
    await expect(page.locator("#t-waiting")).to_have_text("0", timeout=15_000)
    # agents are logged in but nobody is ready: callers who ask for a person wait under CTI control
    # (with nobody logged in at all the ACD would refuse them at the door: "no agents")
    for agent_no in ("1001", "1002", "1003", "1004", "1005"):
        live.features.acd.login(agent_no, ready=False)
    for number in ("13800000011", "13800000012"):
        await originate_caller(ami, number, keys="0", hold_s=45, agi=f"127.0.0.1:{live.cfg.agi.port}")
    await expect(page.locator("#t-waiting")).to_have_text("2", timeout=90_000)
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "e2e-wallboard.png"))
    await context.close()
