"""Live-call control for the desktop (hang up, transfer, escalate) over AMI.

The desktop's `CallControl` port. Which channel to act on comes from the call
tracker: the caller's leg is the one that entered the `hotline` context; the
agent's leg is the other. Transfers:

* blind to an agent:  AMI Redirect of the caller's leg to `agents,<id>`
* blind to a queue:   AMI Redirect to `transfer-queue,<skill>`, which hands the
  caller back to the CTI (AGI /queue/<skill>) with the plain-Queue fallback
* attended:           AMI Atxfer on the agent's leg (the agent talks to the
  target first, then hangs up to complete)
Every transfer is logged as `acd.transfer` (escalations marked) for the KPIs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any, Protocol

from .events import Event, Kind
from .tracker import CallTracker, Leg
from .web.ports import PortError, TargetKind, TransferKind

log = logging.getLogger(__name__)

_TARGET = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


class _Ami(Protocol):
    async def action(self, name: str, fields: Any = None, timeout: float | None = None) -> Any: ...


class _AgentOf(Protocol):
    def call_agent(self, call_id: str) -> str | None: ...


class AmiCallControl:
    def __init__(self, trackers: dict[str, CallTracker], clients: dict[str, _Ami], engine: _AgentOf,
                 emit: Callable[[Event], None], now: Callable[[], float]) -> None:
        self.trackers = trackers
        self.clients = clients
        self.engine = engine
        self.emit = emit
        self.now = now

    def live_calls(self) -> list[dict[str, Any]]:
        out = []
        now = self.now()
        for server, tracker in self.trackers.items():
            for snap in tracker.live_calls(now):
                snap["server"] = server
                snap["agent_id"] = self.engine.call_agent(snap["call_id"])
                out.append(snap)
        return out

    def _find(self, call_id: str) -> tuple[str, list[Leg]]:
        for server, tracker in self.trackers.items():
            call = tracker.calls.get(call_id)
            if call is not None and call.legs:
                return server, sorted(call.legs.values(), key=lambda leg: leg.started)
        raise PortError("unknown-call", f"no live call {call_id!r}", 404)

    @staticmethod
    def _caller_leg(legs: list[Leg]) -> Leg:
        return next((leg for leg in legs if leg.context == "hotline"), legs[0])

    def _agent_leg(self, legs: list[Leg], caller: Leg, agent_id: str | None) -> Leg:
        others = [leg for leg in legs if leg is not caller]
        if agent_id:
            mine = [leg for leg in others if agent_id in leg.channel]
            if mine:
                return mine[0]
        if not others:
            raise PortError("no-agent-leg", "the call has no agent leg to transfer from", 409)
        return others[-1]

    async def _act(self, server: str, name: str, fields: dict[str, str]) -> None:
        resp = await self.clients[server].action(name, fields)
        if not resp.success:
            raise PortError("asterisk-refused", f"Asterisk refused {name}: {resp.message}", 409)

    async def hangup(self, call_id: str) -> None:
        server, legs = self._find(call_id)
        caller = self._caller_leg(legs)
        await self._act(server, "Hangup", {"Channel": caller.channel, "Cause": "16"})

    async def transfer(self, call_id: str, target_kind: TargetKind, target: str, kind: TransferKind,
                       *, escalated: bool = False) -> None:
        if not _TARGET.match(target):
            raise PortError("bad-target", "a transfer target is letters, digits, _ and - only", 422)
        server, legs = self._find(call_id)
        caller = self._caller_leg(legs)
        agent_id = self.engine.call_agent(call_id)
        context = "agents" if target_kind == "agent" else "transfer-queue"
        if kind == "blind":
            await self._act(server, "Redirect", {"Channel": caller.channel, "Context": context,
                                                 "Exten": target, "Priority": "1"})
        else:
            agent_leg = self._agent_leg(legs, caller, agent_id)
            await self._act(server, "Atxfer", {"Channel": agent_leg.channel, "Context": context, "Exten": target})
        self.emit(Event(kind=Kind.ACD_TRANSFER, ts=self.now(), call_id=call_id, agent_id=agent_id,
                        server=server, data={"target": target, "target_kind": target_kind, "kind": kind,
                                             "escalated": escalated}))
        log.info("call %s: %s transfer to %s %s%s", call_id, kind, target_kind, target,
                 " (escalation)" if escalated else "")
