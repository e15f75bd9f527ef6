"""Outcomes of callers served by Asterisk's own `Queue()`: the fallback when the CTI's FastAGI is out of reach.

The dialplan sends a caller to `Queue(fallback)` when its AGI to the CTI fails (or the CTI died mid-call),
so no caller is dropped; but the ACD never saw them, and the KPIs counted them as lost. Asterisk reports
that queue's work over AMI (read class `agent`, which the CTI's AMI user has), and this pure tracker turns
it into the ACD's own events, marked `fallback: true`, with Asterisk's timestamps:

    QueueCallerJoin     acd.enqueue   queue = the Asterisk queue; caller, position
    AgentConnect        acd.answer    agent (from the member's channel), wait_s = HoldTime, ring_s = RingTime,
                                      agent_uniqueid = DestUniqueid (the member's channel: queue_log's CONNECT)
    AgentComplete       acd.complete  talk_s (Asterisk's stamps from the connect, else TalkTime), reason
    QueueCallerAbandon  acd.abandon   wait_s = HoldTime, position (the caller's place when they left)

A caller who times out of the queue (no agent, no abandon) gets no outcome: the KPIs count them lost,
which is what they are. The call is the caller's Linkedid; a consultation leg (an attended transfer to
a queue code that fell back) is queued under its own Uniqueid, as the ACD does, and marked kind consult.

AgentComplete carries no caller channel (Asterisk 22 sends Queue, Interface, MemberName, HoldTime,
TalkTime, Reason), so the talk is found by its agent (the member): a member takes one fallback call
at a time (`ringinuse = no`).

After a CTI restart nothing that happened while it was away can be read again from AMI. What is
recoverable is what ends after it is back: a caller still waiting is recorded when an agent connects
(or they abandon), from that event alone; a caller already talking is adopted from the channel list
(`adopt_talking`: the caller's channel runs the Queue application, bridged with a member's channel),
and its AgentComplete then records both the answer (its time reconstructed as the completion minus
TalkTime, wait from HoldTime) and the completion, marked `restored: true`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..ami.message import event_time
from ..events import Event, Kind

log = logging.getLogger(__name__)

CONSULT_CONTEXT = "transfer-code"
_LOCAL_AGENT = re.compile(r"^Local/([A-Za-z0-9_]{1,40})@")


@dataclass(slots=True)
class _Talk:
    call_id: str
    agent: str
    queue: str
    connected_at: float | None  # None: adopted after a restart (the connect was not seen)
    caller: str = ""


def _s(msg: Any, name: str) -> str:
    value = msg.get(name, None)
    return "" if value is None else str(value)


def _seconds(msg: Any, name: str) -> float | None:
    try:
        value = float(_s(msg, name))
    except ValueError:
        return None
    return value if value >= 0 else None


class FallbackQueues:
    """Pure: `feed(server, msg, now)` -> the ACD events the fallback queue's AMI events amount to."""

    def __init__(self, agent_of: Callable[[str], str | None]) -> None:
        self.agent_of = agent_of
        self._talks: dict[tuple[str, str], _Talk] = {}  # (server, agent) -> the fallback call they talk on

    def agent(self, *names: str) -> str:
        """The agent behind a member: its channel or interface as the ACD dials it (PJSIP/agent1001...),
        a `Local/<id>@...` member, else the member's name as Asterisk gives it."""
        for name in names:
            if not name:
                continue
            base = name[:-2] if name.endswith("/n") else name
            agent = self.agent_of(base)
            if agent is not None:
                return agent
            m = _LOCAL_AGENT.match(base)
            if m is not None:
                return m.group(1)
        return next((n for n in names if n), "")

    @staticmethod
    def _call(msg: Any) -> tuple[str, str]:
        """(call id, kind) of the queued channel."""
        if _s(msg, "Context") == CONSULT_CONTEXT:
            return _s(msg, "Uniqueid"), "consult"
        return _s(msg, "Linkedid") or _s(msg, "Uniqueid"), ""

    def feed(self, server: str, msg: Any, now: float) -> list[Event]:
        name = _s(msg, "Event")
        if name not in ("QueueCallerJoin", "AgentConnect", "AgentComplete", "QueueCallerAbandon"):
            return []
        queue = _s(msg, "Queue")
        when = event_time(msg, now)
        if name == "AgentComplete":
            return self._complete(server, msg, queue, when)
        call_id, kind = self._call(msg)
        if not call_id or not queue:
            log.warning("fallback queue: %s without a queue or a channel id; not recorded", name)
            return []
        caller = _s(msg, "CallerIDNum")
        caller = "" if caller == "<unknown>" else caller

        def event(kind_: str, agent: str | None, **data: Any) -> Event:
            return Event(kind_, ts=when, call_id=call_id, agent_id=agent, queue=queue, server=server,
                         data={**data, "fallback": True})

        if name == "QueueCallerJoin":
            data: dict[str, Any] = {"caller": caller, "position": int(_s(msg, "Position") or 0)}
            if kind:
                data["kind"] = kind
            return [event(Kind.ACD_ENQUEUE, None, **data)]
        if name == "QueueCallerAbandon":
            return [event(Kind.ACD_ABANDON, None, wait_s=_seconds(msg, "HoldTime") or 0.0, where="queue",
                          position=int(_seconds(msg, "Position") or 0))]
        agent = self.agent(_s(msg, "DestChannel"), _s(msg, "Interface"), _s(msg, "MemberName"))
        self._talks[(server, agent)] = _Talk(call_id, agent, queue, when, caller)
        return [event(Kind.ACD_ANSWER, agent, wait_s=_seconds(msg, "HoldTime") or 0.0,
                      ring_s=_seconds(msg, "RingTime") or 0.0, agent_uniqueid=_s(msg, "DestUniqueid"))]

    def _complete(self, server: str, msg: Any, queue: str, when: float) -> list[Event]:
        agent = self.agent(_s(msg, "Interface"), _s(msg, "MemberName"))
        talk = self._talks.pop((server, agent), None)
        if talk is None:
            log.warning("fallback queue %s: agent %s finished a call the CTI never saw connect; not recorded",
                        queue, agent)
            return []
        talk_time = _seconds(msg, "TalkTime") or 0.0
        out = []
        base = {"fallback": True}
        if talk.connected_at is None:  # connected while the CTI was away: the answer from Asterisk's figures
            out.append(Event(Kind.ACD_ANSWER, ts=when - talk_time, call_id=talk.call_id, agent_id=talk.agent,
                             queue=talk.queue, server=server,
                             data={**base, "wait_s": _seconds(msg, "HoldTime") or 0.0, "restored": True}))
            talk_s = talk_time
        else:
            talk_s = max(0.0, when - talk.connected_at)
        data: dict[str, Any] = {**base, "talk_s": talk_s, "hold_s": 0.0, "wrap_up_s": 0.0,
                                "reason": _s(msg, "Reason")}
        if talk.connected_at is None:
            data["restored"] = True
        out.append(Event(Kind.ACD_COMPLETE, ts=when, call_id=talk.call_id, agent_id=talk.agent, queue=talk.queue,
                         server=server, data=data))
        return out

    def talking(self) -> list[tuple[str, str, str]]:
        """(server, agent, call id) of every fallback call known to be talking now."""
        return [(server, agent, t.call_id) for (server, agent), t in self._talks.items()]

    def adopt_talking(self, server: str, channels: Iterable[Any]) -> int:
        """After a (re)connect: callers the fallback queue connected while the CTI was away, from the channel
        list (CoreShowChannel frames): a channel running the Queue application bridged with a member's
        channel. Their AgentComplete will be recorded. Returns how many were adopted."""
        chans = list(channels)
        by_bridge: dict[str, list[Any]] = {}
        for c in chans:
            if _s(c, "BridgeId"):
                by_bridge.setdefault(_s(c, "BridgeId"), []).append(c)
        adopted = 0
        for c in chans:
            if _s(c, "Application") != "Queue" or not _s(c, "BridgeId"):
                continue
            queue = _s(c, "ApplicationData").split(",")[0]
            call_id, _ = self._call(c)
            for peer in by_bridge[_s(c, "BridgeId")]:
                channel = _s(peer, "Channel")
                if peer is c or channel == _s(c, "Channel"):
                    continue
                agent = self.agent(re.sub(r"-[0-9a-f]+(;[12])?$", "", channel))
                if (server, agent) in self._talks or not agent or not queue or not call_id:
                    continue
                caller = _s(c, "CallerIDNum")
                self._talks[(server, agent)] = _Talk(call_id, agent, queue, None,
                                                     "" if caller == "<unknown>" else caller)
                adopted += 1
        return adopted
