"""The outage and repair loop in the KPI report: notices sent and reached (SMS delivered, notice calls that
reached someone), restorations told, the crews' arrival and 30-minute report on-time rates; the same on
SQLite, PostgreSQL and the pure path over a list of events."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.events import Event, Kind
from ctiserver.kpi.config import KpiConfig
from ctiserver.kpi.report import build_report

from .conftest import load

SH = ZoneInfo("Asia/Shanghai")
D0 = datetime(2026, 11, 23, tzinfo=SH).timestamp()
T = D0 + 9 * 3600


def sms(i: int, kind: str, state: str, ts: float) -> Event:
    return Event(Kind.SMS, ts, data={"id": i, "kind": kind, "state": state, "ref": "outage:1"})


def repair(step: str, ts: float, **data: object) -> Event:
    return Event(Kind.REPAIR, ts, data={"id": 1, "step": step, "crew": "CD1", "area": "城东区", **data})


def loop_day() -> list[Event]:
    evs = [sms(1, "outage_notice", "delivered", T), sms(2, "outage_notice", "delivered", T + 60),
           sms(3, "outage_notice", "fallback", T + 120), sms(4, "outage_notice", "excluded", T + 180),
           sms(5, "restored", "delivered", T + 7200), sms(6, "restored", "failed", T + 7260),
           sms(7, "repair_apology", "delivered", T + 300)]
    evs += [repair("arrive", T + 3000, on_time=True, minutes=40.0), repair("arrive", T + 3100, on_time=False),
            repair("arrive", T + 3200, on_time=True),
            repair("report", T + 4000, on_time=True, cause="x", expected_ts=T + 9000),
            repair("report", T + 4100, on_time=False, cause="y", expected_ts=T + 9000),
            repair("report", T + 5000),  # a new expected time: not a first report
            repair("restore", T + 9000, minutes=150.0)]
    for contact, outcome in ((1, "confirmed"), (2, "no_answer")):  # the notice calls of campaign outage-1
        evs.append(Event(Kind.OUT_ATTEMPT, T + 10 * contact, f"ob-{contact}",
                         data={"campaign": "outage-1", "contact": contact, "attempt": 1}))
        evs.append(Event(Kind.OUT_RESULT, T + 10 * contact + 20, f"ob-{contact}",
                         data={"campaign": "outage-1", "contact": contact, "attempt": 1, "outcome": outcome}))
    evs.append(Event(Kind.SMS, D0 + 86400 + 60, data={"id": 9, "kind": "outage_notice", "state": "delivered"}))
    return evs


WANT = {
    "notices": {"sms_settled": 4, "sms_delivered": 2, "sms_delivered_rate": 0.5, "calls": 2, "calls_reached": 1,
                "call_reach_rate": 0.5, "sent": 6, "reached": 3},
    "restored": {"sms_settled": 2, "sms_delivered": 1, "calls": 0, "calls_reached": 0},
    "repair": {"arrivals": 3, "arrivals_on_time": 2, "arrival_on_time_rate": 0.6667, "reports": 2,
               "reports_on_time": 1, "report_on_time_rate": 0.5, "restorations": 1},
}


async def test_the_loop_section_on_the_database(engine: AsyncEngine) -> None:
    await load(engine, loop_day())
    r = await build_report(engine, KpiConfig(), D0, D0 + 86400, [], now=D0 + 86400)
    assert r["loop"] == WANT


async def test_the_loop_section_from_events() -> None:
    r = await build_report(loop_day(), KpiConfig(), D0, D0 + 86400, [], now=D0 + 86400)
    assert r["loop"] == WANT
