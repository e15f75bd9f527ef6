"""Waiting callers rebuilt from the event log (pure), and resumed by a new engine in the same order."""

from __future__ import annotations

from ctiserver.acd.resume import AcdRecord, Waiting, resume_order, waiting_callers
from ctiserver.events import Kind

from ..acd.helpers import engine, events, offers


def enq(ts: float, call: str, queue: str = "billing", tier: str = "normal", **data: object) -> AcdRecord:
    return AcdRecord(Kind.ACD_ENQUEUE, ts, call, queue, tier, {"caller": f"138{call}", **data})


def test_the_fold_keeps_who_still_waits_where_and_since_when() -> None:
    log = [
        enq(1.0, "a"), enq(2.0, "v", tier="vip", lang="en"), enq(3.0, "b"), enq(4.0, "gone"),
        enq(5.0, "cb", kind="callback"), enq(5.5, "x", kind="consult"),
        AcdRecord(Kind.ACD_OFFER, 6.0, "a", "billing", "normal"),
        AcdRecord(Kind.ACD_RONA, 7.0, "a", "billing", "normal"),  # rung, not answered: still waiting
        AcdRecord(Kind.ACD_ABANDON, 8.0, "gone"),
        AcdRecord(Kind.ACD_OVERFLOW, 9.0, "b", "billing", "normal", {"target": "queue:fault"}),
        AcdRecord(Kind.ACD_RETIER, 10.0, "a", "billing", "priority", {"tier": "priority", "previous": "normal"}),
        enq(11.0, "t"), AcdRecord(Kind.ACD_ANSWER, 12.0, "t"),
        enq(13.0, "m"), AcdRecord(Kind.ACD_OVERFLOW, 14.0, "m", data={"target": "message:closed"}),
        enq(15.0, "e"), AcdRecord(Kind.CALL_END, 16.0, "e"),
        enq(17.0, "v", tier="vip", resumed=True),  # resumed once already: keeps its first place
    ]
    assert waiting_callers(log) == [
        Waiting("a", "billing", "priority", 1.0, "138a"), Waiting("v", "billing", "vip", 2.0, "138v", "en"),
        Waiting("b", "fault", "normal", 3.0, "138b")]


def test_a_new_engine_serves_resumed_callers_in_their_old_order() -> None:
    waiting = [Waiting("n1", "billing", "normal", 1.0), Waiting("n2", "billing", "normal", 2.0),
               Waiting("v", "billing", "vip", 3.0)]
    rank = {"vip": 0, "priority": 1, "normal": 2, "blacklist": 3}
    assert [w.call_id for w in resume_order(waiting, rank)] == ["v", "n1", "n2"]
    acd = engine({"1001": {"billing": 1}, "1002": {"billing": 1}}, ready=False, now=100.0)
    for agent in ("1001", "1002"):
        acd.login(agent, 100.0, ready=False)  # logged in again after the takeover, not free yet
    for w in reversed(waiting):  # sessions come back in any order: their places decide
        cmds = acd.enqueue(w.call_id, w.skill, w.tier, "", 100.0, since=w.since)
        (ev,) = events(cmds, Kind.ACD_ENQUEUE)
        assert ev.data["resumed"] is True
    got = []
    for agent in ("1001", "1002"):
        got += [o.call_id for o in offers(acd.set_ready(agent, 101.0))]
    assert got == ["v", "n1"]  # the VIP first, then the normal caller who was there first
    waits = {c["call_id"]: c["wait_s"] for c in acd.waiting_calls(101.0)}
    assert waits["n2"] == 99.0  # the wait counts from the first enqueue, on the old leader
