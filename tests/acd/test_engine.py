"""Every routing rule of the pure ACD engine, on hand-driven time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from ctiserver.acd.engine import ACD_RETIER, AcdEngine
from ctiserver.acd.model import (
    AcdError,
    Blocked,
    CancelCallback,
    CancelOffer,
    Destination,
    DuplicateCall,
    IllegalTransition,
    Overflow,
    QueueClosed,
    ScheduleCallback,
    UnknownAgent,
    UnknownCall,
    UnknownSkill,
    UnknownTier,
)
from ctiserver.events import Kind

from .helpers import config, engine, events, offers, only


def answer_and_finish(eng: AcdEngine, call_id: str, t_answer: float, t_end: float) -> None:
    eng.ring_answered(call_id, t_answer)
    eng.call_ended(call_id, t_end)


# --------------------------------------------------------------- agent states

def test_login_ready_and_state_events_carry_previous_state_and_duration() -> None:
    eng = engine({"1001": {"billing": 5}}, ready=False)
    cmds = eng.login("1001", 10.0)
    assert eng.agent_state("1001") == ("not_ready", "login")
    cmds += eng.set_ready("1001", 25.0)
    assert eng.agent_state("1001") == ("available", None)
    states = [(e.data["previous"], e.data["state"], e.data["duration_s"])
              for e in events(cmds, Kind.AGENT_STATE)]
    # how long they were logged out before the first login is unknown; after it, durations run from it
    assert states == [("logged_out", "not_ready", None), ("not_ready", "available", 15.0)]


def test_illegal_transition_names_state_and_event() -> None:
    eng = engine({"1001": {"billing": 5}}, ready=False)
    with pytest.raises(IllegalTransition) as err:
        eng.set_ready("1001", 1.0)
    assert err.value.state == "logged_out" and err.value.event == "ready"
    assert "logged_out" in str(err.value) and "ready" in str(err.value)
    eng.login("1001", 1.0, ready=True)
    eng.enqueue("c1", "billing", "normal", "138", 2.0)
    eng.ring_answered("c1", 3.0)
    with pytest.raises(IllegalTransition) as err:
        eng.logout("1001", 4.0)
    assert (err.value.state, err.value.event) == ("on_call", "logout")
    with pytest.raises(IllegalTransition, match=r"not_ready\(lunch\)"):
        eng.call_ended("c1", 5.0)
        eng.set_not_ready("1001", "lunch", 6.0)
        eng.login("1001", 7.0)


def test_wrap_up_ends_by_itself_after_the_queue_wrap_time() -> None:
    eng = engine({"1001": {"billing": 5, "fault": 5}},
                 queues={"fault": {"wrap_up_s": 45}, "billing": {"wrap_up_s": 20}})
    eng.enqueue("c1", "fault", "normal", "138", 0.0)
    answer_and_finish(eng, "c1", 5.0, 65.0)
    assert eng.agent_state("1001")[0] == "wrap_up"
    assert eng.next_deadline() == 110.0
    assert eng.tick(109.9) == []
    cmds = eng.tick(110.0)
    assert eng.agent_state("1001")[0] == "available"
    assert [e.data["duration_s"] for e in events(cmds, Kind.AGENT_STATE)] == [45.0]
    assert eng.next_deadline() is None


def test_ready_during_wrap_up_ends_it_and_takes_the_next_call() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("c1", "billing", "normal", "1", 0.0)
    eng.enqueue("c2", "billing", "normal", "2", 1.0)
    answer_and_finish(eng, "c1", 2.0, 30.0)
    cmds = eng.set_ready("1001", 33.0)
    assert [o.call_id for o in offers(cmds)] == ["c2"]


def test_not_ready_while_talking_takes_effect_after_wrap_up() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("c1", "billing", "normal", "1", 0.0)
    eng.ring_answered("c1", 1.0)
    assert eng.set_not_ready("1001", "meeting", 2.0) == []
    assert eng.agent_state("1001") == ("on_call", None)
    eng.enqueue("c2", "billing", "normal", "2", 3.0)
    eng.call_ended("c1", 10.0)
    cmds = eng.tick(20.0)
    assert eng.agent_state("1001") == ("not_ready", "meeting")
    assert offers(cmds) == []
    assert eng.call_state("c2") == "waiting"


def test_completion_event_has_talk_time() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("c1", "billing", "vip", "1", 0.0)
    cmds = eng.ring_answered("c1", 4.0)
    [ans] = events(cmds, Kind.ACD_ANSWER)
    assert (ans.data["wait_s"], ans.data["ring_s"], ans.tier, ans.queue) == (4.0, 4.0, "vip", "billing")
    cmds = eng.call_ended("c1", 94.0)
    [done] = events(cmds, Kind.ACD_COMPLETE)
    assert done.data["talk_s"] == 90.0 and done.agent_id == "1001"
    assert eng.call_state("c1") is None


# ------------------------------------------------------------- agent choice

def test_best_proficiency_then_longest_idle() -> None:
    eng = engine({"1001": {"billing": 5}, "1002": {"billing": 9}, "1003": {"billing": 9}}, ready=False)
    eng.login("1003", 0.0, ready=True)
    eng.login("1001", 1.0, ready=True)
    eng.login("1002", 2.0, ready=True)
    assert offers(eng.enqueue("c1", "billing", "normal", "1", 5.0))[0].agent_id == "1003"
    assert offers(eng.enqueue("c2", "billing", "normal", "2", 6.0))[0].agent_id == "1002"
    assert offers(eng.enqueue("c3", "billing", "normal", "3", 7.0))[0].agent_id == "1001"


def test_longest_idle_policy_ignores_proficiency() -> None:
    eng = engine({"1001": {"billing": 5}, "1002": {"billing": 9}}, ready=False,
                 agent_selection="longest_idle")
    eng.login("1001", 0.0, ready=True)
    eng.login("1002", 1.0, ready=True)
    assert offers(eng.enqueue("c1", "billing", "normal", "1", 5.0))[0].agent_id == "1001"


# --------------------------------------------------------------------- tiers

def test_vip_first_blacklist_last_with_one_agent_busy() -> None:
    """The acceptance scenario: one busy agent, five callers (one VIP, one blacklisted, three normal)."""
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("busy", "billing", "normal", "100", 0.0)
    eng.ring_answered("busy", 1.0)
    eng.enqueue("black", "billing", "blacklist", "200", 2.0)
    eng.enqueue("n1", "billing", "normal", "201", 3.0)
    eng.enqueue("n2", "billing", "normal", "202", 4.0)
    eng.enqueue("vip", "billing", "vip", "203", 5.0)
    eng.enqueue("n3", "billing", "normal", "204", 6.0)
    served = []
    current, t = "busy", 10.0
    for _ in range(5):
        eng.call_ended(current, t)
        [offer] = offers(eng.tick(t + 10))
        served.append(offer.call_id)
        current = offer.call_id
        eng.ring_answered(current, t + 11)
        t += 20
    assert served == ["vip", "n1", "n2", "n3", "black"]


def test_blacklist_waits_while_any_caller_who_could_take_the_agent_waits_in_another_skill() -> None:
    eng = engine({"1001": {"billing": 5, "fault": 5}})
    eng.enqueue("busy", "billing", "normal", "1", 0.0)
    eng.ring_answered("busy", 0.0)
    eng.enqueue("black", "billing", "blacklist", "2", 1.0)  # waited longest
    eng.enqueue("f1", "fault", "normal", "3", 50.0)
    eng.call_ended("busy", 60.0)
    assert [o.call_id for o in offers(eng.tick(70.0))] == ["f1"]


def test_blacklist_max_wait_ends_in_a_message() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("busy", "billing", "normal", "1", 0.0)
    eng.ring_answered("busy", 0.0)
    eng.enqueue("black", "billing", "blacklist", "2", 10.0)
    assert eng.next_deadline() == 310.0
    cmds = eng.tick(310.0)
    [ov] = only(cmds, Overflow)
    assert ov.destination == Destination("message", "blacklist_notice") and ov.reason == "tier_max_wait"
    [ev] = events(cmds, Kind.ACD_OVERFLOW)
    assert ev.data["wait_s"] == 300.0 and ev.tier == "blacklist"
    assert eng.call_state("black") is None


def test_aging_lifts_a_waiting_normal_caller_above_newer_priority_callers() -> None:
    tiers = [{"name": "vip"}, {"name": "priority"}, {"name": "normal", "aging_step_s": 60},
             {"name": "blacklist", "last_resort": True}]
    eng = engine({"1001": {"billing": 5}}, tiers=tiers)
    eng.enqueue("busy", "billing", "normal", "1", 0.0)
    eng.ring_answered("busy", 0.0)
    eng.enqueue("old", "billing", "normal", "2", 0.0)
    eng.enqueue("p1", "billing", "priority", "3", 30.0)
    eng.tick(60.0)  # "old" is now level with priority, and it waited longer
    eng.enqueue("p2", "billing", "priority", "4", 61.0)
    eng.call_ended("busy", 70.0)
    assert [o.call_id for o in offers(eng.tick(80.0))] == ["old"]


def test_without_aging_priority_callers_stay_ahead() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("busy", "billing", "normal", "1", 0.0)
    eng.ring_answered("busy", 0.0)
    eng.enqueue("old", "billing", "normal", "2", 0.0)
    eng.enqueue("p1", "billing", "priority", "3", 500.0)
    eng.call_ended("busy", 600.0)
    assert [o.call_id for o in offers(eng.tick(610.0))] == ["p1"]


def test_retier_keeps_wait_time() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("busy", "billing", "normal", "1", 0.0)
    eng.ring_answered("busy", 0.0)
    eng.enqueue("v1", "billing", "vip", "2", 5.0)
    eng.enqueue("n1", "billing", "normal", "3", 1.0)
    eng.enqueue("v2", "billing", "vip", "4", 20.0)
    cmds = eng.retier("n1", "vip", 30.0)
    [ev] = events(cmds, ACD_RETIER)
    assert (ev.data["previous"], ev.tier) == ("normal", "vip")
    assert eng.position("n1", 30.0).position == 1  # waited since t=1, before v1
    eng.call_ended("busy", 40.0)
    [offer] = offers(eng.tick(50.0))
    assert offer.call_id == "n1"
    [ans] = events(eng.ring_answered("n1", 52.0), Kind.ACD_ANSWER)
    assert ans.data["wait_s"] == 51.0 and ans.tier == "vip"
    with pytest.raises(UnknownTier):
        eng.retier("v1", "gold", 53.0)


def test_a_supervisors_retier_is_logged_with_who_and_the_same_tier_changes_nothing() -> None:
    eng = engine({"1001": {"billing": 5}, "1002": {"fault": 5}})
    eng.enqueue("busy", "billing", "normal", "1", 0.0)
    eng.ring_answered("busy", 0.0)
    eng.enqueue("n1", "billing", "normal", "13900000001", 1.0)
    eng.enqueue("n2", "billing", "normal", "13900000002", 2.0)
    eng.enqueue("f1", "fault", "priority", "13900000003", 3.0)  # 1002 is logged out: waits too
    eng.enqueue("v1", "billing", "vip", "13900000004", 4.0)
    assert [(c["call_id"], c["queue"], c["tier"]) for c in eng.waiting_calls(10.0)] == [
        ("v1", "billing", "vip"), ("n1", "billing", "normal"), ("n2", "billing", "normal"),
        ("f1", "fault", "priority")]  # per queue, in the order each serves them
    assert eng.waiting_calls(10.0)[1]["wait_s"] == 9.0
    assert [c["call_id"] for c in eng.waiting_calls(10.0, limit=2)] == ["n1", "n2"]  # the longest waits

    [ev] = events(eng.retier("n2", "priority", 10.0, by="2001"), ACD_RETIER)
    assert (ev.call_id, ev.queue, ev.tier, ev.data) == ("n2", "billing", "priority",
                                                       {"previous": "normal", "wait_s": 8.0, "by": "2001"})
    assert [c["call_id"] for c in eng.waiting_calls(11.0)][:3] == ["v1", "n2", "n1"]
    assert eng.retier("n2", "priority", 12.0, by="2001") == []  # already there: nothing to log
    with pytest.raises(UnknownCall):
        eng.retier("busy", "vip", 12.0)  # talking, not waiting


# ------------------------------------------------------------ VIP one-to-one

VIP_AGENTS = {"1001": {"billing": 3}, "1002": {"billing": 9, "vip_desk": 5}, "1003": {"billing": 10}}


def test_vip_goes_to_the_free_account_agent_before_better_agents() -> None:
    eng = engine(VIP_AGENTS)
    [offer] = offers(eng.enqueue("v", "billing", "vip", "1", 0.0, account_agent="1001"))
    assert offer.agent_id == "1001"
    [ev] = events(eng.enqueue("v2", "billing", "vip", "2", 0.0), Kind.ACD_OFFER)
    assert (ev.agent_id, ev.data["via"]) == ("1002", "vip_desk")  # desk before the better 1003
    [ev] = events(eng.enqueue("n", "billing", "normal", "3", 0.0), Kind.ACD_OFFER)
    assert (ev.agent_id, ev.data["via"]) == ("1003", "skill")


def test_account_agent_found_from_customer_record() -> None:
    cfg_agents = [{"id": "1001", "skills": {"billing": 3}, "dedicated_customers": ["C1"]},
                  {"id": "1003", "skills": {"billing": 10}}]
    eng = AcdEngine(config(None, agents=cfg_agents))
    for a in ("1001", "1003"):
        eng.login(a, 0.0, ready=True)
    [offer] = offers(eng.enqueue("v", "billing", "vip", "1", 1.0, customer={"id": "C1"}))
    assert offer.agent_id == "1001"


def test_vip_waits_for_a_busy_account_agent_then_desk_then_everyone() -> None:
    eng = engine(VIP_AGENTS, vip={"tier": "vip", "desk_skill": "vip_desk",
                                  "account_agent_wait_s": 8, "desk_wait_s": 6})
    eng.enqueue("x", "billing", "normal", "9", 0.0)  # 1003 takes it
    eng.enqueue("y", "billing", "normal", "8", 0.0)  # 1002
    eng.enqueue("z", "billing", "normal", "7", 0.0)  # 1001
    for c in "xyz":
        eng.ring_answered(c, 1.0)
    eng.call_ended("x", 2.0)  # 1003 wraps up until 12
    cmds = eng.enqueue("v", "billing", "vip", "1", 3.0, account_agent="1001")
    assert offers(cmds) == []
    assert offers(eng.tick(12.0)) == []  # 1003 is free at 12, but v is still for its account agent / desk
    assert eng.agent_state("1003")[0] == "available" and eng.call_state("v") == "waiting"
    eng.call_ended("y", 13.0)  # 1002 (the VIP desk) wraps up until 23
    [offer] = offers(eng.tick(17.0))  # 3 + 8 + 6: the whole skill; 1003 is free
    assert (offer.call_id, offer.agent_id) == ("v", "1003")


def test_vip_account_agent_returning_in_time_gets_the_call() -> None:
    eng = engine({"1001": {"billing": 3}, "1003": {"billing": 10}},
                 vip={"tier": "vip", "desk_skill": "vip_desk", "account_agent_wait_s": 8, "desk_wait_s": 0})
    eng.enqueue("z", "billing", "normal", "7", 0.0)
    eng.enqueue("w", "billing", "normal", "6", 0.0)
    assert (eng.call_agent("z"), eng.call_agent("w")) == ("1003", "1001")
    answer_and_finish(eng, "z", 0.5, 1.0)  # 1003 wraps up until 11
    answer_and_finish(eng, "w", 0.5, 1.5)  # 1001 until 11.5
    eng.tick(11.0)
    assert offers(eng.enqueue("v", "billing", "vip", "1", 11.2, account_agent="1001")) == []
    [offer] = offers(eng.tick(11.5))
    assert (offer.call_id, offer.agent_id) == ("v", "1001")
    [ev] = [e for e in eng.ring_answered("v", 12.0) if getattr(e, "kind", "") == Kind.ACD_ANSWER]
    assert ev.data["wait_s"] == pytest.approx(0.8)


def test_vip_does_not_wait_for_an_absent_account_agent() -> None:
    eng = engine({"1002": {"billing": 9}}, vip={"tier": "vip", "desk_skill": "vip_desk",
                                                "account_agent_wait_s": 30, "desk_wait_s": 30})
    eng.add_agent("1001", {"billing": 3})  # logged out
    [offer] = offers(eng.enqueue("v", "billing", "vip", "1", 0.0, account_agent="1001"))
    assert offer.agent_id == "1002"


def test_freed_account_agent_prefers_own_customer_among_vips() -> None:
    eng = engine({"1001": {"billing": 3}})
    eng.enqueue("busy", "billing", "normal", "0", 0.0)
    eng.ring_answered("busy", 0.0)
    eng.enqueue("v_other", "billing", "vip", "1", 1.0)
    eng.enqueue("v_own", "billing", "vip", "2", 2.0, account_agent="1001")
    eng.call_ended("busy", 5.0)
    assert [o.call_id for o in offers(eng.tick(15.0))] == ["v_own"]


# -------------------------------------------------------------------- RONA

def test_rona_sets_not_ready_and_puts_the_call_back_at_the_head_of_its_place() -> None:
    eng = engine({"1001": {"billing": 5}, "1002": {"billing": 4}})
    eng.enqueue("c1", "billing", "normal", "1", 0.0)  # -> 1001
    eng.enqueue("c2", "billing", "normal", "2", 1.0)  # -> 1002
    eng.ring_answered("c2", 2.0)
    eng.enqueue("c3", "billing", "normal", "3", 3.0)  # waits
    assert eng.next_deadline() == 12.0
    cmds = eng.tick(12.0)
    assert only(cmds, CancelOffer) == [CancelOffer("c1", "1001", "ring_timeout")]
    [rona] = events(cmds, Kind.ACD_RONA)
    assert (rona.agent_id, rona.data["ring_s"]) == ("1001", 12.0)
    assert eng.agent_state("1001") == ("not_ready", "rona")
    assert eng.position("c1", 12.0).position == 1
    eng.call_ended("c2", 20.0)
    [offer] = offers(eng.tick(30.0))
    assert (offer.call_id, offer.agent_id) == ("c1", "1002")


def test_rona_goes_straight_to_another_free_agent() -> None:
    eng = engine({"1001": {"billing": 5}, "1002": {"billing": 4}})
    eng.enqueue("c1", "billing", "normal", "1", 0.0)
    cmds = eng.ring_failed("c1", 5.0, "noanswer")
    [offer] = offers(cmds)
    assert offer.agent_id == "1002"
    [ev] = events(cmds, Kind.ACD_OFFER)
    assert ev.data["attempt"] == 2


def test_unreachable_agent_is_not_ready_unreachable() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("c1", "billing", "normal", "1", 0.0)
    eng.ring_failed("c1", 0.1, "chanunavail")
    assert eng.agent_state("1001") == ("not_ready", "unreachable")


def test_dialer_owned_timeout_drops_the_engine_guard() -> None:
    eng = engine({"1001": {"billing": 5}}, ring_guard_s=3)
    eng.enqueue("c1", "billing", "normal", "1", 0.0)
    assert eng.next_deadline() == 15.0
    eng.ring_started("c1", 0.5, timeout_owned=True)
    assert eng.agent_state("1001")[0] == "ringing"
    assert eng.next_deadline() is None
    assert eng.tick(100.0) == []
    eng.ring_answered("c1", 100.0)
    assert eng.agent_state("1001")[0] == "on_call"


# ------------------------------------------------------- abandon and callback

def test_abandon_while_ringing_frees_the_agent_for_the_next_caller() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("c1", "billing", "normal", "1", 0.0)
    eng.enqueue("c2", "billing", "normal", "2", 1.0)
    cmds = eng.abandon("c1", 3.0)
    assert only(cmds, CancelOffer) == [CancelOffer("c1", "1001", "abandon")]
    [ab] = events(cmds, Kind.ACD_ABANDON)
    assert ab.data == {"wait_s": 3.0, "where": "ringing", "redial": False}
    assert [o.call_id for o in offers(cmds)] == ["c2"]


def test_priority_abandon_after_waiting_schedules_a_callback() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("busy", "billing", "normal", "0", 0.0)
    eng.ring_answered("busy", 0.0)
    eng.enqueue("p", "billing", "priority", "13800000001", 0.0, customer={"id": "C7"})
    cmds = eng.abandon("p", 45.0)
    [cb] = only(cmds, ScheduleCallback)
    assert (cb.number, cb.skill, cb.tier, cb.due_ts, cb.reason) == ("13800000001", "billing", "priority",
                                                                     45.0 + 86400, "abandon")
    assert cb.customer == {"id": "C7"}
    [ev] = events(cmds, Kind.ACD_CALLBACK)
    assert ev.data["due_ts"] == 86445.0


def test_short_priority_abandon_and_normal_abandon_get_no_callback() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("busy", "billing", "normal", "0", 0.0)
    eng.ring_answered("busy", 0.0)
    eng.enqueue("p", "billing", "priority", "1", 0.0)
    eng.enqueue("n", "billing", "normal", "2", 0.0)
    assert only(eng.abandon("p", 5.0), ScheduleCallback) == []
    assert only(eng.abandon("n", 500.0), ScheduleCallback) == []


def test_callback_in_place_keeps_the_place_and_is_offered_as_a_callback() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("busy", "billing", "normal", "0", 0.0)
    eng.ring_answered("busy", 0.0)
    eng.enqueue("c1", "billing", "normal", "139", 1.0)
    eng.enqueue("c2", "billing", "normal", "137", 2.0)
    [ev] = events(eng.request_callback("c1", 20.0, number="02566668888"), Kind.ACD_CALLBACK)
    assert ev.data["reason"] == "in_place"
    assert eng.position("c2", 21.0).position == 2
    eng.call_ended("busy", 30.0)
    [offer] = offers(eng.tick(40.0))
    assert (offer.call_id, offer.kind, offer.number) == ("c1", "callback", "02566668888")


def test_redial_within_window_gets_the_old_place_back() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("busy", "billing", "normal", "0", 0.0)
    eng.ring_answered("busy", 0.0)
    eng.enqueue("a", "billing", "normal", "13900000000", 10.0)
    eng.enqueue("b", "billing", "normal", "13700000000", 20.0)
    eng.abandon("a", 30.0)
    [enq] = events(eng.enqueue("a2", "billing", "normal", "13900000000", 60.0), Kind.ACD_ENQUEUE)
    assert enq.data["redial"] is True and enq.data["restored_wait_s"] == 50.0
    assert enq.data["position"] == 1
    eng.call_ended("busy", 70.0)
    assert [o.call_id for o in offers(eng.tick(80.0))] == ["a2"]


def test_redial_cancels_the_automatic_callback_of_the_abandoned_call() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("busy", "billing", "normal", "0", 0.0)
    eng.ring_answered("busy", 0.0)
    eng.enqueue("p1", "billing", "priority", "13800000009", 0.0)
    assert len(only(eng.abandon("p1", 30.0), ScheduleCallback)) == 1
    cmds = eng.enqueue("p2", "billing", "priority", "13800000009", 40.0)
    assert only(cmds, CancelCallback) == [CancelCallback("p1", "p2", "redial")]
    # a second give-up schedules a fresh callback, which a later redial cancels in turn
    assert [c.call_id for c in only(eng.abandon("p2", 60.0), ScheduleCallback)] == ["p2"]
    assert only(eng.enqueue("p3", "billing", "priority", "13800000009", 70.0), CancelCallback) == [
        CancelCallback("p2", "p3", "redial")]


def test_redial_after_the_window_joins_at_the_back() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("busy", "billing", "normal", "0", 0.0)
    eng.ring_answered("busy", 0.0)
    eng.enqueue("a", "billing", "normal", "139", 10.0)
    eng.enqueue("b", "billing", "normal", "137", 20.0)
    eng.abandon("a", 30.0)
    [enq] = events(eng.enqueue("a2", "billing", "normal", "139", 151.0), Kind.ACD_ENQUEUE)
    assert "redial" not in enq.data and enq.data["position"] == 2


# ----------------------------------------------------- escalation / overflow

def test_escalation_widens_to_lower_proficiency_then_other_skills() -> None:
    eng = engine({"1001": {"fault": 3}, "1002": {"billing": 8}},
                 queues={"fault": {"min_proficiency": 5, "escalation": [
                     {"after_s": 30, "min_proficiency": 2}, {"after_s": 90, "add_skills": ["billing"]}]}})
    eng.set_not_ready("1001", "break", 0.0)
    assert offers(eng.enqueue("f", "fault", "normal", "1", 0.0)) == []
    eng.set_ready("1001", 10.0)
    assert eng.call_state("f") == "waiting"  # proficiency 3 < 5
    [offer] = offers(eng.tick(30.0))
    assert offer.agent_id == "1001"
    eng.ring_failed("f", 40.0)  # RONA: 1001 not ready
    [ev] = events(eng.tick(90.0), Kind.ACD_OFFER)
    assert (ev.agent_id, ev.data["via"]) == ("1002", "escalated")


def test_queue_full_is_blocked_or_sent_to_the_overflow_queue() -> None:
    eng = engine({"1001": {"billing": 5, "fault": 5}},
                 queues={"billing": {"max_waiting": 2, "overflow": {"kind": "queue", "target": "fault"}},
                         "fault": {"max_waiting": 1, "overflow": {"kind": "voicemail", "target": "800"}}})
    eng.enqueue("c0", "billing", "normal", "0", 0.0)  # rung
    eng.enqueue("c1", "billing", "normal", "1", 0.0)  # billing now holds 2
    cmds = eng.enqueue("c2", "billing", "normal", "2", 0.0)
    [ov] = events(cmds, Kind.ACD_OVERFLOW)
    assert (ov.queue, ov.data["target"], ov.data["reason"]) == ("billing", "queue:fault", "full")
    [enq] = events(cmds, Kind.ACD_ENQUEUE)
    assert enq.queue == "fault"
    cmds = eng.enqueue("c3", "billing", "normal", "3", 0.0)
    [blk] = only(cmds, Blocked)
    assert blk == Blocked("c3", "full", Destination("voicemail", "800"))
    assert [e.data["reason"] for e in events(cmds, Kind.ACD_BLOCKED)] == ["full"]


def test_past_max_wait_overflows_to_callback() -> None:
    eng = engine({"1001": {"fault": 5}},
                 queues={"fault": {"max_wait_s": 600, "overflow": {"kind": "callback"}}})
    eng.enqueue("busy", "fault", "normal", "0", 0.0)
    eng.ring_answered("busy", 0.0)
    eng.enqueue("c1", "fault", "normal", "138", 5.0)
    cmds = eng.tick(605.0)
    [ov] = only(cmds, Overflow)
    assert ov.destination.kind == "callback" and ov.reason == "max_wait"
    [cb] = only(cmds, ScheduleCallback)
    assert cb.number == "138" and cb.due_ts == 605.0 + 86400


def test_max_wait_during_a_ring_applies_when_the_agent_fails() -> None:
    eng = engine({"1001": {"fault": 5}}, queues={"fault": {"max_wait_s": 10}})
    eng.enqueue("c1", "fault", "normal", "1", 0.0)
    eng.ring_started("c1", 0.0, timeout_owned=True)
    assert eng.tick(11.0) == []
    cmds = eng.ring_failed("c1", 12.0)
    assert [o.reason for o in only(cmds, Overflow)] == ["max_wait"]


def test_no_agents_logged_in_is_blocked() -> None:
    eng = engine({"1001": {"fault": 5}}, ready=False)
    cmds = eng.enqueue("c1", "billing", "normal", "1", 0.0)
    assert [b.reason for b in only(cmds, Blocked)] == ["no_agents"]
    assert eng.call_state("c1") is None


# ------------------------------------------------------------------ calendar

SH = ZoneInfo("Asia/Shanghai")


def ts(*args: int) -> float:
    return dt.datetime(*args, tzinfo=SH).timestamp()


CAL = {"timezone": "Asia/Shanghai", "holidays": ["2026-10-05"], "workdays": ["2026-10-10"],
       "hours": {"office": {"on_working_days": ["08:00-12:00", "13:30-18:00"]}}}


@pytest.mark.parametrize(("when", "is_open"), [
    (ts(2026, 11, 23, 9, 0), True),  # Monday morning
    (ts(2026, 11, 23, 12, 30), False),  # lunch
    (ts(2026, 11, 23, 17, 59), True),
    (ts(2026, 11, 23, 18, 0), False),
    (ts(2026, 10, 5, 9, 0), False),  # a Monday, but a holiday
    (ts(2026, 10, 10, 10, 0), True),  # a Saturday make-up workday
    (ts(2026, 10, 17, 10, 0), False),  # an ordinary Saturday
])
def test_calendar(when: float, is_open: bool) -> None:
    eng = engine({"1001": {"billing": 5}}, calendar=CAL,
                 queues={"billing": {"hours": "office", "closed": {"kind": "voicemail", "target": "office"}}})
    cmds = eng.enqueue("c1", "billing", "normal", "1", when)
    if is_open:
        assert offers(cmds)
    else:
        assert only(cmds, Blocked) == [Blocked("c1", "closed", Destination("voicemail", "office"))]
        [ev] = events(cmds, Kind.ACD_BLOCKED)
        assert ev.data["reason"] == "closed"


# ---------------------------------------------------------- position / EWT

def test_position_and_estimated_wait_follow_live_handle_times() -> None:
    eng = engine({"1001": {"billing": 5}, "1002": {"billing": 5}},
                 queues={"billing": {"handle_time_s": 100, "wrap_up_s": 0}})
    for i in range(5):
        eng.enqueue(f"c{i}", "billing", "normal", str(i), float(i))
    eng.enqueue("v", "billing", "vip", "9", 10.0)
    pos = eng.position("c4", 10.0)
    assert (pos.position, pos.waiting) == (4, 6)  # v, c2, c3 are ahead; c0, c1 are ringing
    assert pos.est_wait_s == 4 * 100 / 2
    assert eng.position("v", 10.0).position == 1
    eng.ring_answered("c0", 11.0)
    eng.call_ended("c0", 311.0)  # a 300 s call lifts the average
    assert eng.handle_time("billing") == pytest.approx(100 + 0.1 * 200)


def test_agents_on_a_break_do_not_shorten_the_estimated_wait() -> None:
    eng = engine({"1001": {"billing": 5}, "1002": {"billing": 5}, "1003": {"billing": 5}},
                 queues={"billing": {"handle_time_s": 120}})
    for i in range(4):
        eng.enqueue(f"c{i}", "billing", "normal", str(i), float(i))
    eng.set_not_ready("1003", "lunch", 5.0)  # was ringing c2: takes effect after that call
    assert eng.position("c3", 5.0).est_wait_s == 120 / 3
    eng.ring_failed("c2", 6.0)  # 1003 did not answer: not ready (rona)
    assert eng.position("c2", 6.0).est_wait_s == 120 / 2
    assert eng.position("c3", 6.0).est_wait_s == 2 * 120 / 2


def test_position_unknown_when_nobody_is_staffed() -> None:
    eng = engine({"1001": {"billing": 5}}, queues={"billing": {"block_when_no_agents": False}}, ready=False)
    eng.enqueue("c1", "billing", "normal", "1", 0.0)
    assert eng.position("c1", 1.0).est_wait_s is None


# -------------------------------------------------------------------- errors

def test_bad_inputs_raise_clear_errors_and_change_nothing() -> None:
    eng = engine({"1001": {"billing": 5}})
    with pytest.raises(UnknownSkill):
        eng.enqueue("c1", "gardening", "normal", "1", 0.0)
    with pytest.raises(UnknownTier):
        eng.enqueue("c1", "billing", "gold", "1", 0.0)
    eng.enqueue("c1", "billing", "normal", "1", 0.0)
    with pytest.raises(DuplicateCall):
        eng.enqueue("c1", "billing", "normal", "1", 0.0)
    with pytest.raises(UnknownCall):
        eng.abandon("nope", 1.0)
    with pytest.raises(UnknownAgent):
        eng.login("9999", 1.0)
    with pytest.raises(AcdError, match="offered, not talking"):
        eng.call_ended("c1", 1.0)
    with pytest.raises(AcdError, match="reason"):
        eng.set_not_ready("1001", "", 1.0)
    assert eng.call_state("c1") == "offered" and eng.agent_state("1001")[0] == "reserved"


def test_tier_from_customer_rules_when_not_given() -> None:
    eng = engine({"1001": {"billing": 5}}, tier_rules=[
        {"tier": "blacklist", "all": [{"field": "flags.blacklisted", "op": "eq", "value": True}]},
        {"tier": "vip", "any": [{"field": "category", "op": "in", "value": ["hospital"]}]}])
    cmds = eng.enqueue("c1", "billing", None, "1", 0.0, customer={"category": "hospital"})
    assert events(cmds, Kind.ACD_ENQUEUE)[0].tier == "vip"
    cmds = eng.enqueue("c2", "billing", None, "2", 0.0, customer={"flags": {"blacklisted": True}})
    assert events(cmds, Kind.ACD_ENQUEUE)[0].tier == "blacklist"
    cmds = eng.enqueue("c3", "billing", None, "3", 0.0, customer={"category": 7})
    assert events(cmds, Kind.ACD_ENQUEUE)[0].tier == "normal"


def test_same_inputs_give_the_same_outputs() -> None:
    def run() -> list[tuple[str, str | None, str | None]]:
        eng = engine({str(1000 + i): {"billing": 1 + i % 9, "fault": 9 - i % 9} for i in range(6)})
        out = []
        for i in range(30):
            out += eng.enqueue(f"c{i}", "billing" if i % 3 else "fault",
                               ["vip", "normal", "blacklist"][i % 3], str(i), float(i))
        for t in range(30, 400, 7):
            out += eng.tick(float(t))
            for a in eng.agent_ids():
                c = eng.agent_call(a)
                if c and eng.call_state(c) == "offered":
                    out += eng.ring_answered(c, float(t))
                elif c and eng.call_state(c) == "talking":
                    out += eng.call_ended(c, float(t))
        return [(e.kind, e.call_id, e.agent_id) for e in events(out)] + [
            (o.call_id, o.agent_id, o.kind) for o in offers(out)]
    assert run() == run()


# ------------------------------------------------------ withdraw / snapshots

def test_withdraw_frees_the_ringing_agent_and_logs_an_overflow_not_an_abandon() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("c1", "billing", "normal", "1", 0.0)
    eng.enqueue("c2", "billing", "normal", "2", 1.0)
    cmds = eng.withdraw("c1", 2.0, "cti_error")
    assert only(cmds, CancelOffer) == [CancelOffer("c1", "1001", "cti_error")]
    [ov] = events(cmds, Kind.ACD_OVERFLOW)
    assert (ov.data["target"], ov.data["reason"], ov.data["wait_s"]) == ("fallback", "cti_error", 2.0)
    assert events(cmds, Kind.ACD_ABANDON) == []
    assert [o.call_id for o in offers(cmds)] == ["c2"]
    with pytest.raises(UnknownCall):
        eng.withdraw("c1", 3.0, "again")


def test_take_timeout_drops_the_guard_but_keeps_the_agent_reserved() -> None:
    eng = engine({"1001": {"billing": 5}}, ring_guard_s=3)
    eng.enqueue("c1", "billing", "normal", "1", 0.0)
    eng.take_timeout("c1")
    assert eng.next_deadline() is None and eng.agent_state("1001")[0] == "reserved"
    eng.ring_started("c1", 20.0)
    assert eng.agent_state("1001")[0] == "ringing"


def test_snapshots_for_the_wallboard() -> None:
    eng = engine({"1001": {"billing": 5}, "1002": {"fault": 5}})
    eng.enqueue("busy", "billing", "normal", "0", 0.0)
    eng.enqueue("v", "billing", "vip", "1", 5.0)
    eng.enqueue("n", "billing", "normal", "2", 6.0)
    eng.request_callback("n", 7.0)
    eng.set_not_ready("1002", "lunch", 8.0)
    q = eng.queues_snapshot(10.0)["billing"]
    assert q == {"waiting": 2, "by_tier": {"vip": 1, "normal": 1}, "longest_wait_s": 5.0,
                 "callbacks_in_place": 1, "ringing": 1, "staffed": 1, "serving": 1, "available": 0,
                 "handle_time_s": 100.0}
    agents = {a["agent_id"]: a for a in eng.agents_snapshot(10.0)}
    assert (agents["1001"]["state"], agents["1001"]["call_id"]) == ("reserved", "busy")
    assert (agents["1002"]["state"], agents["1002"]["reason"], agents["1002"]["in_state_s"]) == (
        "not_ready", "lunch", 2.0)


def test_account_agent_by_the_configured_customer_key() -> None:
    cfg_agents = [{"id": "1001", "skills": {"billing": 3}, "dedicated_customers": ["9100000001"]},
                  {"id": "1003", "skills": {"billing": 10}}]
    eng = AcdEngine(config(None, agents=cfg_agents, customer_id_field="account"))
    for a in ("1001", "1003"):
        eng.login(a, 0.0, ready=True)
    cmds = eng.enqueue("v", "billing", "vip", "1", 1.0, customer={"account": "9100000001", "name": "张建国"})
    assert offers(cmds)[0].agent_id == "1001"
    assert events(cmds, Kind.ACD_ENQUEUE)[0].data["customer"] == "9100000001"


def test_escalation_can_move_the_caller_to_another_queue_keeping_the_wait() -> None:
    eng = engine({"1001": {"billing": 5}, "1002": {"fault": 5}},
                 queues={"fault": {"escalation": [{"after_s": 60, "move_to": "billing"}]}})
    eng.set_not_ready("1002", "training", 0.0)  # fault is staffed but nobody takes calls
    eng.enqueue("b1", "billing", "normal", "0", 0.0)
    eng.ring_answered("b1", 0.0)
    eng.enqueue("b2", "billing", "normal", "9", 5.0)  # waits in billing since t=5
    eng.enqueue("x", "fault", "normal", "1", 1.0)
    eng.enqueue("y", "fault", "normal", "2", 2.0)
    cmds = eng.tick(61.0)
    [ov] = events(cmds, Kind.ACD_OVERFLOW)
    assert (ov.call_id, ov.data["target"], ov.data["reason"]) == ("x", "queue:billing", "escalation")
    assert eng.position("x", 61.0).position == 1  # waited since t=1: ahead of b2
    eng.call_ended("b1", 70.0)
    assert [o.call_id for o in offers(eng.tick(80.0))] == ["x"]
    assert (eng.waiting_count("fault"), eng.waiting_count("billing")) == (0, 2)  # y moved at 62 too


def test_vip_without_account_agent_waits_for_the_desk_only_while_desk_agents_work() -> None:
    vip = {"tier": "vip", "desk_skill": "vip_desk", "account_agent_wait_s": 8, "desk_wait_s": 6}
    eng = engine({"1002": {"billing": 9, "vip_desk": 5}, "1003": {"billing": 10}}, vip=vip)
    eng.enqueue("y", "billing", "normal", "8", 0.0)  # 1003 (best proficiency) takes it
    eng.enqueue("z", "billing", "normal", "9", 0.0)  # 1002
    eng.ring_answered("z", 0.5)
    eng.ring_answered("y", 0.5)
    eng.call_ended("y", 1.0)  # 1003 wraps up until 11
    assert offers(eng.enqueue("v", "billing", "vip", "1", 2.0)) == []  # desk only: until 2 + 6
    assert offers(eng.tick(7.9)) == []
    [offer] = offers(eng.tick(11.0))  # the whole skill since 8: 1003 back from wrap-up at 11
    assert (offer.call_id, offer.agent_id) == ("v", "1003")
    eng.ring_answered("v", 11.5)  # 1003 busy again
    eng.set_not_ready("1002", "break", 12.0)  # pending: 1002 is still talking to z
    eng.call_ended("z", 13.0)
    eng.tick(23.0)
    assert eng.agent_state("1002") == ("not_ready", "break")
    eng.enqueue("v2", "billing", "vip", "2", 24.0)
    assert eng._calls["v2"].phase == 2  # the only desk agent is on a break: no desk-only wait
    eng.set_ready("1002", 25.0)
    assert eng.call_agent("v2") == "1002"


# --- callbacks held by the outbound side ---------------------------------------------------------

def test_request_callback_asks_the_outbound_side_for_a_durable_record() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("busy", "billing", "normal", "0", 0.0)
    eng.ring_answered("busy", 0.0)
    eng.enqueue("c1", "billing", "priority", "13900000001", 5.0)
    [sched] = only(eng.request_callback("c1", 20.0), ScheduleCallback)
    assert (sched.call_id, sched.number, sched.reason, sched.tier, sched.place_ts) == (
        "c1", "13900000001", "in_place", "priority", 5.0)
    assert sched.due_ts == 20.0 + eng.cfg.callback_due_s


def test_a_scheduled_callback_waits_with_its_place_and_is_offered_as_a_callback() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("busy", "billing", "normal", "0", 0.0)
    eng.ring_answered("busy", 0.0)
    eng.enqueue("live", "billing", "normal", "13900000002", 10.0)
    # a callback whose place (5.0) is older than the live caller's (10.0), same tier: it goes first
    [enq] = events(eng.enqueue_callback("cb-1-1", "billing", "normal", "13900000001", 20.0, place_ts=5.0,
                                        reason="abandon"), Kind.ACD_ENQUEUE)
    assert (enq.data["kind"], enq.data["reason"], enq.data["position"]) == ("callback", "abandon", 1)
    assert eng.position("live", 21.0).position == 2
    [offer] = offers(eng.call_ended("busy", 30.0) + eng.tick(40.0))
    assert (offer.call_id, offer.kind, offer.number) == ("cb-1-1", "callback", "13900000001")
    [ev] = events(eng.ring_answered("cb-1-1", 41.0), Kind.ACD_ANSWER)
    assert ev.data["kind"] == "callback"
    [done] = events(eng.call_ended("cb-1-1", 100.0, outcome="answered"), Kind.ACD_COMPLETE)
    assert (done.data["kind"], done.data["outcome"]) == ("callback", "answered")


def test_a_callback_ignores_the_door_and_max_wait_but_not_a_closed_queue() -> None:
    closed_cal = {"timezone": "UTC", "hours": {"shut": {}}}
    eng = engine({"1001": {"billing": 5}}, ready=False,
                 queues={"billing": {"max_waiting": 1, "max_wait_s": 10, "block_when_no_agents": True,
                                     "overflow": {"kind": "callback"}},
                         "fault": {"hours": "shut", "closed": {"kind": "voicemail", "target": "vm"}}},
                 calendar=closed_cal)
    # nobody logged in and the queue full: a live caller is turned away, callbacks still wait
    assert only(eng.enqueue("live", "billing", "normal", "13900000009", 0.0), Blocked)
    for n in (1, 2):
        cmds = eng.enqueue_callback(f"cb-{n}-1", "billing", "normal", f"1390000000{n}", 0.0)
        assert not only(cmds, Blocked) and eng.call_state(f"cb-{n}-1") == "waiting"
    assert not only(eng.tick(1000.0), Overflow) and eng.call_state("cb-1-1") == "waiting"
    assert eng.queue_open("fault", 0.0) is False
    with pytest.raises(QueueClosed):
        eng.enqueue_callback("cb-5-1", "fault", "normal", "13900000005", 0.0)
    with pytest.raises(AcdError):
        eng.enqueue_callback("cb-3-1", "billing", "normal", "", 0.0)


def test_hold_time_is_reported_apart_from_talk() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("c1", "billing", "normal", "139", 0.0)
    eng.ring_answered("c1", 10.0)
    [done] = events(eng.call_ended("c1", 110.0, hold_s=25.0), Kind.ACD_COMPLETE)
    assert (done.data["talk_s"], done.data["hold_s"]) == (75.0, 25.0)
    eng.tick(1000.0)
    eng.enqueue("c2", "billing", "normal", "139", 1000.0)
    eng.ring_answered("c2", 1000.0)
    [done] = events(eng.call_ended("c2", 1010.0, hold_s=99.0), Kind.ACD_COMPLETE)  # never more than connected
    assert (done.data["talk_s"], done.data["hold_s"]) == (0.0, 10.0)


def test_calling_again_while_a_callback_keeps_the_place_takes_that_place_in_person() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("busy", "billing", "normal", "0", 0.0)
    eng.ring_answered("busy", 0.0)
    eng.enqueue("c1", "billing", "normal", "13900000001", 10.0)
    eng.enqueue("c2", "billing", "normal", "13900000002", 20.0)
    eng.request_callback("c1", 30.0)
    cmds = eng.enqueue("c3", "billing", "normal", "13900000001", 100.0)  # c1's customer calls again
    [cancel] = only(cmds, CancelCallback)
    assert (cancel.call_id, cancel.by_call_id, cancel.reason) == ("c1", "c3", "redial")
    assert eng.call_state("c1") is None
    assert eng.position("c3", 100.0).position == 1  # c1's place (10.0), ahead of c2 (20.0)
    [enq] = events(cmds, Kind.ACD_ENQUEUE)
    assert enq.data["redial"] is True and enq.data["restored_wait_s"] == 90.0
    # a scheduled callback (its own id in the ACD) is taken over the same way
    eng.enqueue_callback("cb-7-1", "billing", "priority", "13900000005", 110.0, place_ts=5.0)
    [cancel] = only(eng.enqueue("c4", "billing", "normal", "13900000005", 120.0), CancelCallback)
    assert cancel.call_id == "cb-7-1" and eng.call_state("cb-7-1") is None


def test_a_consultation_leg_is_marked_in_its_enqueue_event() -> None:
    eng = engine({"1001": {"billing": 5}}, ready=False)
    eng.login("1001", 0.0, ready=False)
    [enq] = events(eng.enqueue("c1-x", "billing", "normal", "139", 0.0, kind="consult"), Kind.ACD_ENQUEUE)
    assert enq.data["kind"] == "consult"
    [enq] = events(eng.enqueue("c2", "billing", "normal", "138", 0.0), Kind.ACD_ENQUEUE)
    assert "kind" not in enq.data


def test_the_longest_wait_is_of_callers_on_the_line_not_of_callbacks() -> None:
    eng = engine({"1001": {"billing": 5}}, ready=False)
    eng.login("1001", 0.0, ready=False)
    eng.enqueue_callback("cb-1-1", "billing", "priority", "13900000001", 0.0)
    eng.enqueue("live", "billing", "normal", "13900000002", 3000.0)
    q = eng.queues_snapshot(3030.0)["billing"]
    assert (q["longest_wait_s"], q["waiting"], q["callbacks_in_place"]) == (30.0, 2, 1)


def test_callbacks_never_overflow_by_max_wait_and_leave_nothing_stale_when_taken_over() -> None:
    eng = engine({"1001": {"billing": 5}, "1002": {"fault": 5}}, ready=False,
                 queues={"billing": {"max_wait_s": 10, "overflow": {"kind": "queue", "target": "fault"}}})
    eng.login("1001", 0.0, ready=False)
    eng.login("1002", 0.0, ready=False)
    eng.enqueue("c1", "billing", "normal", "13900000001", 0.0)
    eng.request_callback("c1", 1.0)
    eng.enqueue_callback("cb-2-1", "billing", "normal", "13900000002", 2.0)
    eng.tick(20.0)  # billing's max wait does not apply to callbacks: both stay in billing
    assert eng.call_state("c1") == "waiting" and eng._calls["c1"].skill == "billing"
    [cancel] = only(eng.enqueue("c3", "billing", "normal", "13900000001", 30.0), CancelCallback)
    assert cancel.call_id == "c1"
    assert eng._kept == {("13900000002", "billing"): eng._calls["cb-2-1"]}  # nothing stale left behind


def test_the_first_login_row_has_no_epoch_for_a_duration() -> None:
    """The agent.state row of a login used to carry `now - 0`, i.e. the epoch, as the time logged out.
    Unknown before the first login this engine saw; from a logout it saw, the real time logged out."""
    eng = engine({"1001": {"billing": 5}}, ready=False)
    now = 1_700_000_000.0
    assert eng.agents_snapshot(now)[0]["in_state_s"] is None
    cmds = eng.login("1001", now)
    cmds += eng.set_ready("1001", now + 12.5)
    cmds += eng.logout("1001", now + 20.0)
    cmds += eng.login("1001", now + 80.0)
    assert [(e.data["previous"], e.data["duration_s"]) for e in events(cmds, Kind.AGENT_STATE)] == [
        ("logged_out", None), ("not_ready", 12.5), ("available", 7.5), ("logged_out", 60.0)]
    assert eng.agents_snapshot(now + 81.0)[0]["in_state_s"] == 1.0


# ------------------------------------------------------------ back from a transfer

def test_a_caller_back_from_a_failed_transfer_goes_to_the_agent_still_wrapping_them_up() -> None:
    """Item 19: the transferring agent is in wrap-up for this very caller; the conversation resumes with
    them at once, ahead of a VIP who waits in their queue (that VIP is not their caller)."""
    eng = engine({"1001": {"billing": 5}, "1002": {"billing": 9}})
    eng.enqueue("c", "billing", "normal", "13900000001", 0.0)  # 1002 (better) takes it
    eng.ring_answered("c", 1.0)
    eng.call_ended("c", 30.0)  # 1002 transferred the caller away: wrap-up
    eng.enqueue("busy", "billing", "normal", "2", 30.0)
    eng.ring_answered("busy", 31.0)  # 1001 is on another call
    eng.enqueue("v", "billing", "vip", "13900000009", 32.0)  # a VIP waits
    cmds = eng.enqueue("c", "billing", "normal", "13900000001", 33.0, kind="return", prefer_agent="1002")
    [offer] = offers(cmds)
    assert offer.agent_id == "1002" and offer.call_id == "c"
    [ev] = events(cmds, Kind.ACD_OFFER)
    assert ev.data["via"] == "return"
    [enq] = events(cmds, Kind.ACD_ENQUEUE)
    assert enq.data["kind"] == "return"
    assert [(e.data["previous"], e.data["state"]) for e in events(cmds, Kind.AGENT_STATE)] == [
        ("wrap_up", "available"), ("available", "reserved")]
    assert eng.call_state("v") == "waiting"


def test_a_caller_back_from_a_failed_transfer_waits_for_whoever_is_free_first() -> None:
    eng = engine({"1001": {"billing": 5}, "1002": {"billing": 9}})
    eng.enqueue("c", "billing", "normal", "1", 0.0)
    eng.ring_answered("c", 1.0)  # 1002
    eng.enqueue("other", "billing", "normal", "2", 2.0)
    eng.ring_answered("other", 3.0)  # 1001
    eng.call_ended("c", 10.0)
    eng.set_ready("1002", 11.0)
    eng.enqueue("next", "billing", "normal", "3", 11.5)
    eng.ring_answered("next", 12.0)  # 1002 took someone else meanwhile: both agents busy
    assert offers(eng.enqueue("c", "billing", "normal", "1", 13.0, kind="return", prefer_agent="1002")) == []
    [offer] = offers(eng.call_ended("other", 20.0) + eng.tick(20.0 + 10))  # 1001 frees first: it's theirs
    assert (offer.call_id, offer.agent_id) == ("c", "1001")


def test_a_caller_back_to_an_agent_on_a_break_or_who_does_not_answer_is_an_ordinary_caller() -> None:
    eng = engine({"1001": {"billing": 5}, "1002": {"billing": 9}})
    eng.enqueue("c", "billing", "normal", "1", 0.0)
    eng.ring_answered("c", 1.0)  # 1002
    eng.call_ended("c", 10.0)
    eng.set_not_ready("1002", "break", 11.0)
    [offer] = offers(eng.enqueue("c", "billing", "normal", "1", 12.0, kind="return", prefer_agent="1002"))
    assert offer.agent_id == "1001"  # not held for an agent on a break
    eng.ring_failed("c", 14.0)

    eng2 = engine({"1001": {"billing": 5}, "1002": {"billing": 9}})
    eng2.enqueue("c", "billing", "normal", "1", 0.0)
    eng2.ring_answered("c", 1.0)  # 1002
    eng2.enqueue("x", "billing", "normal", "2", 2.0)
    eng2.ring_answered("x", 3.0)  # 1001 busy
    eng2.call_ended("c", 10.0)
    [offer] = offers(eng2.enqueue("c", "billing", "normal", "1", 12.0, kind="return", prefer_agent="1002"))
    assert offer.agent_id == "1002"
    eng2.ring_failed("c", 24.0)  # 1002 did not pick up: RONA, and the caller is their queue's now
    eng2.set_ready("1002", 25.0)
    assert eng2.call_state("c") == "offered" and eng2.call_agent("c") == "1002"  # longest wait, any agent
    assert [e.data["via"] for e in events(eng2.ring_failed("c", 37.0), Kind.ACD_OFFER)] == []
    [offer] = offers(eng2.call_ended("x", 40.0) + eng2.tick(50.0))
    assert (offer.agent_id, offer.call_id) == ("1001", "c")
