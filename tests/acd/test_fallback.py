"""The fallback queue's AMI events become the ACD's outcomes (frames as Asterisk 22 sends them, trimmed)."""

from __future__ import annotations

from typing import Any

import pytest

from ctiserver.acd.fallback import FallbackQueues
from ctiserver.calls.control import AgentChannels
from ctiserver.events import Kind

CALLER = {"Channel": "Local/95598@hotline-00000000;2", "CallerIDNum": "13900000301", "Context": "hotline",
          "Uniqueid": "1796322629.1", "Linkedid": "1796322629.0"}
MEMBER = {"DestChannel": "PJSIP/agent1002-00000000", "DestUniqueid": "1796322629.2",
          "Interface": "PJSIP/agent1002", "MemberName": "PJSIP/agent1002"}


def frame(event: str, ts: float, **fields: Any) -> dict[str, Any]:
    return {"Event": event, "Timestamp": f"{ts:.6f}", "Queue": "fallback", **fields}


def tracker() -> FallbackQueues:
    return FallbackQueues(AgentChannels([("1002", "PJSIP/agent1002")]))


def test_a_fallback_caller_answered_by_an_agent_has_the_acds_outcome() -> None:
    fq = tracker()
    out = fq.feed("pbx1", frame("QueueCallerJoin", 100.0, Position="1", Count="1", **CALLER), now=999.0)
    out += fq.feed("pbx1", frame("AgentCalled", 100.01, **CALLER, **MEMBER), now=999.0)
    out += fq.feed("pbx1", frame("QueueCallerLeave", 100.5, **CALLER), now=999.0)
    out += fq.feed("pbx1", frame("AgentConnect", 100.5, HoldTime="1", RingTime="0", **CALLER, **MEMBER), now=999.0)
    assert fq.talking() == [("pbx1", "1002", "1796322629.0")]
    out += fq.feed("pbx1", frame("AgentComplete", 102.51, HoldTime="1", TalkTime="2", Reason="agent",
                                 Interface="PJSIP/agent1002", MemberName="PJSIP/agent1002"), now=999.0)
    assert [(e.kind, e.ts, e.call_id, e.agent_id, e.queue) for e in out] == [
        (Kind.ACD_ENQUEUE, 100.0, "1796322629.0", None, "fallback"),
        (Kind.ACD_ANSWER, 100.5, "1796322629.0", "1002", "fallback"),
        (Kind.ACD_COMPLETE, 102.51, "1796322629.0", "1002", "fallback")]  # Asterisk's times, not `now`
    enq, ans, done = out
    assert enq.data == {"caller": "13900000301", "position": 1, "fallback": True}
    assert ans.data == {"wait_s": 1.0, "ring_s": 0.0, "agent_uniqueid": "1796322629.2", "fallback": True}
    assert done.data["talk_s"] == pytest.approx(2.01) and done.data["reason"] == "agent"
    assert fq.talking() == []


def test_an_abandon_a_local_member_and_a_consultation_leg() -> None:
    fq = tracker()
    [ab] = fq.feed("pbx1", frame("QueueCallerAbandon", 50.0, HoldTime="7", OriginalPosition="1", Position="1",
                                 **CALLER), now=0.0)
    assert (ab.kind, ab.call_id, ab.data["wait_s"], ab.data["position"], ab.data["fallback"]) == (
        Kind.ACD_ABANDON, "1796322629.0", 7.0, 1, True)
    consult = {**CALLER, "Context": "transfer-code", "Uniqueid": "1796322700.9"}
    [enq] = fq.feed("pbx1", frame("QueueCallerJoin", 60.0, Position="1", **consult), now=0.0)
    assert (enq.call_id, enq.data["kind"]) == ("1796322700.9", "consult")  # the agent's leg, under its own id
    local = {"DestChannel": "Local/1008@sim-agents-00000004;1", "Interface": "Local/1008@sim-agents/n",
             "MemberName": "Local/1008@sim-agents/n"}
    [ans] = fq.feed("pbx1", frame("AgentConnect", 61.0, HoldTime="1", RingTime="1", **consult, **local), now=0.0)
    assert ans.agent_id == "1008"
    [done] = fq.feed("pbx1", frame("AgentComplete", 65.0, HoldTime="1", TalkTime="4", Reason="caller",
                                   Interface="Local/1008@sim-agents/n", MemberName="Local/1008@sim-agents/n"), now=0.0)
    assert (done.kind, done.call_id, done.agent_id) == (Kind.ACD_COMPLETE, "1796322700.9", "1008")


def test_after_a_restart_a_call_already_talking_is_recorded_when_it_ends() -> None:
    """Connected while the CTI was away: adopted from the channel list; AgentComplete gives the rest."""
    fq = tracker()
    assert fq.feed("pbx1", frame("AgentComplete", 10.0, HoldTime="3", TalkTime="20", Reason="agent",
                                 Interface="PJSIP/agent1002"), now=0.0) == []  # unknown: nothing to invent
    channels = [
        {"Event": "CoreShowChannel", **CALLER, "Application": "Queue", "ApplicationData": "fallback,t,,,600",
         "BridgeId": "b-1"},
        {"Event": "CoreShowChannel", "Channel": "PJSIP/agent1002-00000000", "Uniqueid": "1796322629.2",
         "Linkedid": "1796322629.0", "Application": "AppQueue", "BridgeId": "b-1"},
        {"Event": "CoreShowChannel", "Channel": "Local/95598@hotline-00000000;1", "Uniqueid": "1796322629.0",
         "Linkedid": "1796322629.0", "Application": "AppDial2", "BridgeId": ""},
        {"Event": "CoreShowChannel", "Channel": "Local/95598@hotline-00000005;2", "Uniqueid": "1796322650.1",
         "Linkedid": "1796322650.0", "Application": "Queue", "ApplicationData": "fallback,t,,,600",
         "BridgeId": ""},  # still waiting: its AgentConnect will say all
    ]
    assert fq.adopt_talking("pbx1", channels) == 1
    assert fq.adopt_talking("pbx1", channels) == 0  # a second resync adopts nothing twice
    ans, done = fq.feed("pbx1", frame("AgentComplete", 130.0, HoldTime="3", TalkTime="20", Reason="caller",
                                      Interface="PJSIP/agent1002", MemberName="PJSIP/agent1002"), now=999.0)
    assert (ans.kind, ans.ts, ans.agent_id, ans.call_id, ans.data) == (
        Kind.ACD_ANSWER, 110.0, "1002", "1796322629.0", {"fallback": True, "wait_s": 3.0, "restored": True})
    assert (done.kind, done.ts, done.data["talk_s"], done.data["restored"]) == (Kind.ACD_COMPLETE, 130.0, 20.0,
                                                                                True)
