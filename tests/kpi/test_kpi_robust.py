"""Odd data and odd requests: reports stay correct, identical on both databases, and never crash."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.calendar import Calendar
from ctiserver.events import Event, Kind
from ctiserver.kpi.config import KpiConfig
from ctiserver.kpi.report import ReportError, build_report, parse_by, parse_when, resolve_range

from .conftest import load

SH = ZoneInfo("Asia/Shanghai")
D0 = datetime(2026, 11, 23, tzinfo=SH).timestamp()


def messy_events() -> list[Event]:
    t = D0 + 10 * 3600
    return [
        # the number as a JSON number, not a string
        Event(Kind.CALL_NEW, t, "m1", data={"caller_num": 13800000001, "direction": "inbound"}),
        Event(Kind.ACD_ENQUEUE, t + 1, "m1", queue="billing", tier="normal", data={}),
        Event(Kind.ACD_ANSWER, t + 11, "m1", agent_id="a1", queue="billing", tier="normal",
              data={"ring_s": "fast"}),  # a string where a number belongs
        Event(Kind.ACD_COMPLETE, t + 100, "m1", agent_id="a1", queue="billing", tier="normal",
              data={"talk_s": "abc", "hold_s": None}),
        Event(Kind.DISPOSITION, t + 101, "m1", agent_id="a1",
              data={"category": {"nested": 1}, "resolved": "yes"}),
        Event(Kind.ACD_ENQUEUE, t + 5, None, queue="billing", data={}),  # no call id: cannot be a call
        Event("acd.something_new", t + 6, "m1", data={"x": 1}),  # a kind from a newer release
        Event(Kind.AGENT_STATE, t, None, agent_id="a1", data={"state": 7}),  # a state that is not a name
        Event(Kind.SURVEY_RATING, t, "s", data={"rating": 9}),
        Event(Kind.SURVEY_RATING, t, "s2", data={"rating": 3.5}),
        Event(Kind.WORKORDER, t, None, data={"action": "open"}),  # no id
        Event(Kind.CALL_NEW, t + 200, "m2", data={"caller_num": "13800000001", "direction": "inbound"}),
    ]


async def test_messy_values_are_ignored_not_fatal(engine: AsyncEngine) -> None:
    await load(engine, messy_events())
    r = await build_report(engine, KpiConfig(), D0, D0 + 86400, ["agent"], now=D0 + 86400)
    t = r["total"]
    assert (t["calls_offered"], t["queued"], t["answered"], t["asa_s"]) == (2, 1, 1, 10.0)
    assert t["handled"] == 1 and t["avg_talk_s"] is None and t["avg_hold_s"] is None  # unusable values
    assert t["avg_ring_s"] is None
    assert t["dispositions"] == {"(none)": 1} and t["dispositions_resolved"] == 0  # "yes" is not true
    # 13800000001 as a JSON number and as a string is the same caller: m2 repeats m1 -> FCR 0/1.
    assert (t["fcr_eligible"], t["fcr_rate"]) == (1, 0.0)
    assert t["workorders_opened"] == 0
    survey = {s["campaign"]: s for s in r["survey"]}
    assert survey["*"]["invalid"] == 2 and survey["*"]["responses"] == 0


async def test_messy_values_give_identical_reports(sqlite_engine: AsyncEngine,
                                                   pg_engine: AsyncEngine) -> None:
    for eng in (sqlite_engine, pg_engine):
        await load(eng, messy_events())
    a = await build_report(sqlite_engine, KpiConfig(), D0, D0 + 86400, ["halfhour", "tier"], now=D0 + 86400)
    b = await build_report(pg_engine, KpiConfig(), D0, D0 + 86400, ["halfhour", "tier"], now=D0 + 86400)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


async def test_daylight_saving_zone_buckets_by_local_wall_clock(engine: AsyncEngine) -> None:
    # Berlin moves from +01:00 to +02:00 at 02:00 local on 2026-03-29: 01:45 and 03:15 local are 30 min apart.
    berlin = ZoneInfo("Europe/Berlin")
    t1 = datetime(2026, 3, 29, 1, 45, tzinfo=berlin).timestamp()
    t2 = datetime(2026, 3, 29, 3, 15, tzinfo=berlin).timestamp()
    assert t2 - t1 == 1800
    await load(engine, [Event(Kind.CALL_NEW, t1, "x1", data={}), Event(Kind.CALL_NEW, t2, "x2", data={})])
    cfg = KpiConfig(calendar=Calendar(timezone="Europe/Berlin"))
    start = datetime(2026, 3, 29, tzinfo=berlin).timestamp()
    r = await build_report(engine, cfg, start, start + 23 * 3600, ["hour"], now=start + 86400)
    assert [(row["key"]["hour"], row["metrics"]["calls_offered"]) for row in r["rows"]] == [
        ("2026-03-29T01:00", 1), ("2026-03-29T03:00", 1)]
    assert r["from"] == "2026-03-29T00:00:00+01:00" and r["to"] == "2026-03-30T00:00:00+02:00"


async def test_long_agent_states_are_split_by_half_hour(engine: AsyncEngine) -> None:
    # Available 08:10 to 10:20, then logged out: 20 + 30 + 30 + 30 + 30 + 20 minutes.
    await load(engine, [
        Event(Kind.AGENT_STATE, D0 + 8 * 3600 + 600, None, agent_id="a9", data={"state": "available"}),
        Event(Kind.AGENT_STATE, D0 + 10 * 3600 + 1200, None, agent_id="a9", data={"state": "logged_out"})])
    r = await build_report(engine, KpiConfig(), D0, D0 + 86400, ["halfhour", "agent"], now=D0 + 86400)
    got = [(row["key"]["halfhour"][11:], row["metrics"]["logged_in_s"]) for row in r["rows"]]
    assert got == [("08:00", 1200.0), ("08:30", 1800.0), ("09:00", 1800.0), ("09:30", 1800.0),
                   ("10:00", 1200.0)]
    # The state still in force is cut at `now`, not at the end of the range.
    r = await build_report(engine, KpiConfig(), D0, D0 + 86400, [], now=D0 + 9 * 3600)
    assert r["total"]["logged_in_s"] == 3000.0


async def test_empty_store_gives_zero_counts_and_undefined_rates() -> None:
    r = await build_report([], KpiConfig(), D0, D0 + 86400, ["day"], now=D0)
    assert r["rows"] == []
    assert r["total"]["calls_offered"] == 0 and r["total"]["service_level"] is None
    assert r["staffing"] == [] and r["outbound"]["rows"] == []
    assert all(t["met"] is None for t in r["targets"])


def test_bad_requests_are_refused_with_a_reason() -> None:
    cfg = KpiConfig()
    assert parse_by("day, tier") == ["day", "tier"]
    assert parse_by(None) == []
    with pytest.raises(ReportError, match="unknown grouping 'weekday'"):
        parse_by("weekday")
    with pytest.raises(ReportError, match="twice"):
        parse_by(["day", "day"])
    with pytest.raises(ReportError, match="not a date"):
        parse_when("23/11/2026", cfg)
    assert parse_when("2026-11-23", cfg) == D0
    assert parse_when("2026-11-23T00:00:00+08:00", cfg) == D0
    assert resolve_range("2026-11-23", None, cfg, now=D0 + 5000) == (D0, D0 + 86400)
    assert resolve_range(None, None, cfg, now=D0 + 5000)[0] == D0


async def test_bad_ranges_are_refused() -> None:
    cfg = KpiConfig()
    with pytest.raises(ReportError, match="after its start"):
        await build_report([], cfg, D0, D0, [], now=D0)
    with pytest.raises(ReportError, match="at most 400 days"):
        await build_report([], cfg, D0, D0 + 401 * 86400, [], now=D0)
    with pytest.raises(ReportError, match="not a time"):
        await build_report([], cfg, float("nan"), D0, [], now=D0)


async def test_a_caller_still_waiting_is_neither_answered_nor_lost(engine: AsyncEngine) -> None:
    # c1 waits since 10:00:00 with no way out yet; c2 waited and hung up (call.end) without an ACD exit.
    t = D0 + 10 * 3600
    await load(engine, [
        Event(Kind.CALL_NEW, t, "c1", data={}), Event(Kind.ACD_ENQUEUE, t + 5, "c1", queue="billing", data={}),
        Event(Kind.CALL_NEW, t, "c2", data={}), Event(Kind.ACD_ENQUEUE, t + 5, "c2", queue="billing", data={}),
        Event(Kind.CALL_END, t + 60, "c2", data={"duration_s": 60, "answered": False})])
    live = await build_report(engine, KpiConfig(), D0, D0 + 86400, [], now=t + 120)
    assert (live["total"]["in_queue"], live["total"]["call_loss"], live["total"]["sl_offered"]) == (1, 1, 1)
    assert live["total"]["agent_connection_rate"] == 0.0 and live["total"]["customer_loss_rate"] == 1.0
    # Hours later (past window.max_call_s) nothing is waiting any more: both calls count as lost.
    later = await build_report(engine, KpiConfig(), D0, D0 + 86400, [], now=t + 5 * 3600)
    assert (later["total"]["in_queue"], later["total"]["call_loss"], later["total"]["sl_offered"]) == (0, 2, 2)


async def test_state_cut_at_the_range_end_leaves_no_crumbs(engine: AsyncEngine) -> None:
    # Available from 23:10:00.123457 and still at the end of the day: exactly 49 min 59.876543 s
    # (to the ms: 2999.877), all inside the day; no 1 ms piece in a half hour after the range.
    start = D0 + 23 * 3600 + 600.123457
    await load(engine, [Event(Kind.AGENT_STATE, start, None, agent_id="a1", data={"state": "available"})])
    r = await build_report(engine, KpiConfig(), D0, D0 + 86400, ["halfhour"], now=D0 + 2 * 86400)
    assert [row["key"]["halfhour"][11:] for row in r["rows"]] == ["23:00", "23:30"]
    assert r["total"]["logged_in_s"] == 2999.877


async def test_an_upgraded_outbound_result_counts_its_attempt_once(engine: AsyncEngine) -> None:
    """A later report upgrades an attempt's outcome with a second `outbound.result` for the same channel:
    `lost` written at a restart, then Asterisk's own answer; answered, then the customer's confirmation.
    Each attempt is one result, one reached attempt; connection rate stays a share of the attempts."""
    t = D0 + 9 * 3600
    ob = {"campaign": "c1"}
    evs = [
        Event(Kind.OUT_ATTEMPT, t, "ob-c1-k1-1", data={**ob, "contact": "k1", "attempt": 1}),
        Event(Kind.OUT_RESULT, t + 60, "ob-c1-k1-1", data={**ob, "contact": "k1", "outcome": "lost"}),
        Event(Kind.OUT_RESULT, t + 65, "ob-c1-k1-1", data={**ob, "contact": "k1", "outcome": "answered"}),
        Event(Kind.OUT_ATTEMPT, t + 10, "ob-c1-k2-1", data={**ob, "contact": "k2", "attempt": 1}),
        Event(Kind.OUT_RESULT, t + 40, "ob-c1-k2-1", data={**ob, "contact": "k2", "outcome": "answered"}),
        Event(Kind.OUT_RESULT, t + 41, "ob-c1-k2-1", data={**ob, "contact": "k2", "outcome": "confirmed"}),
        Event(Kind.OUT_ATTEMPT, t + 20, "ob-c1-k3-1", data={**ob, "contact": "k3", "attempt": 1}),
        Event(Kind.OUT_RESULT, t + 50, "ob-c1-k3-1", data={**ob, "contact": "k3", "outcome": "no_answer"}),
    ]
    await load(engine, evs)
    r = await build_report(engine, KpiConfig(), D0, D0 + 86400, [], now=D0 + 86400)
    o = r["outbound"]["total"]
    assert (o["contacts"], o["attempts"], o["reached"], o["confirmed"]) == (3, 3, 2, 1)
    assert o["connection_rate"] == round(2 / 3, 6) and o["machine_rate"] == 0.0
