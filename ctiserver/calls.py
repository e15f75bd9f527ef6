"""Live-call control for the desktop (hang up, transfer, escalate) over AMI.

The desktop's `CallControl` port. Which channel to act on comes from the call
tracker: the caller's leg is the one that dialled the agent (AMI DialBegin; the
leg running the `hotline` dialplan before any Dial); the agent's leg is the one
it dialled. Transfers:

* blind to an agent:  AMI Redirect of the caller's leg to `agents,<id>`
* blind to a queue:   AMI Redirect to `transfer-queue,<skill>`, which hands the
  caller back to the CTI (AGI /queue/<skill>) with the plain-Queue fallback
* attended:           AMI Atxfer on the agent's leg (the agent talks to the
  target first, then hangs up to complete)
Every transfer is logged as `acd.transfer` (escalations marked) for the KPIs.

Atxfer only queues the atxfer feature code and the target's digits as DTMF on the
agent's channel; Asterisk acts on them only if that channel's bridge has the
transfer features (the ACD dials agents with Dial option `t`, and features.conf
defines the `atxfer` code). Otherwise the digits are swallowed or reach the
caller and nothing happens, yet Asterisk answers Success: so an attended
transfer counts as started only when its consultation channel
(`Local/<target>@<context>-...`, same Linkedid) appears in the call. Asterisk
waits its transfer digit timeout (3 s by default) for more digits before dialling.
Being DTMF, the target must be digits: an attended transfer to a queue (a skill
name) cannot be expressed and is refused before anything reaches Asterisk.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any, Protocol

from .ami.errors import AmiError
from .events import Event, Kind
from .tracker import CallTracker, Leg
from .web.ports import PortError, TargetKind, TransferKind

log = logging.getLogger(__name__)

_TARGET = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_DIALLABLE = re.compile(r"^[0-9]{1,40}$")  # what Atxfer can send as DTMF (and agents' ids are)


def _names_agent(channel: str, agent_id: str) -> bool:
    """`PJSIP/agent1001-0000002a` or `Local/1001@sim-agents-00000003;1` is agent 1001's (not 10010's)."""
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(agent_id)}(?=[-@;])|agent{re.escape(agent_id)}-",
                     channel) is not None


def _outer_local_half(channel: str, legs: list[Leg]) -> bool:
    """`Local/...;1` whose `;2` is in the call too: `;2` runs the dialplan the name points to."""
    if not (channel.startswith("Local/") and channel.endswith(";1")):
        return False
    twin = channel[:-1] + "2"
    return any(leg.channel == twin for leg in legs)


class _Ami(Protocol):
    async def action(self, name: str, fields: Any = None, timeout: float | None = None) -> Any: ...


class _AgentOf(Protocol):
    def call_agent(self, call_id: str) -> str | None: ...


class AmiCallControl:
    def __init__(self, trackers: dict[str, CallTracker], clients: dict[str, _Ami], engine: _AgentOf,
                 emit: Callable[[Event], None], now: Callable[[], float], *,
                 atxfer_start_s: float = 6.0) -> None:
        self.trackers = trackers
        self.clients = clients
        self.engine = engine
        self.emit = emit
        self.now = now
        self.atxfer_start_s = atxfer_start_s  # how long the consultation call may take to appear

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
        """The leg that runs the caller's side of the dialplan: the one that dialled the agent.

        With a `Local` caller (tests, a trunk behind a Local channel) both halves show the entry
        context in Newchannel, but only `;2` runs it: `;1` is the caller's own end, and moving it
        would leave the agent talking to the other half. Dial says which leg is the caller's: the
        earliest leg that dialled another leg of the call (later diallers are agents consulting
        someone). Before any Dial (or after a resync) the first leg in the `hotline` context.
        """
        ids = {leg.uniqueid for leg in legs}
        diallers = {leg.dialed_by for leg in legs if leg.dialed_by in ids}
        dialling = [leg for leg in legs if leg.uniqueid in diallers]
        if dialling:
            return dialling[0]  # legs are sorted by start
        entry = [leg for leg in legs if leg.context == "hotline"]
        runs_it = [leg for leg in entry if not _outer_local_half(leg.channel, legs)]
        return (runs_it or entry or legs)[0]

    def _agent_leg(self, legs: list[Leg], caller: Leg, agent_id: str | None) -> Leg:
        """The agent's leg facing the caller: the latest leg the caller dialled (the agent's own if known)."""
        others = [leg for leg in legs if leg is not caller]
        if not others:
            raise PortError("no-agent-leg", "the call has no agent leg to transfer from", 409)
        dialled = [leg for leg in others if leg.dialed_by == caller.uniqueid] or others
        if agent_id:
            mine = [leg for leg in dialled if _names_agent(leg.channel, agent_id)]
            if mine:
                return mine[-1]
        return dialled[-1]

    async def _act(self, server: str, name: str, fields: dict[str, str]) -> None:
        try:
            resp = await self.clients[server].action(name, fields)
        except AmiError as exc:
            raise PortError("asterisk-unavailable", f"{name} not sent to Asterisk {server}: {exc}", 503) from exc
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
        if kind == "attended" and not _DIALLABLE.match(target):
            raise PortError("attended-needs-digits",
                            f"an attended transfer dials {target!r} as DTMF digits, so it must be a number "
                            "(an agent); transfer to a queue blind", 422)
        server, legs = self._find(call_id)
        caller = self._caller_leg(legs)
        agent_id = self.engine.call_agent(call_id)
        context = "agents" if target_kind == "agent" else "transfer-queue"
        if kind == "blind":
            await self._act(server, "Redirect", {"Channel": caller.channel, "Context": context,
                                                 "Exten": target, "Priority": "1"})
        else:
            agent_leg = self._agent_leg(legs, caller, agent_id)
            before = {leg.uniqueid for leg in legs}
            await self._act(server, "Atxfer", {"Channel": agent_leg.channel, "Context": context, "Exten": target})
            if not await self._consultation_started(server, call_id, f"Local/{target}@{context}-", before):
                raise PortError("transfer-not-started",
                                f"Asterisk accepted the attended transfer but started no call to {target} within "
                                f"{self.atxfer_start_s:g} s: the agent's leg has no transfer feature (the ACD must "
                                "dial agents with option t; features.conf must define atxfer)", 409)
        self.emit(Event(kind=Kind.ACD_TRANSFER, ts=self.now(), call_id=call_id, agent_id=agent_id,
                        server=server, data={"target": target, "target_kind": target_kind, "kind": kind,
                                             "escalated": escalated}))
        log.info("call %s: %s transfer to %s %s%s", call_id, kind, target_kind, target,
                 " (escalation)" if escalated else "")

    async def _consultation_started(self, server: str, call_id: str, prefix: str, before: set[str]) -> bool:
        """True once a new leg named `prefix...` joined the call (the transferer's call to the target)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.atxfer_start_s
        while True:
            call = self.trackers[server].calls.get(call_id)
            if call is None:
                return False
            if any(uid not in before and leg.channel.startswith(prefix) for uid, leg in call.legs.items()):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
