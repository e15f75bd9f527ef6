"""End to end in Debian's headless Chromium: sign in, go ready, a pop shows the record, save both forms."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, async_playwright, expect
from sqlalchemy import select

from ctiserver.acd.config import load_acd_config
from ctiserver.acd.engine import AcdEngine
from ctiserver.acd.runtime import AcdRuntime
from ctiserver.clock import FakeClock
from ctiserver.events import Event, Kind
from ctiserver.web.acd_ports import AcdAgentControl, AcdWallboard
from ctiserver.web.app import BRIDGE_KEY, DESKTOP_KEY, create_desktop_app
from ctiserver.web.config import DesktopConfig
from ctiserver.web.tables import dispositions, work_orders
from ctiserver.web.ws import agent_stream

from .conftest import PASSWORDS, START, Desk, make_desk
from .fakes import FakeCalls, FakeCustomers

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
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
async def served(tmp_path: Path) -> AsyncIterator[tuple[Desk, str]]:
    desk = await make_desk(tmp_path)
    server = TestServer(desk.app, host="127.0.0.1")
    await server.start_server()
    try:
        yield desk, f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()
        await desk.engine.dispose()


async def sign_in(page: Any, base: str, path: str, agent_no: str) -> None:
    await page.goto(base + path)
    await page.fill("#agent_no", agent_no)
    await page.fill("#password", PASSWORDS[agent_no])
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#conn")).to_have_attribute("data-up", "1", timeout=10_000)


async def test_agent_desktop_end_to_end(browser: Browser, served: tuple[Desk, str]) -> None:
    desk, base = served
    ARTIFACTS.mkdir(exist_ok=True)
    page = await browser.new_page(viewport={"width": 1366, "height": 768}, locale="zh-CN",
                                  timezone_id="Asia/Shanghai")
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    await sign_in(page, base, "/agent", "1001")
    await expect(page.locator("#who")).to_have_text("张三 (1001)")

    await page.click("#acd-login")
    await expect(page.locator("#state")).to_have_attribute("data-state", "not_ready")
    await page.click("#ready")
    await expect(page.locator("#state")).to_have_attribute("data-state", "available")
    assert desk.agents.states["1001"]["state"] == "available"

    # the call is routed to 1001: the server pops the caller's record
    desk.calls.calls["1700000000.42"] = {"call_id": "1700000000.42", "agent_id": "1001", "number": "13800138000"}
    bridge = desk.app[BRIDGE_KEY]  # the server feeds its events here
    call = "1700000000.42"
    for ev in [Event(Kind.CALL_NEW, ts=0.0, call_id=call, data={"caller_num": "13800138000"}),
               *[Event(Kind.IVR_NODE, ts=0.0, call_id=call, data={"node": n})
                 for n in ("欢迎 welcome", "2 故障报修 fault", "转人工 agent")],
               Event(Kind.ACD_ENQUEUE, ts=0.0, call_id=call, queue="fault", tier="vip", data={"caller": "13800138000"}),
               Event(Kind.ACD_OFFER, ts=0.0, call_id=call, agent_id="1001", queue="fault", data={"wait_s": 30}),
               Event(Kind.ACD_ANSWER, ts=0.0, call_id=call, agent_id="1001", queue="fault", data={"wait_s": 37})]:
        bridge.on_event(ev)
    await expect(page.locator("#pop-phase")).to_contain_text("通话中")  # a zh-CN browser: Chinese
    await expect(page.locator("#pop-name")).to_have_text("王小明")
    await expect(page.locator("#pop-number")).to_have_text("13800138000")
    await expect(page.locator("#pop-account")).to_have_text("3100012345")
    await expect(page.locator("#pop-tier")).to_contain_text("VIP")
    await expect(page.locator("#pop-area")).to_have_text("浦东新区")
    await expect(page.locator("#pop-outage")).to_contain_text("10kV 线路故障")
    await expect(page.locator("#pop-arrears")).to_contain_text("126.50")
    await expect(page.locator("#pop-ivr")).to_contain_text("2 故障报修 fault")
    await expect(page.locator("#pop-wait")).to_contain_text("37秒")
    await expect(page.locator("#pop-history")).to_contain_text("停电报修")
    await expect(page.locator("#hangup")).to_be_enabled()

    await page.select_option("#disp-category", "fault_repair")
    await page.fill("#disp-note", "整栋楼停电，已登记报修")
    await page.click("#disp-form button[type=submit]")
    await expect(page.locator("#disp-ok")).to_contain_text("已保存")

    await page.select_option("#wo-category", "fault_repair")
    await expect(page.locator("#wo-name")).to_have_value("王小明")  # prefilled from the pop
    await page.fill("#wo-content", "浦东新区整栋楼停电，请抢修")
    await page.select_option("#wo-unit", index=1)
    await page.click("#wo-form button[type=submit]")
    await expect(page.locator("#wo-ok")).to_contain_text("已创建")
    await expect(page.locator("#wo-list")).to_contain_text("故障报修")
    await page.screenshot(path=str(ARTIFACTS / "agent-desktop.png"))

    async with desk.engine.connect() as conn:
        disp = (await conn.execute(select(dispositions))).mappings().one()
        wo = (await conn.execute(select(work_orders))).mappings().one()
    assert (disp["call_id"], disp["agent_no"], disp["category"], disp["resolved"]) == (
        "1700000000.42", "1001", "fault_repair", False)
    assert disp["note"] == "整栋楼停电，已登记报修" and disp["customer_account"] == "3100012345"
    assert (wo["call_id"], wo["incoming_number"], wo["category"], wo["customer_name"], wo["content"]) == (
        "1700000000.42", "13800138000", "fault_repair", "王小明", "浦东新区整栋楼停电，请抢修")
    assert wo["call_time"] == START and wo["due_ts"] == START + 24 * 3600 and wo["status"] == "open"
    assert [e.kind for e in desk.events] == ["disposition", "workorder"]
    # the one expected error: /api/me before signing in answers 401
    assert [e for e in console_errors if "401 (Unauthorized)" not in e] == []


async def test_pop_sent_while_socket_down_is_shown_after_reconnect(browser: Browser,
                                                                   served: tuple[Desk, str]) -> None:
    desk, base = served
    context = await browser.new_context(viewport={"width": 1366, "height": 768})
    page = await context.new_page()
    await sign_in(page, base, "/agent", "1002")
    await context.set_offline(True)
    # Chromium's offline mode does not cut an open socket: close it from the server side
    await desk.hub.close()
    await expect(page.locator("#conn")).to_contain_text("reconnecting")
    desk.hub.publish_pop("1002", {"call_id": "c9", "number": "13900000000", "customer": {"name": "陈某"}})
    desk.hub.publish_call_end("1002", "c9")
    await context.set_offline(False)
    await expect(page.locator("#conn")).to_contain_text("online", timeout=15_000)
    await expect(page.locator("#pop-name")).to_have_text("陈某")
    await expect(page.locator("#pop-phase")).to_contain_text("ended")
    await context.close()


async def test_wallboard_shows_waiting_and_agents(browser: Browser, served: tuple[Desk, str]) -> None:
    desk, base = served
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    await sign_in(page, base, "/wallboard", "2001")
    await expect(page.locator("#t-waiting")).to_have_text("0")
    desk.wallboard.waiting.update(billing=4, fault=3)
    desk.wallboard.callbacks.update(billing=2)
    desk.hub.publish_wallboard(desk.wallboard.snapshot())
    await expect(page.locator("#t-waiting")).to_have_text("7")
    await expect(page.locator("#t-callbacks")).to_have_text("2")  # kept places and scheduled callbacks
    await expect(page.locator("#c-queues svg rect")).to_have_count(2)
    await expect(page.locator("#agents tr")).to_have_count(3)
    desk.hub.publish_state("1001", {"state": "on_call", "reason": None})
    await expect(page.locator("#agents")).to_contain_text("On call")
    await page.screenshot(path=str(ARTIFACTS / "wallboard.png"))


async def test_wallboard_moves_a_waiting_caller_up(browser: Browser, tmp_path: Path) -> None:
    """Item 18: the supervisor picks a waiting caller's priority on the wallboard; the real ACD re-orders
    its queue, logs acd.retier with who did it, and every board shows the new order."""
    desk = await make_desk(tmp_path)  # users and database
    events: list[Event] = []
    rt = AcdRuntime(AcdEngine(load_acd_config(REPO / "config")), FakeClock(START),
                    events.append)
    app, _hub = create_desktop_app(engine=desk.engine, agents=AcdAgentControl(rt), calls=FakeCalls(),
                                   wallboard=AcdWallboard(rt), customers=FakeCustomers(), emit=events.append,
                                   config=DesktopConfig(wallboard_interval_s=3600), clock=desk.clock)
    rt.login("1001", ready=False)  # staffed, nobody free: callers wait
    rt.apply(lambda now: rt.engine.enqueue("c-first", "billing", "normal", "13900000001", now))
    rt.clock.jump(30)  # type: ignore[attr-defined]
    rt.apply(lambda now: rt.engine.enqueue("c-second", "billing", "normal", "13900000002", now))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        page = await browser.new_page(viewport={"width": 1366, "height": 900})
        await sign_in(page, f"http://127.0.0.1:{server.port}", "/wallboard", "2001")
        rows = page.locator("#waiting-calls tr[data-call]")
        await expect(rows).to_have_count(2)
        await expect(rows.first).to_have_attribute("data-call", "c-first")
        await expect(rows.first).to_contain_text("13900000001")
        second = page.locator('#waiting-calls tr[data-call="c-second"] select')
        await expect(second).to_have_value("normal")

        await second.select_option("vip")

        await expect(rows.first).to_have_attribute("data-call", "c-second")  # re-ordered by the push
        await expect(second).to_have_value("vip")
        assert rt.engine.position("c-second", rt.clock.now()).position == 1
        [ev] = [e for e in events if e.kind == Kind.ACD_RETIER]
        assert (ev.call_id, ev.tier, ev.data["previous"], ev.data["by"]) == ("c-second", "vip", "normal", "2001")
        await page.screenshot(path=str(ARTIFACTS / "wallboard-priority.png"))

        # the first caller hung up meanwhile (no push yet): the board says why and shows the ACD's tier again
        rt.apply(lambda now: rt.engine.abandon("c-first", now))
        first = page.locator('#waiting-calls tr[data-call="c-first"] select')
        await first.select_option("priority")
        await expect(page.locator("#priority-err")).to_contain_text("is waiting")
        await expect(first).to_have_value("normal")
        assert len([e for e in events if e.kind == Kind.ACD_RETIER]) == 1

        rt.apply(lambda now: rt.engine.abandon("c-second", now))
        desktop = app[DESKTOP_KEY]
        desktop.hub.publish_wallboard(await desktop.wallboard_snapshot())
        await expect(rows).to_have_count(0)
        await expect(page.locator("#waiting-calls")).to_contain_text("nobody waiting")
    finally:
        await server.close()
        await desk.engine.dispose()


async def test_pop_shows_the_routing_tier_the_record_tier_and_the_callerid_name(
        browser: Browser, served: tuple[Desk, str]) -> None:
    """A caller whose record says normal but whom the IVR routed as vip: the pop shows VIP and, apart,
    the record's tier. A caller with no record: the CallerID name Asterisk gave, marked as such."""
    desk, base = served
    desk.customers.records["13800138001"] = {"account": "3100012346", "name": "赵六", "tier": "normal"}
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    await sign_in(page, base, "/agent", "1001")
    bridge = desk.app[BRIDGE_KEY]
    for ev in [Event(Kind.ACD_ENQUEUE, ts=0.0, call_id="c1", queue="fault", tier="vip", data={"caller": "13800138001"}),
               Event(Kind.ACD_OFFER, ts=0.0, call_id="c1", agent_id="1001", queue="fault", tier="vip",
                     data={"wait_s": 3})]:
        bridge.on_event(ev)
    await expect(page.locator("#pop-name")).to_have_text("赵六")
    await expect(page.locator("#pop-tier")).to_contain_text("VIP")
    await expect(page.locator("#pop-tier-record")).to_be_visible()
    await expect(page.locator("#pop-tier-record")).to_contain_text("Normal")
    await expect(page.locator("#pop-name-src")).to_have_text("")
    for ev in [Event(Kind.ACD_ENQUEUE, ts=0.0, call_id="c2", queue="billing", tier="normal",
                     data={"caller": "13900000004", "caller_name": "钱七"}),
               Event(Kind.ACD_OFFER, ts=0.0, call_id="c2", agent_id="1001", queue="billing", tier="normal",
                     data={"wait_s": 1})]:
        bridge.on_event(ev)
    await expect(page.locator("#pop-number")).to_have_text("13900000004")
    await expect(page.locator("#pop-name")).to_have_text("钱七")
    await expect(page.locator("#pop-name-src")).to_contain_text("caller ID")
    await expect(page.locator("#pop-tier-record")).to_be_hidden()
    await expect(page.locator("#wo-name")).to_have_value("钱七")


