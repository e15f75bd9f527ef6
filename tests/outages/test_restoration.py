"""Power restored (issue 16): a closed outage tells its customers, the important ones also by a call, and a
finished repair order asks for the satisfaction callback of the work orders behind it.

On the sample data 城东区 has 张建国's hospital (important, two phones, 13800000001 and 02188880001) and
four other customers. Closing a fault outage there: a "restored" SMS to each phone, once; a campaign
`restored-<id>` (kind restored) calling the hospital's two phones, which the real sandbox Asterisk then
dials (`outbound-dest`: a number ending in 1 answers and presses 1) with the restoration message spoken."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.ami.client import AmiClient
from ctiserver.calendar import load_calendar
from ctiserver.clock import FakeClock, SystemClock
from ctiserver.customers.data import load_sample_data
from ctiserver.events import Event
from ctiserver.outages.model import OutageIn, Scope, load_outages_config
from ctiserver.outages.notices import restoration_notices
from ctiserver.outages.service import OutageService
from ctiserver.outages.store import OutageClosed, OutageStore
from ctiserver.outbound.model import OutboundConfig, load_outbound_config
from ctiserver.outbound.service import OutboundService
from ctiserver.outbound.store import OutboundStore
from ctiserver.repair.customers import restored, satisfaction
from ctiserver.repair.model import load_crews_config
from ctiserver.repair.service import RepairService, chained
from ctiserver.repair.store import RepairStore
from ctiserver.sms.engine import SendRules
from ctiserver.sms.kannel import KannelGateway
from ctiserver.sms.model import load_sms_config
from ctiserver.sms.service import SmsService
from ctiserver.sms.store import SmsStore
from ctiserver.store.engine import make_engine, migrate
from ctiserver.web.tables import work_orders
from ctiserver.workorders.deadlines import load_workorder_table
from tests.asterisk_fixture import ami_server_config

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
CAL = load_calendar(CONFIG)
NOW = CAL.at(dt.date(2026, 12, 2), 600)
EAST = ["13800000001", "02188880001", "13800000002", "13800000003", "13800000004", "13900000004",
        "13800000005", "13800000026"]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cti.db'}"
    await migrate(url)
    eng = make_engine(url)
    await load_sample_data(eng, CONFIG, NOW)
    yield eng
    await eng.dispose()


def services(engine: AsyncEngine, clock: Any) -> tuple[SmsService, OutageService]:
    sms_cfg = load_sms_config(CONFIG, CAL)
    sms = SmsService(sms_cfg, SmsStore(engine), KannelGateway(sms_cfg.gateway), clock,
                     SendRules.of(sms_cfg, load_outbound_config(CONFIG, CAL)))
    cfg = load_outages_config(CONFIG, CAL)
    return sms, OutageService(OutageStore(engine), cfg, clock,
                              restoration=restoration_notices(sms, OutboundStore(engine), cfg, clock.now))


async def east_outage(outages: OutageService) -> int:
    o = await outages.add(OutageIn(kind="fault", cause="10千伏线路故障", scope=Scope(areas=["城东区"]),
                                   start_ts=NOW - 3600, expected_restore_ts=NOW + 3600), "9001")
    return o.outage.id


async def test_a_closed_outage_tells_everyone_by_sms_and_calls_the_important(engine: AsyncEngine) -> None:
    clock = FakeClock(NOW)
    _, outages = services(engine, clock)
    oid = await east_outage(outages)
    clock.jump(1800)
    saved = await outages.close(oid, "9001")
    told = await SmsStore(engine).listing(ref=f"outage:{oid}")
    restored_sms = [m for m in told if m["kind"] == "restored"]
    assert sorted(m["number"] for m in restored_sms) == sorted(EAST)  # every phone, once
    assert all("城东区已于12月2日10:30恢复供电" in m["text"] for m in restored_sms)
    assert sorted(await OutboundStore(engine).numbers_in(f"restored-{oid}")) == ["02188880001", "13800000001"]
    assert saved.notices == {"sms": len(restored_sms), "phone": 2}
    camp = await OutboundStore(engine).campaign(f"restored-{oid}")
    assert camp.kind == "restored" and camp.state == "running"
    with pytest.raises(OutageClosed):  # closed once, told once
        await outages.close(oid, "9001")
    assert len([m for m in await SmsStore(engine).listing(ref=f"outage:{oid}") if m["kind"] == "restored"]) \
        == len(restored_sms)


async def test_a_finished_repair_order_asks_for_its_work_orders_satisfaction_callbacks(engine: AsyncEngine) -> None:
    clock = FakeClock(NOW)
    _, outages = services(engine, clock)
    oid = await east_outage(outages)
    async with engine.begin() as conn:
        ids = []
        for number, account in (("13800000002", "9100000002"), ("13800000003", "9100000003")):
            res = await conn.execute(insert(work_orders).values(
                created_ts=NOW, updated_ts=NOW, created_by="1001", call_id=f"c-{number}", incoming_number=number,
                call_time=NOW, category="fault_repair", customer_name="", content="停电", customer_account=account,
                anonymous=False, status="dispatched", due_ts=NOW + 86400))
            ids.append(int(res.inserted_primary_key[0]))
    await outages.store.attach_report(oid, NOW, call_id="c-13800000002", account="9100000002",
                                      number="13800000002", workorder_id=ids[0])
    asked: list[dict[str, Any]] = []

    async def request_callback(**kw: Any) -> None:
        asked.append(kw)

    crews = load_crews_config(CONFIG, CAL)
    repair = RepairService(RepairStore(engine), crews, load_workorder_table(CONFIG, CAL).crews, clock,
                           lambda e: None, on_restore=chained(restored(outages), satisfaction(outages,
                                                                                             request_callback)))
    order, _ = await repair.dispatch("城东区", outage_id=oid, workorder_id=ids[1])
    await repair.act(order.id, "arrive")
    await repair.act(order.id, "restore", cause="引线烧断")
    assert sorted((a["workorder_id"], a["number"], a["category"], a["requested"]) for a in asked) == \
        [(ids[0], "13800000002", "fault_repair", True), (ids[1], "13800000003", "fault_repair", True)]
    assert (await outages.store.get(oid)).status == "closed"


@pytest.mark.asterisk
async def test_the_important_customers_restoration_call_on_the_sandbox(asterisk_sandbox: Any,
                                                                      engine: AsyncEngine) -> None:
    clock = SystemClock()
    _, outages = services(engine, clock)
    o = await outages.add(OutageIn(kind="fault", cause="线路故障", scope=Scope(areas=["城东区"]),
                                   start_ts=time.time() - 600), "9001")
    await outages.close(o.outage.id, "9001")
    name = f"restored-{o.outage.id}"
    cfg = OutboundConfig.model_validate({
        "pacing": {"max_concurrent": 4, "calls_per_s": 4, "burst": 2}, "poll_s": 0.2,
        "dial": {"channel": "Local/{number}@outbound-dest", "ring_timeout_s": 6, "max_call_s": 120},
        "templates": {"restored": load_outbound_config(CONFIG, CAL).templates.restored.model_dump()}})
    spoken: list[str] = []

    async def prompt(text: str, lang: str) -> str:
        spoken.append(text)
        return "beep"  # a sound every Asterisk has; the TTS pipeline is tested on its own

    holder: dict[str, OutboundService] = {}
    client = AmiClient(ami_server_config(asterisk_sandbox),
                       on_event=lambda m: holder["svc"].on_ami_event("pbx1", m) if holder else None)
    await client.start()
    await client.wait_connected(15)
    events: list[Event] = []
    svc = OutboundService(cfg, engine, client, "pbx1", clock, events.append, prompt=prompt)
    holder["svc"] = svc
    store = OutboundStore(engine)
    await svc.start()
    try:
        svc.dialer.wake()
        for _ in range(600):
            status = await store.status(name)
            if status["pending"] == 0 and status["live"] == 0:
                break
            await asyncio.sleep(0.2)
    finally:
        await svc.stop()
        await client.close()
    results = await store.results(name)
    assert results["confirmed"] == 2, results  # both phones ending in 1 answered and pressed 1
    assert any(t.startswith("张建国您好，这里是国网95598。城东区已于") and "恢复供电" in t for t in spoken), spoken
