"""The shift handover's pure core: which shift change, what is handed over, the logout rule, the text."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy import insert

from ctiserver.events import Event, Kind
from ctiserver.wfm.adherence import planned_day
from ctiserver.wfm.handover import (
    HandoverInputs,
    boundary,
    build_handover,
    handover_text,
    logout_warning,
    system_state,
)
from ctiserver.wfm.roster import variant_for
from ctiserver.wfm.shifts import Assignment

from .test_roster import CAL, config

WEEK = dt.date(2026, 8, 10)  # Monday
DAY = WEEK + dt.timedelta(days=2)  # Wednesday
CFG = config()


def at(hhmm: str, day: dt.date = DAY) -> float:
    h, m = hhmm.split(":")
    return CAL.at(day, int(h) * 60 + int(m))


def plans() -> list:
    """Wednesday: leader L1 early 07:00-15:30, leader L2 late 13:00-21:30, agent A early too (not a leader);
    Thursday: L1 night 00:00-08:00."""
    d = DAY.weekday()
    shifts = [Assignment("L1", d, variant_for(CFG, "early", "07:00", "11:00")),
              Assignment("L2", d, variant_for(CFG, "late", "13:00", "17:00")),
              Assignment("A", d, variant_for(CFG, "early", "07:00", "11:00")),
              Assignment("L1", d + 1, variant_for(CFG, "night", "00:00", "04:00"))]
    return planned_day(shifts, WEEK, DAY, CAL) + planned_day(shifts, WEEK, DAY + dt.timedelta(days=1), CAL)


LEADERS = {"L1", "L2"}


def test_boundary_is_the_end_of_the_leader_shift_under_way() -> None:
    b = boundary(plans(), LEADERS, at("14:00"))
    assert b is not None
    assert (b.at, b.shift_start, b.outgoing, b.incoming) == (at("15:30"), at("07:00"), ("L1",), ("L2",))
    assert b.incoming_until == at("21:30")
    # before L2 starts, L1's shift is the only one under way: still the 15:30 change
    b = boundary(plans(), LEADERS, at("09:00"))
    assert b is not None and b.at == at("15:30")
    # late evening: L2 hands over at 21:30; nobody leads after it (the night leader starts at midnight)
    b = boundary(plans(), LEADERS, at("21:00"))
    assert b is not None and (b.outgoing, b.incoming, b.incoming_until) == (("L2",), (), None)
    # just after the change, still that change (up to two hours); then none
    b = boundary(plans(), LEADERS, at("22:00"))
    assert b is not None and b.at == at("21:30")
    assert boundary(plans(), LEADERS, at("23:45")) is None
    # an ordinary agent's shift is no shift change
    assert boundary(plans(), set(), at("14:00")) is None  # no leaders, no shift change (A is no leader)


def _order(i: int, due: str, *, status: str = "dispatched", category: str = "inquiry",
           dispatch_due: str | None = None, created: str = "09:00") -> dict:
    return {"id": i, "category": category, "status": status, "customer_name": f"c{i}", "content": f"order {i}",
            "due_ts": at(due), "dispatch_due_ts": at(dispatch_due) if dispatch_due else None,
            "created_ts": at(created), "created_by": "1001", "call_id": f"call-{i}"}


def inputs() -> HandoverInputs:
    open_orders = [_order(1, "12:00"),  # overdue at 14:00
                   _order(2, "20:00"),  # due in the incoming shift
                   _order(3, "23:00"),  # due after the incoming shift ends: not listed
                   _order(4, "23:00", status="open", dispatch_due="15:00")]  # dispatch due soon: listed
    shift_orders = [_order(5, "23:00", status="closed", category="complaint", created="10:15"),
                    _order(6, "23:00", status="closed", category="inquiry", created="10:20"),
                    _order(7, "23:00", status="open", category="report", created="06:00")]  # before the shift
    outages = [{"id": 10, "kind": "fault", "cause": "feeder trip", "scope": {"areas": ["north"]},
                "start_ts": at("13:00"), "expected_restore_ts": at("18:00"), "status": "open", "reports": 3},
               {"id": 11, "kind": "planned", "cause": "maintenance", "scope": {"areas": ["east"]},
                "start_ts": at("20:00"), "expected_restore_ts": None, "status": "open"},
               {"id": 12, "kind": "planned", "cause": "next week", "scope": {"areas": ["west"]},
                "start_ts": at("08:00", DAY + dt.timedelta(days=7)), "expected_restore_ts": None, "status": "open"}]
    cbs = [{"id": 20, "number": "13800000001", "skill": "billing", "tier": "vip", "reason": "abandon",
            "status": "pending", "attempts": 1, "due_ts": at("16:00"), "next_ts": at("14:30")},
           {"id": 21, "number": "13800000002", "skill": "billing", "tier": "normal", "reason": "full",
            "status": "done", "attempts": 1, "due_ts": at("16:00"), "next_ts": at("14:30")}]
    evs = [Event(Kind.SURVEY_RATING, at("11:00"), "call-a", "1002", "billing", data={"rating": 1}),
           Event(Kind.SURVEY_RATING, at("11:05"), "call-b", "1002", "billing", data={"rating": 5}),
           Event(Kind.REPAIR_ALERT, at("12:00"), data={"id": 7, "step": "arrive", "level": "escalation", "crew": "c1"}),
           Event(Kind.REPAIR_ALERT, at("12:01"), data={"id": 8, "step": "arrive", "level": "reminder", "crew": "c1"}),
           Event(Kind.ACD_ABANDON, at("12:30"), "call-c", None, "billing", "vip", data={"wait_s": 40}),
           Event(Kind.ACD_ABANDON, at("12:31"), "call-d", None, "billing", "normal", data={"wait_s": 40}),
           Event(Kind.SURVEY_RATING, at("16:00"), "call-e", "1002", "billing", data={"rating": 1})]  # after
    return HandoverInputs(open_orders, shift_orders, outages, cbs, evs)


def test_handover_lists_what_the_next_shift_must_act_on() -> None:
    b = boundary(plans(), LEADERS, at("14:00"))
    assert b is not None
    h = build_handover(inputs(), b, at("14:00"))
    assert h["horizon_ts"] == at("21:30")  # due before the incoming shift ends
    assert [o["id"] for o in h["orders"]] == [1, 4, 2]  # the overdue first, then by the nearest deadline
    assert h["orders"][0]["overdue"] and not h["orders"][1]["overdue"]
    assert h["orders"][1]["dispatch_due_ts"] == at("15:00")
    assert [o["id"] for o in h["outages"]] == [10, 11]  # active first; next week's is not this shift's
    assert [o["active"] for o in h["outages"]] == [True, False]
    assert h["outages"][0]["areas"] == ["north"] and h["outages"][0]["reports"] == 3
    assert [c["id"] for c in h["callbacks"]] == [20]
    assert [(n["what"], n["ref"]) for n in h["notable"]] == [
        ("complaint", "work order 5"), ("low_rating", "rating 1"), ("repair_escalation", "repair order 7"),
        ("vip_abandon", "billing")]
    assert h["summary"] == {"open_orders": 4, "orders_due": 3, "overdue": 1, "outages": 2, "active_outages": 1,
                            "callbacks": 1, "notable": 4}
    # with nobody after (21:30 change), "near the deadline" is the next 8 hours
    late = boundary(plans(), LEADERS, at("21:00"))
    assert late is not None
    assert build_handover(inputs(), late, at("21:00"))["horizon_ts"] == at("21:30") + 8 * 3600


def test_logout_rule() -> None:
    b = boundary(plans(), LEADERS, at("15:25"))
    assert b is not None
    assert "has not logged in" in (logout_warning(b, "L1", set(), acknowledged=False) or "")
    assert "not acknowledged" in (logout_warning(b, "L1", {"L2"}, acknowledged=False) or "")
    assert logout_warning(b, "L1", {"L2"}, acknowledged=True) is None
    assert logout_warning(b, "L2", set(), acknowledged=False) is None  # not the outgoing leader
    assert logout_warning(None, "L1", set(), acknowledged=False) is None


def test_text_export_says_everything_on_the_page() -> None:
    b = boundary(plans(), LEADERS, at("14:00"))
    assert b is not None
    content = build_handover(inputs(), b, at("14:00"))
    doc = {"id": 3, "outgoing": "L1", "note": "IVR line 2 noisy\nchase order 1", "content": content,
           "created_ts": at("15:20"), "acked_by": "L2", "acked_ts": at("15:35")}
    text = handover_text(doc, CAL)
    assert "Shift handover #3  08-12 07:00 - 08-12 15:30" in text
    assert "Acknowledged: L2 at 08-12 15:35" in text
    assert "  IVR line 2 noisy\n  chase order 1" in text
    assert "#1 inquiry dispatched due 08-12 12:00 OVERDUE  c1: order 1" in text
    assert "#10 fault ACTIVE north: feeder trip (restore 08-12 18:00, 3 reports)" in text
    assert "#20 13800000001 billing/vip pending" in text
    assert "repair_escalation repair order 7" in text


def test_system_state_from_the_servers_health() -> None:
    health = {"status": "degraded", "live_calls": 7,
              "ami": {"pbx1": {"connected": True, "reconnects": 0},
                      "pbx2": {"connected": False, "last_error": "connection refused", "reconnects": 3}},
              "db": {"db_ok": True, "pending": 120},
              "ha": {"enabled": True, "role": "leader", "node": "cti-a", "leader": "cti-a"}}
    lines = {x["what"]: x for x in system_state(health)}
    assert lines["Asterisk pbx1"] == {"what": "Asterisk pbx1", "ok": True, "state": "connected"}
    pbx2 = lines["Asterisk pbx2"]
    assert pbx2["state"] == "DOWN (connection refused), 3 reconnects" and not pbx2["ok"]
    assert lines["event store"] == {"what": "event store", "ok": False, "state": "ok, 120 events waiting"}
    assert lines["live calls"]["state"] == "7" and lines["HA"]["state"] == "leader on cti-a, leader cti-a"
    assert system_state(None) == []
    b = boundary(plans(), LEADERS, at("14:00"))
    assert b is not None
    content = build_handover(inputs(), b, at("14:00"), health)
    doc = {"id": 1, "outgoing": "L1", "note": "", "content": content, "created_ts": at("15:20"),
           "acked_by": None, "acked_ts": None}
    assert "  Asterisk pbx2: DOWN (connection refused), 3 reconnects" in handover_text(doc, CAL)


def test_a_leader_past_the_end_of_the_shift_still_hands_that_shift_over() -> None:
    from ctiserver.wfm.handover import boundary_for, passed

    now = at("15:40")  # L1's shift ended at 15:30; L2 leads until 21:30
    assert [b.at for b in passed(plans(), LEADERS, now)] == [at("15:30")]
    b = boundary_for(plans(), LEADERS, now, "L1")
    assert b is not None and (b.at, b.outgoing, b.incoming) == (at("15:30"), ("L1",), ("L2",))
    # once handed over, L1 has no shift change left to act on today; for L2 it is the 21:30 one
    after = boundary_for(plans(), LEADERS, now, "L1", {at("15:30")})
    assert after is not None and after.at == at("21:30")
    b2 = boundary_for(plans(), LEADERS, now, "L2")
    assert b2 is not None and b2.at == at("21:30")


async def test_watch_draws_up_the_handover_nobody_gave(tmp_path: Path) -> None:
    """A FakeClock past the 15:30 change, no handover saved: the watch saves one from the store, once."""
    from sqlalchemy import select
    from sqlalchemy.ext.asyncio import create_async_engine

    from ctiserver.callbacks.store import callbacks
    from ctiserver.clock import FakeClock
    from ctiserver.outages.store import outage_records, outage_reports
    from ctiserver.store.schema import events, metadata
    from ctiserver.web.tables import work_orders
    from ctiserver.wfm.handover_store import handovers, save
    from ctiserver.wfm.handover_watch import AUTO_NOTE, HandoverWatch
    from ctiserver.wfm.roster import WEEK_SLOTS, Roster, to_doc
    from ctiserver.wfm.shifts import Agent

    d = DAY.weekday()
    shifts = [Assignment("L1", d, variant_for(CFG, "early", "07:00", "11:00")),
              Assignment("L2", d, variant_for(CFG, "late", "13:00", "17:00"))]
    doc = to_doc(Roster(WEEK, shifts, {"billing": [0.0] * WEEK_SLOTS}), [])
    (tmp_path / f"roster-{WEEK}.json").write_text(json.dumps(doc), encoding="utf-8")
    agents = [Agent("L1", frozenset(), leader=True), Agent("L2", frozenset(), leader=True)]
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: metadata.create_all(c, tables=[handovers, work_orders, outage_records,
                                                                      outage_reports, callbacks, events]))
        await conn.execute(insert(work_orders).values(
            created_ts=at("09:00"), updated_ts=at("09:00"), created_by="1001", incoming_number="1",
            call_time=at("09:00"), category="inquiry", customer_name="c", content="order", status="dispatched",
            due_ts=at("18:00"), reopen_count=0, alerted=""))
    clock = FakeClock(at("15:00"))
    emitted: list[Event] = []
    watch = HandoverWatch(folder=tmp_path, cfg=CFG, agents=agents, calendar=CAL, get_engine=lambda: engine,
                          get_events_engine=lambda: engine, clock=clock, emit=emitted.append,
                          health=lambda: {"ami": {"pbx1": {"connected": True}}})
    try:
        assert await watch.check() == []  # before the change
        clock.set(at("15:31"))
        [hid] = await watch.check()
        assert await watch.check() == []  # once
        async with engine.connect() as conn:
            row = (await conn.execute(select(handovers).where(handovers.c.id == hid))).mappings().one()
        assert (row["outgoing"], row["incoming"], row["boundary_ts"], row["note"]) == ("L1", "L2", at("15:30"),
                                                                                          AUTO_NOTE)
        content = row["content"] if isinstance(row["content"], dict) else json.loads(row["content"])
        assert content["auto"] and [o["id"] for o in content["orders"]] == [1]
        assert content["system"][0]["what"] == "Asterisk pbx1"
        assert [(e.kind, e.data["action"]) for e in emitted] == [(Kind.WFM_HANDOVER, "auto")]
        # the 21:30 change was handed over by hand: the watch leaves it alone
        b = boundary(plans(), LEADERS, at("21:00"))
        assert b is not None
        await save(engine, user="L2", note="by hand", content=build_handover(inputs(), b, at("21:20")),
                   text="", now=at("21:20"))
        clock.set(at("21:35"))
        assert await watch.check() == []
        async with watch.running():  # the lifecycle starts and stops cleanly
            pass
    finally:
        await engine.dispose()
