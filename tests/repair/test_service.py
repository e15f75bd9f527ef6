"""Repair orders end to end on the real schema (SQLite) and a fake clock: dispatch to the area's crew with
an apology SMS to each customer who reported the fault, the watch's reminders and escalations as events,
restoration closing the outage and telling its customers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.calendar import load_calendar
from ctiserver.clock import FakeClock
from ctiserver.customers.data import load_sample_data
from ctiserver.events import Event, Kind
from ctiserver.outages.model import OutageIn, Scope, load_outages_config
from ctiserver.outages.notices import restoration_notices
from ctiserver.outages.service import OutageService
from ctiserver.outages.store import OutageStore
from ctiserver.outbound.model import load_outbound_config
from ctiserver.outbound.store import OutboundStore
from ctiserver.repair.customers import apology, restored
from ctiserver.repair.model import load_crews_config
from ctiserver.repair.service import NoCrew, RepairService
from ctiserver.repair.store import RepairStore
from ctiserver.sms.engine import SendRules
from ctiserver.sms.kannel import KannelGateway
from ctiserver.sms.model import load_sms_config
from ctiserver.sms.service import SmsService
from ctiserver.sms.store import SmsStore
from ctiserver.store.engine import make_engine, migrate
from ctiserver.workorders.deadlines import load_workorder_table

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
CAL = load_calendar(CONFIG)
NOW = CAL.at(__import__("datetime").date(2026, 12, 2), 600)
MIN = 60.0


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cti.db'}"
    await migrate(url)
    eng = make_engine(url)
    await load_sample_data(eng, CONFIG, NOW)
    yield eng
    await eng.dispose()


async def test_dispatch_alerts_and_restoration_with_the_customers_told(engine: AsyncEngine) -> None:
    clock = FakeClock(NOW)
    events: list[Event] = []
    sms_cfg = load_sms_config(CONFIG, CAL)
    sms = SmsService(sms_cfg, SmsStore(engine), KannelGateway(sms_cfg.gateway), clock,
                     SendRules.of(sms_cfg, load_outbound_config(CONFIG, CAL)))
    outage_cfg = load_outages_config(CONFIG, CAL)
    outages = OutageService(OutageStore(engine), outage_cfg, clock,
                            restoration=restoration_notices(sms, OutboundStore(engine), outage_cfg, clock.now))
    crews = load_crews_config(CONFIG, CAL)
    table = load_workorder_table(CONFIG, CAL).crews
    svc = RepairService(RepairStore(engine), crews, table, clock, events.append,
                        on_dispatch=apology(sms, outages, crews, lambda o: o.dispatched_ts + 90 * MIN),
                        on_restore=restored(outages))
    o = (await outages.add(OutageIn(kind="fault", cause="10千伏线路故障", scope=Scope(areas=["江北区"]),
                                    start_ts=NOW - 600, expected_restore_ts=NOW + 4 * 3600), "9001")).outage
    await outages.store.attach_report(o.id, NOW, call_id="c1", account="9100000016", number="13800000016")
    await outages.store.attach_report(o.id, NOW, call_id="c2", account="9100000017", number="13800000017")

    order, token = await svc.dispatch("江北区", outage_id=o.id, user="9001")
    assert (order.crew, order.area_class) == ("CX1", "suburb") and len(token) >= 16
    apologies = await SmsStore(engine).listing(ref=f"repair:{order.id}")
    assert sorted(m["number"] for m in apologies) == ["13800000016", "13800000017"]
    assert all("城西抢修一班" in m["text"] and "13700000002" in m["text"] for m in apologies)
    assert any("郭红" in m["text"] for m in apologies)

    clock.jump(3 * MIN)
    await svc.check()
    await svc.act(order.id, "ack", user="CX1")
    clock.set(NOW + 75 * MIN)
    await svc.check()
    clock.set(NOW + 90 * MIN + 1)
    await svc.check()
    await svc.check()
    alerts = [(e.data["step"], e.data["level"], e.data["to"]) for e in events if e.kind == Kind.REPAIR_ALERT]
    assert alerts == [("acknowledge", "reminder", "CX1"), ("arrive", "reminder", "CX1"),
                      ("arrive", "escalation", "值班长")]
    await svc.act(order.id, "arrive", user="CX1")
    clock.jump(10 * MIN)
    await svc.act(order.id, "report", cause="电缆头击穿", location="江北路3号环网柜", expected_ts=clock.now() + 3600)
    clock.jump(50 * MIN)
    await svc.act(order.id, "restore")
    steps = [(e.data["step"], e.data.get("on_time")) for e in events if e.kind == Kind.REPAIR]
    assert steps == [("dispatch", None), ("ack", None), ("arrive", False), ("report", True), ("restore", None)]
    closed = await outages.store.get(o.id)
    assert closed.status == "closed" and closed.end_ts == clock.now()
    told = await SmsStore(engine).listing(ref=f"outage:{o.id}")
    restored_to = sorted(m["number"] for m in told if m["kind"] == "restored")
    assert restored_to == [f"138000000{i}" for i in (16, 17, 18, 19, 20, 29)]  # everyone in 江北区, once
    called = await OutboundStore(engine).numbers_in(f"restored-{o.id}")  # the important one: 罗娟's hospital
    assert sorted(called) == ["13800000020"]
    with pytest.raises(NoCrew):
        await svc.dispatch("火星区")
