"""An agent's phone busy outside the ACD, or unregistered (engine.device_state), on hand-driven time."""

from __future__ import annotations

import pytest

from ctiserver.acd.model import AcdError, IllegalTransition
from ctiserver.events import Kind

from .helpers import engine, events, offers


def states(cmds: list) -> list[tuple[str, str, str | None]]:
    return [(e.data["previous"], e.data["state"], e.data["reason"]) for e in events(cmds, Kind.AGENT_STATE)]


def test_an_agent_busy_outside_the_acd_is_skipped_and_shown_on_call_direct() -> None:
    eng = engine({"1001": {"billing": 5}, "1002": {"billing": 5}})
    cmds = eng.device_state("1001", "busy", 1.0)  # 1001 is the longest idle (config order breaks the tie)
    assert states(cmds) == [("available", "on_call", "direct")]
    assert eng.agent_state("1001") == ("on_call", "direct")
    snap = {a["agent_id"]: a for a in eng.agents_snapshot(1.0)}
    assert snap["1001"]["device"] == "busy" and snap["1001"]["call_id"] is None
    assert eng.queues_snapshot(1.0)["billing"]["available"] == 1
    assert [(o.call_id, o.agent_id) for o in offers(eng.enqueue("c1", "billing", "normal", "138", 2.0))] == \
        [("c1", "1002")]


def test_the_freed_agent_gets_the_caller_who_waited() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.device_state("1001", "busy", 1.0)
    assert offers(eng.enqueue("c1", "billing", "normal", "138", 2.0)) == []
    assert eng.call_state("c1") == "waiting"
    assert eng.device_state("1001", "busy", 3.0) == []  # the same state again changes nothing
    cmds = eng.device_state("1001", "free", 7.0)
    assert [(o.call_id, o.agent_id) for o in offers(cmds)] == [("c1", "1001")]
    ev = events(cmds, Kind.AGENT_STATE)
    assert (ev[0].data["previous"], ev[0].data["previous_reason"], ev[0].data["state"], ev[0].data["duration_s"]) == \
        ("on_call", "direct", "available", 6.0)
    assert eng.agent_state("1001") == ("reserved", None)


def test_ties_go_to_the_agent_idle_longest_since_their_phone_was_freed() -> None:
    eng = engine({"1001": {"billing": 5}, "1002": {"billing": 5}})
    eng.device_state("1001", "busy", 1.0)
    eng.device_state("1002", "busy", 2.0)
    eng.device_state("1002", "free", 5.0)
    eng.device_state("1001", "free", 10.0)
    assert [o.agent_id for o in offers(eng.enqueue("c1", "billing", "normal", "138", 12.0))] == ["1002"]
    assert [o.agent_id for o in offers(eng.enqueue("c2", "billing", "normal", "139", 12.5))] == ["1001"]


def test_busy_during_wrap_up_keeps_the_wrap_up_then_on_call_direct_until_free() -> None:
    eng = engine({"1001": {"billing": 5}})  # wrap_up_s 10
    eng.enqueue("c1", "billing", "normal", "138", 1.0)
    eng.ring_answered("c1", 2.0)
    eng.call_ended("c1", 5.0)
    eng.device_state("1001", "free", 5.1)  # the ACD call's hang-up
    assert eng.device_state("1001", "busy", 6.0) == []  # the agent dials out while wrapping up
    assert eng.agent_state("1001") == ("wrap_up", None)
    assert offers(eng.enqueue("c2", "billing", "normal", "139", 7.0)) == []
    cmds = eng.tick(15.0)  # wrap-up over: the phone is still busy
    assert states(cmds) == [("wrap_up", "on_call", "direct")] and offers(cmds) == []
    cmds = eng.device_state("1001", "free", 20.0)
    assert [(o.call_id, o.agent_id) for o in offers(cmds)] == [("c2", "1001")]


def test_the_acds_own_offer_and_call_are_not_counted_twice() -> None:
    eng = engine({"1001": {"billing": 5}}, queue_defaults={"wrap_up_s": 0, "handle_time_s": 100})
    cmds = eng.enqueue("c1", "billing", "normal", "138", 1.0)
    cmds += eng.device_state("1001", "busy", 1.1)  # ringing for the ACD's offer
    cmds += eng.ring_started("c1", 1.2)
    cmds += eng.ring_answered("c1", 2.0)
    cmds += eng.call_ended("c1", 5.0)  # no wrap-up: available, but the phone has not hung up yet
    assert states(cmds) == [("available", "reserved", None), ("reserved", "ringing", None),
                            ("ringing", "on_call", None), ("on_call", "wrap_up", None),
                            ("wrap_up", "available", None)]
    assert eng.agent_state("1001") == ("available", None)
    assert offers(eng.enqueue("c2", "billing", "normal", "139", 5.01)) == []  # not rung mid hang-up
    assert eng.queues_snapshot(5.01)["billing"]["available"] == 0
    cmds = eng.device_state("1001", "free", 5.05)
    assert states(cmds) == [("available", "reserved", None)]
    assert [(o.call_id, o.agent_id) for o in offers(cmds)] == [("c2", "1001")]


