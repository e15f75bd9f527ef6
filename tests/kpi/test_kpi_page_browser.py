"""The /reports page in a real browser (Debian's chromium via Playwright), on the server as production builds it.

Charts are drawn from the API; the page signs in like the desktop pages; its default date is the
hotline's today (the server's clock and time zone), whatever time zone the browser is in.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Page, async_playwright, expect

from ctiserver.events import Event, Kind
from tests.production import PASSWORD, Running, production_server

from .conftest import load
from .test_kpi_golden import golden_day

CHROMIUM = "/usr/bin/chromium"
HOTLINE_TZ = ZoneInfo("Asia/Shanghai")  # config/kpi.yaml's


async def sign_in(page: Page, prod: Running, agent_no: str = "2001") -> None:
    await page.goto(prod.url + "/reports")
    await expect(page.locator("#login-box")).to_be_visible()  # opened cold: a sign-in form, not an error
    assert await page.locator("#report").is_hidden()
    await page.fill("#agent_no", agent_no)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#login-box")).to_be_hidden()
    await expect(page.locator("#status")).not_to_have_text("loading…")  # the first report (today) is in


def answered_call_today(now: float) -> list[Event]:
    """One call answered a moment ago: between the hotline's midnight and now."""
    midnight = dt.datetime.fromtimestamp(now, HOTLINE_TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    t = midnight.timestamp() + (now - midnight.timestamp()) / 2
    return [Event(Kind.CALL_NEW, t, "T1", data={"caller_num": "13800000001", "direction": "inbound"}),
            Event(Kind.ACD_ENQUEUE, t + 1, "T1", queue="billing", tier="normal"),
            Event(Kind.ACD_OFFER, t + 2, "T1", agent_id="1001", queue="billing", tier="normal"),
            Event(Kind.ACD_ANSWER, t + 3, "T1", agent_id="1001", queue="billing", tier="normal",
                  data={"wait_s": 2, "ring_s": 1}),
            Event(Kind.ACD_COMPLETE, t + 4, "T1", agent_id="1001", queue="billing", tier="normal",
                  data={"talk_s": 1, "hold_s": 0})]


@pytest.mark.browser
async def test_reports_page_draws_the_golden_day(tmp_path: Path) -> None:
    async with production_server(tmp_path) as prod:  # the shipped kpi.yaml (20 s short abandons)
        await prod.add_user("2001", "supervisor")
        await load(prod.server.store.engine, golden_day())
        errors: list[str] = []
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None)
            await sign_in(page, prod)
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
            # acd.yaml's name, not "vip"; C2 answered in 5 s, C13's 10 s abandon short under the 20 s default
            assert any(r.startswith("VIP\t") and "100.0%" in r for r in tier_rows)
            # calls that never reached a queue: named so, and no service-level target against them
            [unqueued] = [r.split("\t") for r in tier_rows if r.startswith("not queued")]
            assert unqueued[3] == "–" and not [r for r in tier_rows if "(none)" in r]
            # metrics by their names (kpi.yaml metric_names), no snake_case keys
            shown = " ".join(await page.locator("#totals, #targets").all_inner_texts())
            assert "Average speed of answer (s)" in shown and "Call loss rate" in shown
            assert not re.search(r"\b[a-z]+_[a-z_]+\b", shown), shown
            staffing = await page.locator("#staffing tr").all_inner_texts()
            assert any(r.startswith("09:00") for r in staffing)
            # A bad range shows the server's reason instead of a broken page.
            await page.fill("#to", "2026-11-01")
            await page.click("#load")
            await expect(page.locator("#status")).to_have_class("error")
            assert "after" in await page.locator("#status").inner_text()
            await browser.close()
    assert errors == []  # the CSP (no inline script or style) blocked nothing the page needs


@pytest.mark.browser
async def test_reports_default_to_the_hotlines_today_in_any_browser_time_zone(tmp_path: Path) -> None:
    # Between them these zones are on another date than Shanghai at every hour of the day.
    zones = ("America/Los_Angeles", "Pacific/Pago_Pago", "Pacific/Kiritimati")
    async with production_server(tmp_path) as prod:
        await prod.add_user("2001", "supervisor")
        now = prod.server.clock.now()
        await load(prod.server.store.engine, answered_call_today(now))
        today = dt.datetime.fromtimestamp(now, HOTLINE_TZ).date()
        errors: list[str] = []
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            for zone in zones:
                context = await browser.new_context(timezone_id=zone)
                page = await context.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await sign_in(page, prod)
                await expect(page.locator("#status")).to_contain_text(f"{today.isoformat()}T00:00")
                assert await page.locator("#from").input_value() == today.isoformat(), zone
                assert await page.locator("#to").input_value() == (today + dt.timedelta(days=1)).isoformat()
                totals = await page.locator("#totals tr").all_inner_texts()
                assert "Calls offered\t1" in totals, (zone, totals)
                assert await page.locator("#vol path").count() == 3
                await context.close()
            await browser.close()
        assert errors == []


@pytest.mark.browser
async def test_an_agent_signs_in_to_reports_and_is_told_they_are_for_supervisors(tmp_path: Path) -> None:
    async with production_server(tmp_path) as prod:
        await prod.add_user("1001", "agent")
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page()
            await sign_in(page, prod, "1001")
            await expect(page.locator("#status")).to_have_class("error")
            assert "supervisor" in await page.locator("#status").inner_text()
            await browser.close()


@pytest.mark.browser
async def test_reports_page_shows_qc_scores_by_agent_and_half_hour(tmp_path: Path) -> None:
    from .test_kpi_qc import inspected_day

    async with production_server(tmp_path) as prod:
        await prod.add_user("2001", "supervisor")
        await load(prod.server.store.engine, inspected_day())
        errors: list[str] = []
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await sign_in(page, prod)
            await page.fill("#from", "2026-11-23")
            await page.fill("#to", "2026-11-24")
            await page.click("#load")
            await expect(page.locator("#qc-agents")).to_contain_text("1002")
            agents = await page.locator("#qc-agents tr").all_inner_texts()
            assert agents[1:] == ["1001\t2\t85\t100.0%\t0", "1002\t1\t0\t0.0%\t1"], agents
            halves = await page.locator("#qc-halfhours tr").all_inner_texts()
            assert halves[1:] == ["2026-11-23 10:00\t2\t85\t100.0%\t0", "2026-11-23 10:30\t1\t0\t0.0%\t1"], halves
            totals = await page.locator("#totals").inner_text()
            assert "calls inspected\t3" in totals and "average QC score\t56.7" in totals, totals
            assert "QC pass rate\t66.7%" in totals and "fatal errors\t1" in totals, totals
            await browser.close()
    assert errors == []