async def test_agent_desktop_transfers_and_says_why_a_transfer_failed(browser: Browser,
                                                                      served: tuple[Desk, str]) -> None:
    """Item 19 on the desktop: a blind transfer from the call panel; when it cannot complete the server
    pushes `transfer_failed` and the panel says why and where the caller went."""
    desk, base = served
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    await sign_in(page, base, "/agent", "1001")
    desk.calls.calls["c7"] = {"call_id": "c7", "agent_id": "1001", "number": "13800138000"}
    desk.hub.publish_pop("1001", {"call_id": "c7", "phase": "answer", "number": "13800138000", "customer": None})
    await expect(page.locator("#xfer-agent")).to_be_enabled()

    await page.fill("#xfer-target", "1006")
    async with page.expect_response(lambda r: "/transfer" in r.url):  # the click's request, answered
        await page.click("#xfer-agent")
    await expect(page.locator("#call-err")).to_have_text("")
    assert desk.calls.actions == [("transfer", "c7", "agent", "1006", "blind", False)]

    desk.hub.publish(agent_stream("1001"), "transfer_failed", {
        "call_id": "c7", "target": "1006", "reason": "unreachable", "returned_to": "agent", "queue": "billing"})
    await expect(page.locator("#call-err")).to_contain_text("Transfer to 1006 failed")
    await expect(page.locator("#call-err")).to_contain_text("not reachable")
    await expect(page.locator("#call-err")).to_contain_text("coming back to you")
    desk.hub.publish(agent_stream("1001"), "transfer_failed", {
        "call_id": "c7", "target": "1006", "reason": "busy", "returned_to": "queue", "queue": "billing"})
    await expect(page.locator("#call-err")).to_contain_text("back in queue Billing")  # its name, not `billing`

    await page.fill("#xfer-target", "no such queue!")  # refused by the API: the panel shows why
    await page.click("#xfer-queue")
    await expect(page.locator("#call-err")).to_contain_text("target")
    assert len(desk.calls.actions) == 1


