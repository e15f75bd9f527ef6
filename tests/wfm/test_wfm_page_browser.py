"""The /wfm page in headless Chromium on the server as production builds it: a supervisor sees the
week's roster, an adjustment that breaks a rule is refused with the rule, a good one is saved, and
today's adherence is listed."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import async_playwright, expect

from ctiserver.app import settings
from ctiserver.wfm.adherence import planned_day
from ctiserver.wfm.config import load_wfm_config, roster_folder
from ctiserver.wfm.roster import WEEK_SLOTS, Roster, to_doc, variant_for
from ctiserver.wfm.shifts import Assignment, variants
from tests.production import PASSWORD, production_server

CHROMIUM = "/usr/bin/chromium"


def write_roster(cfg_dir: Path, now: float) -> tuple[dt.date, int]:
    """This week's roster: 1002 early 08:00 Monday to Friday; 1001 today on the pattern that covers now."""
    from ctiserver.acd.config import load_acd_config

    cfg = load_wfm_config(cfg_dir)
    local = cfg.calendar.local(now)
    today = local.date()
    week = today - dt.timedelta(days=today.weekday())
    shifts = [Assignment("1002", d, variant_for(cfg.roster, "early", "08:00", "11:30")) for d in range(5)]
    # 1001 today on a shift that has them on the phones now (a minute in, so the two-minute grace is not over)
    on_now = [Assignment("1001", today.weekday(), v) for name, p in cfg.roster.patterns.items()
              for v in variants(name, p)]
    on_now = [a for a in on_now
              if (plan := planned_day([a], week, today, cfg.calendar)[0]).activity(now) == "phones"
              and plan.activity(now + 300) == "phones"]
    assert on_now, f"no sample shift covers {local:%H:%M}"
    shifts.append(on_now[0])
    acd = load_acd_config(cfg_dir)
    agents = cfg.roster.roster_agents([(a.id, a.name, list(a.skills)) for a in acd.agents])
    doc = to_doc(Roster(week, shifts, {"billing": [0.0] * WEEK_SLOTS}, "OPTIMAL", 0.0, 0.0), agents)
    folder = roster_folder(cfg_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"roster-{week.isoformat()}.json").write_text(json.dumps(doc), encoding="utf-8")
    return week, today.weekday()


@pytest.mark.browser
async def test_supervisor_sees_and_adjusts_the_roster(tmp_path: Path) -> None:
    async with production_server(tmp_path) as prod:
        await prod.add_user("2001", "supervisor")
        await prod.add_user("1005", "agent")
        cfg_dir = tmp_path / "config"
        assert settings.load_server(cfg_dir)
        week, _ = write_roster(cfg_dir, prod.server.clock.now())
        # agents may not read it
        async with aiohttp.ClientSession() as s:
            token = await prod.login(s, "1005")
            async with s.get(f"{prod.url}/api/wfm/roster?week={week}",
                             headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 403
        errors: list[str] = []
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
            await page.goto(prod.url + "/wfm")
            await expect(page.locator("#login-box")).to_be_visible()
            await page.fill("#agent_no", "2001")
            await page.fill("#password", PASSWORD)
            await page.click("#login-form button[type=submit]")
            await expect(page.locator("#page")).to_be_visible()
            await expect(page.locator("#shift-1002-0")).to_have_value("early|08:00|11:30")
            await expect(page.locator("#shift-1002-5")).to_have_value("")
            # a sixth day for 1002 breaks max_days_per_week: refused, the grid shows what is saved
            async with page.expect_response(lambda r: r.url.endswith("/api/wfm/roster/shift")) as answer:
                await page.select_option("#shift-1002-5", "early|08:00|11:30")
            assert (await answer.value).status == 409
            await expect(page.locator("#edit-err")).to_contain_text("roster rule")
            await expect(page.locator("#shift-1002-5")).to_have_value("")
            # Tuesday off for 1002: saved
            async with page.expect_response(lambda r: r.url.endswith("/api/wfm/roster/shift")) as answer:
                await page.select_option("#shift-1002-1", "")
            assert (await answer.value).status == 200
            await expect(page.locator("#status")).to_have_text(re.compile("^(saved|已保存)$"))
            saved = json.loads((roster_folder(cfg_dir) / f"roster-{week}.json").read_text(encoding="utf-8"))
            assert sorted(a["day"] for a in saved["assignments"] if a["agent"] == "1002") == [0, 2, 3, 4]
            # today's adherence: 1001 is rostered now and has not logged in
            await expect(page.locator("#adh-1001")).to_be_visible()
            assert "logged_out" in await page.locator("#adh-1001").inner_text()
            # the wallboard's adherence card: 1001 is out of adherence now (rostered, not logged in)
            await page.goto(prod.url + "/wallboard")
            await expect(page.locator("#adh-out li[data-agent='1001']")).to_be_visible()
            await expect(page.locator("#adh-teams")).to_contain_text("A")
            await browser.close()
        assert errors == []


async def test_an_adjustment_is_checked_across_the_week_boundary(tmp_path: Path) -> None:
    """Last week's roster has 1003 on Sunday's late shift (ends 24:00): a Monday 07:00 shift this week
    leaves 7 h of rest and is refused; Monday 12:00 is saved."""
    from ctiserver.acd.config import load_acd_config

    async with production_server(tmp_path) as prod:
        await prod.add_user("2001", "supervisor")
        cfg_dir = tmp_path / "config"
        week, _ = write_roster(cfg_dir, prod.server.clock.now())
        cfg = load_wfm_config(cfg_dir)
        acd = load_acd_config(cfg_dir)
        agents = cfg.roster.roster_agents([(a.id, a.name, list(a.skills)) for a in acd.agents])
        prev = week - dt.timedelta(days=7)
        doc = to_doc(Roster(prev, [Assignment("1003", 6, variant_for(cfg.roster, "late", "15:30", "19:30"))],
                            {"billing": [0.0] * WEEK_SLOTS}, "OPTIMAL", 0.0, 0.0), agents)
        (roster_folder(cfg_dir) / f"roster-{prev.isoformat()}.json").write_text(json.dumps(doc), encoding="utf-8")
        async with aiohttp.ClientSession() as s:
            token = await prod.login(s, "2001")
            auth = {"Authorization": f"Bearer {token}"}
            shift = {"week": str(week), "agent": "1003", "day": 0, "pattern": "early", "start": "07:00",
                     "meal": "11:00"}
            async with s.post(f"{prod.url}/api/wfm/roster/shift", json=shift, headers=auth) as r:
                body = await r.json()
                assert r.status == 409 and body["error"]["id"] == "rule_broken", body
                assert any("rest between last Sunday and Monday" in d for d in body["error"]["details"]), body
            async with s.post(f"{prod.url}/api/wfm/roster/shift", headers=auth,
                              json={**shift, "pattern": "late", "start": "12:00", "meal": "16:00"}) as r:
                assert r.status == 200, await r.text()
