"""Outages as live data, on the real schema (SQLite, migrated): the IVR's lookup sees an outage the moment
it is saved, changed or closed; every change is in the audit; a planned one warns under 7 days' notice
and gets its notices (important customers by phone and SMS, the others by SMS); fault calls attach."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.calendar import load_calendar
from ctiserver.clock import FakeClock
from ctiserver.customers.data import SqlDataProvider, load_sample_data
from ctiserver.outages.model import OutageChange, OutageIn, Scope, load_outages_config
from ctiserver.outages.notices import call_notices, sms_notices
from ctiserver.outages.service import OutageService
from ctiserver.outages.store import OutageClosed, OutageStore, UnknownOutage
from ctiserver.outbound.model import load_outbound_config
from ctiserver.outbound.store import OutboundStore
from ctiserver.sms.engine import SendRules
from ctiserver.sms.kannel import KannelGateway
from ctiserver.sms.model import load_sms_config
from ctiserver.sms.service import SmsService
from ctiserver.sms.store import SmsStore
from ctiserver.store.engine import make_engine, migrate

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
CAL = load_calendar(CONFIG)
NOW = CAL.at(__import__("datetime").date(2026, 12, 2), 600)  # 10:00 local
DAY = 86400.0


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cti.db'}"
    await migrate(url)
    eng = make_engine(url)
    await load_sample_data(eng, CONFIG, NOW)
    yield eng
    await eng.dispose()


def service(engine: AsyncEngine, clock: FakeClock) -> OutageService:
    cfg = load_outages_config(CONFIG, CAL)
    sms_cfg = load_sms_config(CONFIG, CAL)
    sms = SmsService(sms_cfg, SmsStore(engine), KannelGateway(sms_cfg.gateway), clock,
                     SendRules.of(sms_cfg, load_outbound_config(CONFIG, CAL)))
    return OutageService(OutageStore(engine), cfg, clock, sms=sms_notices(sms, cfg),
                         call_notices=call_notices(OutboundStore(engine), cfg, clock.now))


async def test_the_ivr_sees_an_outage_as_soon_as_it_is_saved_changed_and_closed(engine: AsyncEngine) -> None:
    clock = FakeClock(NOW)
    svc = service(engine, clock)
    ivr = SqlDataProvider(engine, CAL.timezone)
    before = await ivr.lookup("outages", {"area": "城西区"}, clock.now())
    assert before is not None and not before["active"]
    saved = await svc.add(OutageIn(kind="fault", cause="10千伏西环线故障", scope=Scope(areas=["城西区"]),
                                   start_ts=NOW - 600, expected_restore_ts=NOW + 3 * 3600), "9001")
    assert saved.warnings == [] and saved.notices == {}  # a fault is not announced ahead
    now_live = await ivr.lookup("outages", {"area": "城西区"}, clock.now())
    assert now_live is not None and now_live["active"] and now_live["reason"] == "10千伏西环线故障"
    assert now_live["expected_restore"] == "今天13点"
    await svc.update(saved.outage.id, OutageChange(expected_restore_ts=NOW + 5 * 3600), "9001")
    changed = await ivr.lookup("outages", {"area": "城西区"}, clock.now())
    assert changed is not None and changed["expected_restore"] == "今天15点"
    clock.jump(60)
    closed = await svc.close(saved.outage.id, "9002")
    assert closed.outage.status == "closed"
    after = await ivr.lookup("outages", {"area": "城西区"}, clock.now())
    assert after is not None and not after["active"]
    audit = await svc.store.audit(saved.outage.id)
    assert [(a["action"], a["user"]) for a in audit] == [("add", "9001"), ("update", "9001"), ("close", "9002")]
    assert audit[1]["data"] == {"expected_restore_ts": NOW + 5 * 3600}


async def test_a_planned_outage_warns_under_seven_days_and_gets_its_notices(engine: AsyncEngine) -> None:
    clock = FakeClock(NOW)
    svc = service(engine, clock)
    start = NOW + 3 * DAY
    saved = await svc.add(OutageIn(kind="planned", cause="变电站设备检修", scope=Scope(areas=["城西区"]),
                                   start_ts=start, expected_restore_ts=start + 8 * 3600), "9001")
    assert saved.warnings and "3.0 days" in saved.warnings[0] and "7 days" in saved.warnings[0]
    sms = await SmsStore(engine).listing(ref=f"outage:{saved.outage.id}")
    numbers = sorted(m["number"] for m in sms)
    assert numbers == [*(f"138000000{i:02d}" for i in range(6, 11)), "13800000027"]  # all of 城西区 by SMS
    assert all(m["kind"] == "outage_notice" and "城西区" in m["text"] and "12月5日10:00" in m["text"] for m in sms)
    campaign = await OutboundStore(engine).campaign(f"outage-{saved.outage.id}")
    assert campaign.state == "running"
    called = await OutboundStore(engine).numbers_in(f"outage-{saved.outage.id}")
    assert called == {"13800000009"}  # the important customer (周强) is also called
    assert saved.notices == {"sms": 6, "phone": 1}
    far = await svc.add(OutageIn(kind="planned", cause="线路改造", scope=Scope(areas=["江北区"]),
                                 start_ts=NOW + 10 * DAY), "9001")
    assert far.warnings == []
    later = await SmsStore(engine).listing(ref=f"outage:{far.outage.id}")
    due = await SmsStore(engine).due(NOW + 3 * DAY - 1, 100)  # the 10-day one waits for its lead time
    assert later and not any(r.ref == f"outage:{far.outage.id}" for r in due)


async def test_fault_calls_attach_to_the_open_outage_that_covers_the_caller(engine: AsyncEngine) -> None:
    clock = FakeClock(NOW)
    svc = service(engine, clock)
    o = (await svc.add(OutageIn(kind="fault", cause="台区变压器故障",
                                scope=Scope(transformers=["T-0012"], accounts=["9100000016"]),
                                start_ts=NOW - 60), "9001")).outage
    assert await svc.for_customer(area="江北区", account="9100000017") is None
    found = await svc.for_customer(area="江北区", account="9100000016")
    assert found is not None and found.id == o.id
    assert await svc.store.attach_report(o.id, NOW, call_id="c1", account="9100000016") == 1
    assert await svc.store.attach_report(o.id, NOW, call_id="c2", account="9100000016") == 2
    assert (await svc.store.get(o.id)).reports == 2


def test_an_outage_needs_a_place_and_a_sane_time() -> None:
    with pytest.raises(ValidationError, match="affected area"):
        OutageIn(kind="fault", cause="x", scope=Scope(), start_ts=NOW)
    with pytest.raises(ValidationError, match="after start_ts"):
        OutageIn(kind="fault", cause="x", scope=Scope(areas=["a"]), start_ts=NOW, expected_restore_ts=NOW - 1)
    with pytest.raises(ValidationError):
        OutageIn(kind="flood", cause="x", scope=Scope(areas=["a"]), start_ts=NOW)  # type: ignore[arg-type]


async def test_a_work_order_attaches_once_and_only_to_an_open_outage(engine: AsyncEngine) -> None:
    clock = FakeClock(NOW)
    svc = service(engine, clock)
    o = (await svc.add(OutageIn(kind="fault", cause="线路故障", scope=Scope(areas=["城东区"]), start_ts=NOW - 60),
                       "9001")).outage
    assert await svc.store.attach_report(o.id, NOW, call_id="c1", account="9100000002") == 1  # the IVR's
    assert await svc.attach_workorder(o.id, 7, call_id="c1", account="9100000002") == 1  # the same call
    assert await svc.attach_workorder(o.id, 7, call_id="c1") == 1  # again: not counted twice
    assert await svc.attach_workorder(o.id, 8, account="9100000003", number="13800000003") == 2
    assert sorted((r["call_id"], r["workorder_id"]) for r in await svc.store.reporters(o.id)) == \
        [("", 8), ("c1", 7)]
    await svc.close(o.id, "9001")
    with pytest.raises(OutageClosed):
        await svc.attach_workorder(o.id, 9)
    with pytest.raises(UnknownOutage):
        await svc.attach_workorder(999, 9)
