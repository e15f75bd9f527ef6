"""The loop's KPIs from events: arrival by area class, report on time, restoration, repeats, SMS, coverage."""

from __future__ import annotations

from ctiserver.events import Event, Kind
from ctiserver.repair.kpis import loop_kpis


def ev(event_kind: str, ts: float = 0.0, **data: object) -> Event:
    return Event(event_kind, ts, data=dict(data))


def test_loop_kpis_from_events() -> None:
    events = [
        ev(Kind.OUTAGE, action="add", id=1, start_ts=1000.0),
        ev(Kind.REPAIR, step="arrive", area_class="city", minutes=40.0, on_time=True),
        ev(Kind.REPAIR, step="arrive", area_class="city", minutes=50.0, on_time=False),
        ev(Kind.REPAIR, step="arrive", area_class="remote", minutes=100.0, on_time=True),
        ev(Kind.REPAIR, step="report", on_time=True),
        ev(Kind.REPAIR, step="report", on_time=False),
        ev(Kind.REPAIR, step="report", on_time=True),
        ev(Kind.REPAIR, step="restore", minutes=120.0),
        ev(Kind.REPAIR, step="restore", minutes=180.0),
        ev(Kind.OUTAGE_REPORT, outage=1, reports=1), ev(Kind.OUTAGE_REPORT, outage=1, reports=2),
        ev(Kind.OUTAGE_REPORT, outage=2, reports=1),
        ev(Kind.SMS, 900.0, kind="outage_notice", state="delivered", ref="outage:1"),
        ev(Kind.SMS, 1100.0, kind="outage_notice", state="delivered", ref="outage:1"),  # after the start
        ev(Kind.SMS, 950.0, kind="outage_notice", state="fallback", ref="outage:1"),
        ev(Kind.SMS, 960.0, kind="restored", state="delivered", ref="repair:3"),
    ]
    k = loop_kpis(events)
    assert k["arrival_by_class"] == {
        "city": {"orders": 2, "avg_dispatch_to_arrival_min": 45.0, "on_time_rate": 0.5},
        "remote": {"orders": 1, "avg_dispatch_to_arrival_min": 100.0, "on_time_rate": 1.0}}
    assert k["report_on_time_rate"] == 0.6667
    assert k["avg_restoration_min"] == 150.0
    assert k["repeat_reports_per_outage"] == 1.5
    assert k["sms"] == {"settled": 4, "delivered_rate": 0.75, "failed_rate": 0.25,
                        "by_state": {"delivered": 3, "fallback": 1}}
    assert k["notice_coverage"] == 0.3333
    empty = loop_kpis([])
    assert empty["report_on_time_rate"] is None and empty["notice_coverage"] is None
