"""Arrears campaigns with an SMS channel, through a real Kannel (bearerbox + smsbox, fakesmsc as the SMSC):
an SMS-only campaign messages each contact once with the reminder's figures (late fee to the day) and calls
nobody; a campaign with both channels is messaged and dialled; a kind without SMS cannot ask for it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import ValidationError

from ctiserver.calendar import load_calendar
from ctiserver.clock import FakeClock
from ctiserver.outbound.model import CampaignSpec, ContactIn, TimeRange, load_outbound_config
from ctiserver.outbound.store import OutboundStore
from ctiserver.sms.campaigns import CampaignSms
from ctiserver.sms.engine import SendRules, State
from ctiserver.sms.http import add_sms_routes
from ctiserver.sms.kannel import KannelGateway
from ctiserver.sms.model import load_sms_config
from ctiserver.sms.service import SmsService
from ctiserver.sms.store import SmsStore
from ctiserver.store.engine import make_engine, migrate
from ctiserver.web.errors import json_errors
from tests.sms.kannel_rig import PASSWORD, USER, KannelRig

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
CAL = load_calendar(CONFIG)
NOW = CAL.at(dt.date(2026, 12, 2), 600)
ARREARS = {"billing_month": "2026年10月", "arrears": "200.00", "due_date": "2026-11-22"}
pytestmark = pytest.mark.kannel


def spec(name: str, channels: list[str]) -> CampaignSpec:
    return CampaignSpec.model_validate({"name": name, "kind": "arrears_reminder", "channels": channels,
                                        "windows": ["00:00-24:00"]})


def test_a_kind_without_sms_cannot_ask_for_it() -> None:
    with pytest.raises(ValidationError, match="has no SMS"):
        CampaignSpec.model_validate({"name": "s", "kind": "survey", "channels": ["sms"]})
    with pytest.raises(ValidationError, match="each channel once"):
        spec("x", ["sms", "sms"])
    assert CampaignSpec.model_validate({"name": "p", "kind": "survey"}).channels == ["phone"]


async def test_arrears_reminders_by_sms_through_kannel(tmp_path: Path) -> None:
    rig = KannelRig(tmp_path / "kannel")
    base = load_sms_config(CONFIG, CAL)
    gateway = base.gateway.model_copy(update={
        "sendsms_url": rig.sendsms_url, "username": USER, "password": PASSWORD, "password_env": None,
        "callback_base": f"http://127.0.0.1:{rig.ports.http}"})
    cfg = base.model_copy(update={"gateway": gateway, "poll_s": 0.5})
    url = f"sqlite+aiosqlite:///{tmp_path / 'cti.db'}"
    await migrate(url)
    engine = make_engine(url)
    clock = FakeClock(NOW)
    sms = SmsService(cfg, SmsStore(engine), KannelGateway(cfg.gateway), clock,
                     SendRules(calendar=cfg.calendar, windows=(TimeRange(0, 1440),), days="any"))
    store = OutboundStore(engine)
    out_cfg = load_outbound_config(CONFIG, CAL)
    sender = CampaignSms(sms, store, out_cfg, clock, poll_s=0.2)
    await store.import_contacts(spec("arrears-sms", ["sms"]), [
        ContactIn("13800000041", name="赵敏", account="9100000041", variables=ARREARS),
        ContactIn("13800000042", name="钱进", account="9100000042", variables=ARREARS)], NOW)
    await store.import_contacts(spec("arrears-both", ["phone", "sms"]), [
        ContactIn("13800000043", name="孙丽", account="9100000043", variables=ARREARS)], NOW)
    for name in ("arrears-sms", "arrears-both"):
        await store.change_state(name, "start", NOW)

    async def anyone(request: web.Request, roles: frozenset[str]) -> None:
        return None

    app = web.Application(middlewares=[json_errors])
    add_sms_routes(app, lambda: sms, anyone)  # Kannel's delivery reports come here
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", rig.ports.http).start()
    try:
        async with rig, sms.running():
            assert await sender.round() == 3
            assert await sender.round() == 0  # one message per contact, ever

            async def delivered() -> bool:
                rows = await SmsStore(engine).listing(state=State.DELIVERED)
                return len(rows) == 3
            await sms.wait_for(delivered, timeout=60)
            got = {m.to: m.text for m in rig.received()}
    finally:
        await runner.cleanup()
        await engine.dispose()
    assert sorted(got) == ["13800000041", "13800000042", "13800000043"]
    text = got["13800000041"]
    # 10 days past the due date at 1‰ a day: 2.00 yuan, 202.00 in all
    assert text.startswith("【国网95598】赵敏您好，户号9100000041的2026年10月电费欠费200.00元，"
                           "违约金2.00元，合计202.00元")
    engine = make_engine(url)
    try:
        store = OutboundStore(engine)
        snap = await store.snapshot(NOW + 60)
        assert [p.number for p in snap.contacts] == ["13800000043"]  # only the campaign with a phone channel
        status = await store.status("arrears-sms")
        assert status["pending"] == 0 and status["done"] == 2
    finally:
        await engine.dispose()
