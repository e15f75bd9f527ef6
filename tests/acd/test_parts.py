"""The engine's parts on their own: the roster's free index, the queues' waiting index, the timers."""

from __future__ import annotations

import pytest

from ctiserver.acd.agents import Roster
from ctiserver.acd.model import IllegalTransition, UnknownAgent
from ctiserver.acd.queues import Queues, clean_top
from ctiserver.acd.records import Call
from ctiserver.acd.states import AVAILABLE, NOT_READY
from ctiserver.acd.timers import Timer, Timers, live
from ctiserver.events import Event, Kind

from .helpers import config


def test_roster_moves_only_through_the_table_and_counts_who_serves() -> None:
    roster = Roster(["billing", "fault"])
    roster.add("1001", {"billing": 5, "fault": 2})
    a = roster.get("1001")
    out: list = []
    with pytest.raises(IllegalTransition):
        roster.move(a, "ready", 1.0, out)  # logged out: log in first
    assert out == [] and roster.staffed == {"billing": 0, "fault": 0}
    roster.move(a, "login", 1.0, out, reason="login")
    assert a.state == NOT_READY and roster.staffed == {"billing": 1, "fault": 1}
    assert roster.serving == {"billing": 0, "fault": 0}  # not ready: staffed, not serving
    roster.move(a, "ready", 4.0, out)
    assert a.state == AVAILABLE and roster.serving == {"billing": 1, "fault": 1}
    assert [e.data["duration_s"] for e in out if isinstance(e, Event) and e.kind == Kind.AGENT_STATE] == [None, 3.0]
    with pytest.raises(UnknownAgent):
        roster.get("9999")


def test_free_index_picks_longest_idle_or_most_proficient_and_survives_compaction() -> None:
    roster = Roster(["billing"])
    for i, prof in enumerate([3, 9, 6]):
        roster.add(f"10{i}", {"billing": prof})
        a = roster.get(f"10{i}")
        roster.move(a, "login", float(i), [], to=AVAILABLE)
        roster.publish(a)
    assert roster.best_free("billing", 1, by_proficiency=False).id == "100"  # idle longest
    assert roster.best_free("billing", 1, by_proficiency=True).id == "101"  # proficiency 9
    assert roster.best_free("billing", 7, by_proficiency=False).id == "101"  # only one has 7 or more
    roster.move(roster.get("101"), "not_ready", 5.0, [], reason="lunch")  # leaves the index (stale entry)
    for _ in range(3):
        roster.publish(roster.get("100"))  # re-published: older entries go stale
    roster.compact()
    assert sum(len(h) for h in roster.free["billing"]) == 2  # the live entry of each free agent
    assert roster.best_free("billing", 1, by_proficiency=True).id == "102"
    assert roster.best_free("billing", 7, by_proficiency=True) is None


def _call(cid: str, rank: int, place: float, seq: int) -> Call:
    return Call(cid, "billing", "normal", rank, "", None, None, arrived=place, place_ts=place, seq=seq,
                queue_entered=place, pools=(("billing", 1),))


def test_waiting_index_serves_tier_then_place_and_compaction_keeps_the_order() -> None:
    queues = Queues(config({}))
    calls = [_call("late-vip", 0, 5.0, 3), _call("early", 2, 1.0, 1), _call("later", 2, 2.0, 2)]
    for c in calls:
        queues.add(c, "billing")
        queues.register(c)
    for _ in range(5):
        queues.register(calls[1])  # re-registered: its older entries are stale
    heap = queues.waiting["billing"][1]
    assert len(heap) == 8
    queues.compact()
    heap = queues.waiting["billing"][1]
    assert len(heap) == 3
    order = []
    while (top := clean_top(heap)) is not None:
        order.append(top[6].id)
        queues.offered(top[6])  # taken: its entry goes stale and is dropped
    assert order == ["late-vip", "early", "later"]
    assert queues.waiting_count("billing") == 0


def test_redial_memory_forgets_expired_places() -> None:
    queues = Queues(config({}))
    c = _call("c1", 2, 1.0, 1)
    c.caller = "138"
    queues.remember(c, expires=10.0, callback_call=None)
    assert queues.recall("138", "billing", 11.0) is None  # expired
    queues.remember(c, expires=10.0, callback_call="c1")
    assert queues.recall("138", "billing", 9.0) == (1.0, 1, 10.0, "c1")
    assert queues.recall("138", "billing", 9.0) is None  # taken once


def test_a_deadline_whose_record_moved_on_is_stale() -> None:
    cfg = config({})
    queues = Queues(cfg)
    timers = Timers(cfg, queues.config)
    c = _call("c1", 2, 0.0, 1)
    timers.ring(c, 12.0)
    assert not live(12.0, Timer.RING, c)  # waiting, not offered: a ring guard does not apply
    queues.add(c, "billing")
    queues.offered(c)
    assert live(12.0, Timer.RING, c) and timers.next() == 12.0
    c.ring_deadline = None  # the dialer owns the ring timeout now
    assert timers.next() is None and list(timers.due(20.0)) == []