HAN = re.compile(r"[\u4e00-\u9fff]")


async def test_each_person_picks_one_ui_language_and_sees_only_that(browser: Browser,
                                                                    served: tuple[Desk, str]) -> None:
    """The desktop used to show every label twice (中文 English). A zh-CN browser starts in Chinese; the
    agent picks English: every label, state and code name is English only (and back), and the choice
    stays after a reload. Names of codes (reasons, categories, units) come from config per language."""
    desk, base = served
    context = await browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    page = await context.new_page()
    await sign_in(page, base, "/agent", "1001")
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    await expect(page.locator("#acd-login")).to_have_text("签入")
    await expect(page.locator("#disp-category option").first).to_have_text("咨询")
    await page.click("#acd-login")
    await page.select_option("#reason", "lunch")
    await page.click("#not-ready")
    await expect(page.locator("#state")).to_have_text("未就绪 (用餐)")
    bridge = desk.app[BRIDGE_KEY]
    for ev in [Event(Kind.ACD_ENQUEUE, ts=0.0, call_id="c1", queue="english", tier="vip",
                     data={"caller": "13800138000", "lang": "en"}),
               Event(Kind.ACD_OFFER, ts=0.0, call_id="c1", agent_id="1001", queue="english", tier="vip",
                     data={"wait_s": 65})]:
        bridge.on_event(ev)
    await expect(page.locator("#pop-lang")).to_have_text("英语")
    await expect(page.locator("#pop-wait")).to_have_text("1分5秒")

    await page.select_option("#ui-lang", "en")
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await expect(page.locator("#state")).to_have_text("Not ready (Lunch)")
    await expect(page.locator("#pop-phase")).to_have_text("· ringing")
    await expect(page.locator("#pop-lang")).to_have_text("English")
    await expect(page.locator("#pop-wait")).to_have_text("1m5s")
    await expect(page.locator("#pop-outage")).to_contain_text("fault")
    await expect(page.locator("#wo-unit option").nth(1)).to_have_text("City supply station")
    assert await page.title() == "Agent desktop"
    # nothing the page itself says is Chinese any more (names of people may be; the picker names 中文 in Chinese)
    chrome = await page.locator("header h1, #state, #conn, #signout, #status-card, #disp-form, #wo-form, #pop dt, "
                                "#pop h2").all_inner_texts()
    assert not HAN.search(" ".join(chrome)), chrome

    await page.reload()
    await expect(page.locator("#conn")).to_have_attribute("data-up", "1", timeout=10_000)
    await expect(page.locator("#acd-login")).to_have_text("Log in to queue")  # the choice stays
    await page.select_option("#ui-lang", "zh")
    await expect(page.locator("#acd-login")).to_have_text("签入")
    labels = await page.locator("#status-card button, #disp-form label, #wo-form label").all_inner_texts()
    assert not [x for x in labels if re.search(r"[A-Za-z]", x)], labels
    await context.close()


