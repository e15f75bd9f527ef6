"""The outage's not-reached list covers both channels: a notice SMS reported undeliverable by every delivery
report until its retries ran out, and a notice call whose attempts ran out; one row per phone, those reached by
neither channel first, and the list over the API (dispatchers only)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import and_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.calendar import load_calendar
from ctiserver.clock import FakeClock
from ctiserver.customers.data import load_sample_data
from ctiserver.outages.http import add_outage_routes
from ctiserver.outages.model import OutageIn, Scope, load_outages_config
from ctiserver.outages.notices import call_notices, sms_notices
from ctiserver.outages.reach import merge, not_reached
from ctiserver.outages.service import OutageService
from ctiserver.outages.store import OutageStore
from ctiserver.outbound.model import load_outbound_config
from ctiserver.outbound.store import OutboundStore
from ctiserver.outbound.tables import campaigns, contacts
from ctiserver.sms.engine import DLR_DELIVERED, DLR_FAILED, SendRules, State
from ctiserver.sms.kannel import Outgoing, SubmitResult
from ctiserver.sms.model import load_sms_config
from ctiserver.sms.service import SmsService
from ctiserver.sms.store import SmsStore
from ctiserver.store.engine import make_engine, migrate
from ctiserver.web.errors import ApiError, json_errors

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
CAL = load_calendar(CONFIG)
NOW = CAL.at(dt.date(2026, 12, 2), 600)
LOST = "13800000006"  # its SMS is reported undeliverable every time


class AcceptingGateway:
    """Kannel taking every message; what became of each is told by the delivery reports the test sends."""

    async def submit(self, msg: Outgoing) -> SubmitResult:
        return SubmitResult("accepted", "0: Accepted for delivery")

    async def aclose(self) -> None:
        return None


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cti.db'}"
    await migrate(url)
    eng = make_engine(url)
    await load_sample_data(eng, CONFIG, NOW)
    yield eng
    await eng.dispose()


def test_merge_puts_the_phones_reached_by_neither_channel_first() -> None:
    calls = [{"number": "2", "account": "a2", "name": "乙", "attempts": 3, "last_outcome": "no_answer",
              "what": "outage_notice"}]
    sms = [{"number": "1", "account": "a1", "kind": "outage_notice", "attempts": 3, "error": "undeliverable"},
           {"number": "3", "account": "a3", "kind": "restored", "attempts": 3, "error": "undeliverable"}]
    rows = merge(calls, sms, reached_by_call={"3"}, reached_by_sms={"2"})
    assert [(r["number"], r["reached"]) for r in rows] == [("1", False), ("2", True), ("3", True)]
    assert rows[1]["failed"] == {"phone:outage_notice": "3 attempt(s), last no_answer"} and rows[1]["name"] == "乙"


async def test_both_channels_on_the_list(engine: AsyncEngine) -> None:
    clock = FakeClock(NOW)
    cfg = load_outages_config(CONFIG, CAL)
    sms_cfg = load_sms_config(CONFIG, CAL)
    sms = SmsService(sms_cfg, SmsStore(engine), AcceptingGateway(), clock,
                     SendRules.of(sms_cfg, load_outbound_config(CONFIG, CAL)))
    store = OutboundStore(engine)
    svc = OutageService(OutageStore(engine), cfg, clock, sms=sms_notices(sms, cfg),
                        call_notices=call_notices(store, cfg, clock.now))
    saved = await svc.add(OutageIn(kind="planned", cause="变电站检修", scope=Scope(areas=["城西区"]),
                                   start_ts=NOW + 2 * 86400), "9001")
    oid = saved.outage.id
    for _ in range(sms_cfg.retry.max_attempts):  # each send accepted, each delivery report: undeliverable
        await sms.round()
        for m in await SmsStore(engine).listing(ref=f"outage:{oid}", state=State.ACCEPTED):
            got = await SmsStore(engine).get(m["id"])
            assert got is not None
            status = DLR_FAILED if m["number"] == LOST else DLR_DELIVERED
            assert await sms.on_dlr(m["id"], got.token, status, "fake")
        clock.jump(max(sms_cfg.retry.delays_s) + 1)
    states = {m["number"]: m["state"] for m in await SmsStore(engine).listing(ref=f"outage:{oid}")}
    assert states[LOST] in (State.FALLBACK, State.FAILED) and states["13800000009"] == State.DELIVERED
    async with engine.begin() as conn:  # the important customer's notice call: attempts ran out
        camp = (await conn.execute(campaigns.select().where(campaigns.c.name == f"outage-{oid}"))).first()
        assert camp is not None
        await conn.execute(update(contacts).where(and_(contacts.c.campaign_id == camp.id,
                                                       contacts.c.number == "13800000009"))
                           .values(status="not_reached", attempts=3, last_outcome="no_answer"))

    rows = await not_reached(oid, SmsStore(engine), store)
    assert [(r["number"], r["reached"], sorted(r["failed"])) for r in rows] == [
        (LOST, False, ["sms:outage_notice"]), ("13800000009", True, ["phone:outage_notice"])]
    assert rows[0]["failed"]["sms:outage_notice"].startswith(f"{sms_cfg.retry.max_attempts} attempt(s), undeliverable")

    async def require(request: web.Request, roles: frozenset[str]) -> object:
        if request.headers.get("X-Role") not in roles:
            raise ApiError(403, "forbidden", "not for you")
        return object()

    app = web.Application(middlewares=[json_errors])
    add_outage_routes(app, lambda: svc, require)
    async with TestClient(TestServer(app)) as client:
        r = await client.get(f"/api/outages/{oid}/not-reached", headers={"X-Role": "dispatcher"})
        assert r.status == 200 and [x["number"] for x in await r.json()] == [LOST, "13800000009"]
        assert (await client.get(f"/api/outages/{oid}/not-reached", headers={"X-Role": "agent"})).status == 403
        assert (await client.get("/api/outages/999/not-reached", headers={"X-Role": "dispatcher"})).status == 404
