"""The shift handover in headless Chromium on the server as production builds it: the outgoing leader sees
the open work order, outage and callback the store holds, is warned before logging out, hands over with a
note; the incoming leader finds it, acknowledges it (a `wfm.handover` event), and it is searchable and
exportable as text."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import async_playwright, expect
from sqlalchemy import insert, select

from ctiserver.callbacks.store import CallbackStore
from ctiserver.events import Kind
from ctiserver.outages.store import outage_records
from ctiserver.store.schema import events
from ctiserver.web.app import DESKTOP_KEY
from ctiserver.web.tables import work_orders
from ctiserver.wfm.config import load_wfm_config, roster_folder
from ctiserver.wfm.roster import WEEK_SLOTS, Roster, to_doc, variant_for
from ctiserver.wfm.shifts import Assignment
from tests.production import PASSWORD, edit_yaml, production_server

CHROMIUM = "/usr/bin/chromium"
OUT, IN = "1004", "1007"  # acd.yaml's shift leaders (the supervisor skill)


def any_half_hour(cfg_dir: Path) -> None:
    """A 4-hour pattern starting on every half hour, so the test can put a shift change near any `now`."""
    def change(data: dict[str, Any]) -> None:
        data["roster"]["patterns"]["probe"] = {
            "length_h": 4, "start_times": [f"{h:02d}:{m:02d}" for h in range(24) for m in (0, 30)]}
    edit_yaml(cfg_dir / "wfm.yaml", change)


def write_roster(cfg_dir: Path, now: float) -> float:
    """OUT on a probe shift from the half hour an hour before now (ends 2.5-3 h from now), IN from two hours
    after OUT's start; returns the shift change (OUT's end)."""
    cfg = load_wfm_config(cfg_dir)
    cal = cfg.calendar
    local = cal.local(now)
    first = local.replace(minute=(local.minute // 30) * 30, second=0, microsecond=0) - dt.timedelta(hours=1)
    second = first + dt.timedelta(hours=2)
    from ctiserver.acd.config import load_acd_config

    acd = load_acd_config(cfg_dir)
    agents = cfg.roster.roster_agents([(a.id, a.name, list(a.skills)) for a in acd.agents])
    by_week: dict[dt.date, list[Assignment]] = {}
    for agent, start in ((OUT, first), (IN, second)):
        week = start.date() - dt.timedelta(days=start.weekday())
        by_week.setdefault(week, []).append(
            Assignment(agent, start.weekday(), variant_for(cfg.roster, "probe", f"{start:%H:%M}", None)))
    folder = roster_folder(cfg_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for week, shifts in by_week.items():
        doc = to_doc(Roster(week, shifts, {"billing": [0.0] * WEEK_SLOTS}, "OPTIMAL", 0.0, 0.0), agents)
        (folder / f"roster-{week.isoformat()}.json").write_text(json.dumps(doc), encoding="utf-8")
    return cal.at(first.date(), first.hour * 60 + first.minute) + 4 * 3600


async def seed(engine: Any, now: float) -> tuple[int, int, int]:
    """An open work order due in an hour, a fault outage under way, a pending callback."""
    async with engine.begin() as conn:
        wo = (await conn.execute(insert(work_orders).values(
            created_ts=now - 600, updated_ts=now - 600, created_by="1001", incoming_number="13800000009",
            call_time=now - 600, category="complaint", customer_name="王芳", content="电费异常投诉",
            status="dispatched", due_ts=now + 3600, reopen_count=0, alerted="")
            .returning(work_orders.c.id))).scalar_one()
        outage = (await conn.execute(insert(outage_records).values(
            kind="fault", cause="10kV 线路跳闸", scope={"areas": ["north"]}, start_ts=now - 1200,
            expected_restore_ts=now + 7200, status="open", created_by="3001", created_ts=now - 1200,
            updated_ts=now - 1200).returning(outage_records.c.id))).scalar_one()
    cb = await CallbackStore(engine).add(origin_call="call-x", number="13900000001", skill="billing", tier="vip",
                                         reason="abandon", customer=None, status="pending", now=now,
                                         due_ts=now + 1800)
    assert cb is not None
    return int(wo), int(outage), cb


async def sign_in(page: Any, url: str, agent_no: str) -> None:
    await page.goto(url + "/handover")
    await expect(page.locator("#login-box")).to_be_visible()
    await page.fill("#agent_no", agent_no)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#page")).to_be_visible()


@pytest.mark.browser
async def test_handover_from_outgoing_to_incoming_leader(tmp_path: Path) -> None:
    async with production_server(tmp_path, edit=any_half_hour) as prod:
        for user in (OUT, IN):
            await prod.add_user(user, "supervisor")
        await prod.add_user("1005", "agent")
        cfg_dir = tmp_path / "config"
        now = prod.server.clock.now()
        change = write_roster(cfg_dir, now)
        engine = prod.server.http_app[DESKTOP_KEY].engine
        wo, outage, cb = await seed(engine, now)
        async with aiohttp.ClientSession() as s:  # agents may not read handovers
            token = await prod.login(s, "1005")
            async with s.get(f"{prod.url}/api/wfm/handover/draft",
                             headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 403
        errors: list[str] = []
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            out_page = await (await browser.new_context()).new_page()
            in_page = await (await browser.new_context()).new_page()
            for p in (out_page, in_page):
                p.on("pageerror", lambda exc: errors.append(str(exc)))
                p.on("console", lambda msg: errors.append(msg.text)
                     if "Content Security Policy" in msg.text else None)
            # the outgoing leader: the draft holds what the store holds
            await sign_in(out_page, prod.url, OUT)
            await expect(out_page.locator(f"#draft-order-{wo}")).to_contain_text("电费异常投诉")
            await expect(out_page.locator(f"#draft-outage-{outage}")).to_contain_text("north")
            await expect(out_page.locator(f"#draft-callback-{cb}")).to_contain_text("13900000001")
            await expect(out_page.locator("#draft-head")).to_contain_text(IN)
            # the system's state: this server's Asterisk link is refused (tests/production.py)
            await expect(out_page.locator("#draft-system-Asterisk-pbx1")).to_contain_text("DOWN")
            # the rule: not before the incoming leader has logged in
            await expect(out_page.locator("#logout-warning")).to_contain_text("has not logged in")
            await out_page.fill("#note", "IVR 2号线杂音，已报修\nchase order first")
            async with out_page.expect_response(lambda r: r.url.endswith("/api/wfm/handovers")
                                                and r.request.method == "POST") as answer:
                await out_page.click("#hand-over")
            saved = await (await answer.value).json()
            assert (await answer.value).status == 201
            hid = saved["id"]
            assert saved["content"]["boundary"]["at"] == change and saved["incoming"] == [IN]
            await expect(out_page.locator(f"#handover-{hid}")).to_contain_text("1004")
            await expect(out_page.locator("#ack")).to_be_hidden()  # not for its author
            await expect(out_page.locator("#one-note")).to_contain_text("IVR 2号线杂音")
            # the incoming leader finds it by a word of the note and acknowledges it
            await sign_in(in_page, prod.url, IN)
            await in_page.fill("#q", "杂音")
            await in_page.click("#search")
            await in_page.click(f"#handover-{hid} button")
            await expect(in_page.locator(f"#one-order-{wo}")).to_be_visible()
            async with in_page.expect_response(lambda r: r.url.endswith(f"/api/wfm/handovers/{hid}/ack")) as ack:
                await in_page.click("#ack")
            assert (await ack.value).status == 200
            await expect(in_page.locator(f"#handover-{hid}")).to_contain_text(IN)
            await expect(in_page.locator("#ack")).to_be_hidden()
            await browser.close()
        assert errors == []
        async with aiohttp.ClientSession() as s:
            token = await prod.login(s, OUT)
            auth = {"Authorization": f"Bearer {token}"}
            async with s.get(f"{prod.url}/api/wfm/handovers/{hid}/text", headers=auth) as r:
                text = await r.text()
                assert r.status == 200 and "IVR 2号线杂音" in text and "电费异常投诉" in text
                assert f"Acknowledged: {IN} at" in text
            async with s.get(f"{prod.url}/api/wfm/handovers?q=nothing-like-this", headers=auth) as r:
                assert await r.json() == []
            async with s.post(f"{prod.url}/api/wfm/handovers/{hid}/ack", headers=auth, json={}) as r:
                assert r.status == 409  # its author; and it is taken already
            # the incoming leader is signed in and took the handover: the outgoing one may log out
            async with s.get(f"{prod.url}/api/wfm/handover/logout-check", headers=auth) as r:
                assert (await r.json())["warning"] is None
        # the acknowledgement is an event of the log (the store's writer flushes every 50 ms)
        for _ in range(200):
            async with prod.server.store.engine.connect() as conn:
                rows = (await conn.execute(select(events.c.agent_id, events.c.data)
                                           .where(events.c.kind == Kind.WFM_HANDOVER))).all()
            if len(rows) == 2:
                break
            await asyncio.sleep(0.05)
        assert sorted((aid, d["action"]) for aid, d in rows) == [(OUT, "handed"), (IN, "acknowledged")]