async def test_people_see_names_not_internal_ids(browser: Browser, served: tuple[Desk, str]) -> None:
    """The pop's IVR path by the nodes' names (lookups and branches left out), the queue's name, the
    ACD's own not-ready reason by its name: no `who → outage_check`, no `fault`, no `rona`."""
    desk, base = served
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    await sign_in(page, base, "/agent", "1001")
    bridge = desk.app[BRIDGE_KEY]
    steps = [("who", "lookup", None), ("outage_check", "lookup", None), ("outage_branch", "branch", None),
             ("language", "menu", {"zh": "语言选择", "en": "Language"}),
             ("main", "menu", {"zh": "主菜单", "en": "Main menu"}),
             ("fault_menu", "menu", {"zh": "故障报修菜单", "en": "Fault menu"}),
             ("to_fault", "queue", {"zh": "转故障报修", "en": "To fault reports"})]
    for node, kind, title in steps:
        data: dict[str, Any] = {"node": node, "node_kind": kind, **({"title": title} if title else {})}
        bridge.on_event(Event(Kind.IVR_NODE, ts=0.0, call_id="c1", data=data))
    for ev in [Event(Kind.ACD_ENQUEUE, ts=0.0, call_id="c1", queue="fault", tier="normal",
                     data={"caller": "13900000001"}),
               Event(Kind.ACD_OFFER, ts=0.0, call_id="c1", agent_id="1001", queue="fault", tier="normal",
                     data={"wait_s": 3})]:
        bridge.on_event(ev)
    await expect(page.locator("#pop-ivr")).to_have_text("Language → Main menu → Fault menu → To fault reports")
    await expect(page.locator("#pop-queue")).to_have_text("Fault reports")
    await expect(page.locator("#pop-tier")).to_have_text("Normal")
    await expect(page.locator("#pop-history li")).to_have_text("no recent contacts")  # empty says so
    desk.hub.publish_state("1001", {"agent_id": "1001", "state": "not_ready", "reason": "rona"})
    await expect(page.locator("#state")).to_have_text("Not ready (Missed a call)")
    await page.select_option("#ui-lang", "zh")
    await expect(page.locator("#pop-ivr")).to_have_text("语言选择 → 主菜单 → 故障报修菜单 → 转故障报修")
    await expect(page.locator("#state")).to_have_text("未就绪 (未接来电)")
    await page.close()


