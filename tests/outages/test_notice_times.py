"""Notices honour the outage's lead time and never go at night (one calendar: calendar.yaml's zone): the
pure rule, and the important customers' notice calls, which the dialer does not pick before their time."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.calendar import load_calendar
from ctiserver.clock import FakeClock
from ctiserver.customers.data import load_sample_data
from ctiserver.outages.model import OutageIn, Scope, load_outages_config, notice_due
from ctiserver.outages.notices import call_notices, sms_notices
from ctiserver.outages.service import OutageService
from ctiserver.outages.store import OutageStore
from ctiserver.outbound.model import TimeRange, load_outbound_config
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
DAY0 = dt.date(2026, 12, 2)
DAYTIME = (TimeRange.parse("08:00-21:00"),)
H = 3600.0


def at(day: int, minute: int) -> float:
    return CAL.at(DAY0 + dt.timedelta(days=day), minute)


def test_the_lead_time_stands_inside_the_windows() -> None:
    # 24 h before a 10:00 start, entered at 09:00 the day before that: at 10:00 the day before
    assert notice_due(at(2, 600), 24 * H, at(0, 540), DAYTIME, CAL) == at(1, 600)
    # a lead time that is already past: at once
    assert notice_due(at(0, 900), 24 * H, at(0, 540), DAYTIME, CAL) == at(0, 540)


def test_a_lead_time_at_night_moves_to_the_morning_when_that_is_still_before_the_start() -> None:
    # start day 2 at 10:00, 30 h ahead: 04:00 on day 1 -> 08:00 on day 1
    assert notice_due(at(2, 600), 30 * H, at(0, 540), DAYTIME, CAL) == at(1, 480)


def test_else_it_moves_back_to_the_evening_before() -> None:
    # start day 1 at 07:00, 6 h ahead: 01:00 on day 1; 08:00 would be after the start: 20:45 on day 0
    assert notice_due(at(1, 420), 6 * H, at(0, 600), DAYTIME, CAL) == at(0, 1245)
    # entered at 22:00 for a 07:00 start: no daytime moment is left before the start: 08:00 (late, not at night)
    assert notice_due(at(1, 420), 6 * H, at(0, 1320), DAYTIME, CAL) == at(1, 480)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cti.db'}"
    await migrate(url)
    eng = make_engine(url)
    await load_sample_data(eng, CONFIG, at(0, 600))
    yield eng
    await eng.dispose()


async def test_notice_calls_wait_for_the_lead_time(engine: AsyncEngine) -> None:
    now = at(0, 600)
    clock = FakeClock(now)
    cfg = load_outages_config(CONFIG, CAL)
    sms_cfg = load_sms_config(CONFIG, CAL)
    sms = SmsService(sms_cfg, SmsStore(engine), KannelGateway(sms_cfg.gateway), clock,
                     SendRules.of(sms_cfg, load_outbound_config(CONFIG, CAL)))
    store = OutboundStore(engine)
    svc = OutageService(OutageStore(engine), cfg, clock, sms=sms_notices(sms, cfg),
                        call_notices=call_notices(store, cfg, clock.now))
    start = at(10, 390)  # 06:30 on day 10: the 7-day lead time is 06:30 on day 3, at night -> 08:00 on day 3
    saved = await svc.add(OutageIn(kind="planned", cause="线路改造", scope=Scope(areas=["城西区"]), start_ts=start,
                                   expected_restore_ts=start + 8 * H), "9001")
    name = f"outage-{saved.outage.id}"
    assert await store.numbers_in(name) == {"13800000009"}  # the important customer is called
    camp = await store.campaign(name)
    assert camp.spec.windows == ["08:00-21:00"]
    early = await store.snapshot(at(3, 479), campaign=name)
    assert early.contacts == [] and early.later == at(3, 480)
    on_time = await store.snapshot(at(3, 480), campaign=name)
    assert [p.number for p in on_time.contacts] == ["13800000009"]
    ref = f"outage:{saved.outage.id}"  # the SMS notices: the same time
    assert not [r for r in await SmsStore(engine).due(at(3, 479), 100) if r.ref == ref]
    assert len([r for r in await SmsStore(engine).due(at(3, 480), 100) if r.ref == ref]) == 6