def test_a_caller_who_left_mid_ring_frees_the_agent_when_the_phone_stops_ringing() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.enqueue("c1", "billing", "normal", "138", 1.0)
    eng.device_state("1001", "busy", 1.1)
    eng.abandon("c1", 2.0)
    assert eng.agent_state("1001") == ("available", None)
    assert offers(eng.enqueue("c2", "billing", "normal", "139", 2.01)) == []
    assert [o.agent_id for o in offers(eng.device_state("1001", "free", 2.1))] == ["1001"]


def test_an_unregistered_phone_makes_the_agent_not_ready_until_it_registers() -> None:
    eng = engine({"1001": {"billing": 5}})
    cmds = eng.device_state("1001", "unavailable", 1.0)
    assert states(cmds) == [("available", "not_ready", "unregistered")]
    assert offers(eng.enqueue("c1", "billing", "normal", "138", 2.0)) == []
    assert eng.set_ready("1001", 3.0) == []  # ready while it is unregistered changes nothing
    assert eng.agent_state("1001") == ("not_ready", "unregistered")
    cmds = eng.device_state("1001", "free", 4.0)
    assert states(cmds)[0] == ("not_ready", "available", None)
    assert [o.agent_id for o in offers(cmds)] == ["1001"]


def test_a_break_is_kept_when_the_phone_unregisters_and_ready_then_says_unregistered() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.set_not_ready("1001", "lunch", 1.0)
    assert eng.device_state("1001", "unavailable", 2.0) == []
    assert eng.agent_state("1001") == ("not_ready", "lunch")
    eng.set_ready("1001", 3.0)
    assert eng.agent_state("1001") == ("not_ready", "unregistered")
    # registered and at once in a call of its own: on_call direct, not offered
    cmds = eng.device_state("1001", "busy", 4.0)
    assert states(cmds) == [("not_ready", "on_call", "direct")]


def test_a_break_asked_for_during_a_direct_call_starts_when_the_phone_is_free() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.device_state("1001", "busy", 1.0)
    assert eng.set_not_ready("1001", "lunch", 2.0) == []
    eng.enqueue("c1", "billing", "normal", "138", 3.0)
    cmds = eng.device_state("1001", "free", 4.0)
    assert states(cmds) == [("on_call", "not_ready", "lunch")] and offers(cmds) == []


def test_logout_during_a_direct_call_but_not_during_an_acd_call() -> None:
    eng = engine({"1001": {"billing": 5}, "1002": {"billing": 5}})
    eng.device_state("1001", "busy", 1.0)
    assert states(eng.logout("1001", 2.0)) == [("on_call", "logged_out", None)]
    eng.enqueue("c1", "billing", "normal", "138", 3.0)
    eng.ring_answered("c1", 4.0)
    with pytest.raises(IllegalTransition):
        eng.logout("1002", 5.0)
    with pytest.raises(AcdError):
        eng.device_state("1002", "sleepy", 5.0)


def test_login_with_a_busy_phone_is_on_call_direct() -> None:
    eng = engine({"1001": {"billing": 5}}, ready=False)
    eng.device_state("1001", "busy", 0.5)  # logged out: only noted
    assert eng.agent_state("1001") == ("logged_out", None)
    cmds = eng.login("1001", 1.0, ready=True)
    assert states(cmds) == [("logged_out", "on_call", "direct")]


def test_not_ready_unregistered_with_a_phone_already_free_is_made_ready_by_the_next_word() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.set_not_ready("1001", "unregistered", 1.0)  # e.g. set so from outside while the phone reads free
    assert eng.device_state("1001", "free", 2.0) != []
    assert eng.agent_state("1001") == ("available", None)


def test_a_restart_gives_direct_and_unregistered_agents_back_to_their_phones() -> None:
    from ctiserver.acd.restore import Restore, restore_plan

    last = {"1001": ("on_call", "direct"), "1002": ("not_ready", "unregistered"), "1003": ("on_call", None)}
    assert restore_plan(last, busy={"1001", "1003"}, known=last) == [
        Restore("1001", "available"), Restore("1002", "available"), Restore("1003", "not_ready", "cti_restart")]


def test_a_caller_back_from_a_failed_transfer_is_offered_before_the_agents_hang_up_is_seen() -> None:
    """The transfer failed before Asterisk reported the transferring agent's phone free again (AMI and
    FastAGI race): the caller still goes back to that agent first, not to another free one (an ordinary
    new caller is not rung to a phone mid hang-up: test_the_acds_own_offer_and_call_are_not_counted_twice)."""
    eng = engine({"1001": {"billing": 5}, "1002": {"billing": 9}})
    eng.enqueue("c", "billing", "normal", "138", 1.0)  # 1002 (better) takes it
    cmds = eng.device_state("1002", "busy", 1.1) + eng.ring_started("c", 1.2) + eng.ring_answered("c", 2.0)
    eng.call_ended("c", 30.0)  # 1002 transferred the caller away: wrap-up; the phone still busy
    cmds = eng.enqueue("c", "billing", "normal", "138", 30.01, kind="return", prefer_agent="1002")
    assert [(o.call_id, o.agent_id) for o in offers(cmds)] == [("c", "1002")]
    assert [e.data["via"] for e in events(cmds, Kind.ACD_OFFER)] == ["return"]
    cmds = eng.ring_failed("c", 30.05, "busy")  # the phone was in fact still busy: a RONA, then the queue
    [rona] = events(cmds, Kind.ACD_RONA)
    assert rona.agent_id == "1002"
    assert [(o.call_id, o.agent_id) for o in offers(cmds)] == [("c", "1001")]
