"""A new repair order reaches its crew by SMS through a real Kannel (bearerbox + smsbox, fakesmsc as the SMSC):
the message arrives with the order in Chinese and the link to the order's page, at 3 a.m. (a crew is on duty:
the customers' sending windows do not hold it back), and the link works: the page opens and the crew's
accept on it acknowledges the order. An order nobody accepts gets the watch's reminder to the crew and then its
escalation to the shift leader, by SMS."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from ctiserver.calendar import load_calendar
from ctiserver.clock import FakeClock
from ctiserver.events import Event
from ctiserver.outbound.model import load_outbound_config
from ctiserver.repair.crewcall import CrewNotifier
from ctiserver.repair.engine import ACKNOWLEDGED
from ctiserver.repair.http import add_repair_routes
from ctiserver.repair.model import load_crews_config
from ctiserver.repair.service import RepairService
from ctiserver.repair.store import RepairStore
from ctiserver.sms.engine import SendRules, State
from ctiserver.sms.http import add_sms_routes
from ctiserver.sms.kannel import KannelGateway
from ctiserver.sms.model import load_sms_config
from ctiserver.sms.service import SmsService
from ctiserver.sms.store import SmsStore
from ctiserver.store.engine import make_engine, migrate
from ctiserver.web.errors import json_errors
from ctiserver.workorders.deadlines import load_workorder_table
from tests.sms.kannel_rig import PASSWORD, USER, KannelRig

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
CAL = load_calendar(CONFIG)
THREE_AM = CAL.at(dt.date(2026, 12, 2), 180)  # 03:00 local: outside the customers' SMS windows
pytestmark = pytest.mark.kannel


async def test_the_crew_gets_the_order_by_sms_with_a_working_link(tmp_path: Path) -> None:
    rig = KannelRig(tmp_path / "kannel")
    base = load_sms_config(CONFIG, CAL)
    gateway = base.gateway.model_copy(update={
        "sendsms_url": rig.sendsms_url, "username": USER, "password": PASSWORD, "password_env": None,
        "callback_base": f"http://127.0.0.1:{rig.ports.http}"})
    sms_cfg = base.model_copy(update={"gateway": gateway, "poll_s": 0.5})
    url = f"sqlite+aiosqlite:///{tmp_path / 'cti.db'}"
    await migrate(url)
    engine = make_engine(url)
    clock = FakeClock(THREE_AM)
    events: list[Event] = []
    sms = SmsService(sms_cfg, SmsStore(engine), KannelGateway(sms_cfg.gateway), clock,
                     SendRules.of(sms_cfg, load_outbound_config(CONFIG, CAL)))  # the real windows: 08:00-21:00
    crews = load_crews_config(CONFIG, CAL)
    crews = crews.model_copy(update={"page_base": f"http://127.0.0.1:{rig.ports.http}",
                                     "call": crews.call.model_copy(update={"enabled": False})})
    table = load_workorder_table(CONFIG, CAL).crews
    async def crew_dispatched(order: Any, row: dict[str, Any]) -> None:
        await notifier.on_dispatch(order, row)  # built below: it acts on the service it is a hook of

    async def crew_alerted(alert: Any, order: Any, who: str) -> None:
        await notifier.on_alert(alert, order, who)

    repair = RepairService(RepairStore(engine), crews, table, clock, events.append, on_dispatch=crew_dispatched,
                           on_alert=crew_alerted)
    notifier = CrewNotifier(repair, crews, table, clock, events.append, sms=sms, ami=None, prompt=None,
                            channel="Local/{number}@outbound-dest", caller_id="95598")

    async def anyone(request: web.Request, roles: frozenset[str]) -> None:
        return None

    app = web.Application(middlewares=[json_errors])
    add_sms_routes(app, lambda: sms, anyone)
    add_repair_routes(app, lambda: repair, anyone)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", rig.ports.http).start()
    try:
        async with rig, sms.running():
            order, token = await repair.dispatch("城东区", user="9001")
            row = (await SmsStore(engine).listing(ref=f"crew:{order.id}"))[0]
            assert row["number"] == "13700000001"

            async def delivered() -> bool:
                got = await SmsStore(engine).get(row["id"])
                return got is not None and got.msg.state == State.DELIVERED
            await sms.wait_for(delivered, timeout=60)

            texts = [m.text for m in rig.received() if m.to == "13700000001"]
            assert len(texts) == 1, texts
            text = texts[0]
            assert text.startswith(f"【抢修工单{order.id}】城东抢修一班：城东区停电") and "12月2日03:45前到达" in text
            link = re.search(r"http://\S+", text)
            assert link is not None and link.group(0) == f"http://127.0.0.1:{rig.ports.http}/crew/{token}"

            async with aiohttp.ClientSession() as http:
                async with http.get(link.group(0)) as page:
                    assert page.status == 200 and "text/html" in page.headers["Content-Type"]
                async with http.post(link.group(0).replace("/crew/", "/api/crew/") + "/ack") as resp:
                    assert resp.status == 200, await resp.text()
                    assert (await resp.json())["stage"] == ACKNOWLEDGED
            assert (await repair.store.get(order.id))[0].stage == ACKNOWLEDGED

            # a second order nobody accepts: the reminder to the crew, then the escalation to the shift leader
            late, _ = await repair.dispatch("城西区", user="9001")
            clock.jump(3 * 60)
            await repair.check()
            clock.jump(2 * 60 + 1)
            await repair.check()

            async def alerts_delivered() -> bool:
                rows = [m for m in await SmsStore(engine).listing(ref=f"crew:{late.id}") if m["kind"] == "crew_alert"]
                return len(rows) == 2 and all(m["state"] == State.DELIVERED for m in rows)
            await sms.wait_for(alerts_delivered, timeout=60)
            alerts = [m for m in rig.received() if m.text.startswith(("【抢修提醒", "【抢修超期"))]
            assert [(m.to, m.text.split("】")[0]) for m in alerts] == [
                ("13700000002", "【抢修提醒"), ("13700000099", "【抢修超期升级")]
            assert "接单期限12月2日03:05" in alerts[1].text and "/crew/" in alerts[1].text
    finally:
        await runner.cleanup()
        await engine.dispose()
        await asyncio.sleep(0)