async def test_the_wallboard_names_agents_times_their_state_and_says_when_a_section_is_empty(
        browser: Browser, served: tuple[Desk, str]) -> None:
    desk, base = served
    desk.wallboard.agents = {"logged_out": 3}
    page = await browser.new_page(viewport={"width": 1366, "height": 900})
    await sign_in(page, base, "/wallboard", "2001")
    # nobody logged in, nothing overdue, no alerts: each section says so
    await expect(page.locator("#c-agents")).to_have_text("no agent logged in")
    await expect(page.locator("#overdue")).to_have_text("no overdue work orders")
    await expect(page.locator("#alerts")).to_have_text("no alerts")
    await expect(page.locator("#waiting-calls")).to_have_text("nobody waiting")
    await expect(page.locator("#c-queues svg")).to_contain_text("Fault reports")  # queue names, not ids
    await expect(page.locator("#agents tr[data-agent='1001'] td").nth(1)).to_have_text("张三")
    desk.hub.publish_state("1001", {"agent_id": "1001", "state": "not_ready", "reason": "rona"})
    row = page.locator("#agents tr[data-agent='1001'] td")
    await expect(row.nth(2)).to_have_text("Not ready")
    await expect(row.nth(4)).to_have_text("Missed a call")
    await expect(row.nth(3)).to_have_text(re.compile(r"^[1-9]\d*s$"), timeout=5_000)  # the time in state ticks
    await expect(row.nth(1)).to_have_text("张三")  # the push did not lose the name
    await page.close()


async def test_a_supervisor_who_is_not_an_acd_agent_gets_no_agent_controls(browser: Browser,
                                                                          served: tuple[Desk, str]) -> None:
    _desk, base = served
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    await sign_in(page, base, "/agent", "9001")  # the admin: not one of the ACD's agents
    await expect(page.locator("#not-agent")).to_be_visible()
    await expect(page.locator("#status-card")).to_be_hidden()
    await expect(page.locator("#call-card")).to_be_hidden()
    await expect(page.locator("#wo-form")).to_be_visible()  # the forms stay
    await page.close()
    page = await browser.new_page(viewport={"width": 1366, "height": 768})
    await sign_in(page, base, "/agent", "1001")
    await expect(page.locator("#status-card")).to_be_visible()
    await expect(page.locator("#not-agent")).to_be_hidden()
    await page.close()
