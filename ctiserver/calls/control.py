"""Live-call control for the desktop (hang up, transfer, escalate) over AMI.

The desktop's `CallControl` port. Which channel to act on comes from the call
tracker: the caller's leg is the one that dialled the agent (AMI DialBegin; the
leg running the `hotline` dialplan before any Dial); the agent's leg is the one
it dialled. Transfers:

* blind to an agent:  AMI Redirect of the caller's leg to `transfer-agent,<id>`, which hands the
  caller to the CTI (AGI /transfer/<id>) to ring the agent. If the agent cannot take the call (phone
  not reachable, busy, no answer) the CTI logs `acd.transfer_failed` (the transferring agent's desktop
  says why) and brings the caller back through the ACD: to the transferring agent first, else their
  queue (`CTI_XFER` = `<agent>/<queue>/<tier>`, set on the caller's leg before the Redirect, says
  which). Without the CTI the dialplan rings the target, then the transferring agent, then the plain
  fallback Queue(). An agent the ACD does not know is refused before anything reaches Asterisk.
* blind to a queue:   AMI Redirect to `transfer-queue,<skill>`, which hands the
  caller back to the CTI (AGI /queue/<skill>) with the plain-Queue fallback
* attended to an agent: AMI Atxfer on the agent's leg to `agents,<id>` (the agent
  talks to the target first, then hangs up to complete)
* attended to a queue: AMI Atxfer to `transfer-code,<code>`: queues an attended
  transfer can reach have 4-digit codes (acd.yaml `transfer_codes`); the dialplan
  hands the code to the CTI (AGI /queue/<code>), which serves the consultation
  through the ACD. The desktop's escalation is this, to the shift leader's desk.
Every transfer is logged as `acd.transfer` (escalations marked) for the KPIs.

Whose call it is follows the call: the ACD's agent while their leg is in the call,
else the agent whose leg answered last (after a transfer: the target, so they can
control the call from their desktop). `transfer_listener` closes the transferring
agent's ACD talk (wrap-up) when Asterisk reports a completed transfer away from them.

Atxfer only queues the atxfer feature code and the target's digits as DTMF on the
agent's channel; Asterisk acts on them only if that channel's bridge has the
transfer features (the ACD dials agents with Dial option `t`, and features.conf
defines the `atxfer` code). Otherwise the digits are swallowed or reach the
caller and nothing happens, yet Asterisk answers Success: so an attended
transfer counts as started only when its consultation channel
(`Local/<target>@<context>-...`, same Linkedid) appears in the call. Asterisk
waits its transfer digit timeout (3 s by default) for more digits before dialling.
Being DTMF, the target must be digits: an attended transfer to a queue without a
code cannot be expressed and is refused before anything reaches Asterisk.

The consultation channel is created from the agent's leg and inherits only its
variables, not the caller's: so before Atxfer to a queue the caller's `CTI_AGI`
(which CTI serves this call) is copied onto the agent's leg as `_CTI_AGI`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from ..acd.engine import TALKING
from ..acd.model import AcdError
from ..ami.errors import AmiError
from ..ami.message import event_time
from ..events import Event, Kind
from ..web.ports import PortError, TargetKind, TransferKind
from .tracker import CallTracker, Leg

log = logging.getLogger(__name__)

_TARGET = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_DIALLABLE = re.compile(r"^[0-9]{1,40}$")  # what Atxfer can send as DTMF (and agents' ids are)
_AGI_ADDRESS = re.compile(r"^[A-Za-z0-9.:\[\]_-]{1,100}$")  # host:port, as the dialplan's CTI_AGI
_CHANNEL_SUFFIX = re.compile(r"-[0-9a-f]+(;[12])?$")  # what Asterisk appends to a dial string
CODE_CONTEXT = "transfer-code"
AGENT_CONTEXT = "transfer-agent"
DESK_TRANSFER_MEMORY_S = 600.0  # a completed transfer this soon after the desktop started one is that one


class AgentChannels:
    """Which agent a channel belongs to, from the ACD's dial strings (pure).

    `PJSIP/agent1001-0000002a` was dialled as `PJSIP/agent1001`; `Local/1001@sim-agents-00000003;1`
    as `Local/1001@sim-agents`. Built from (agent id, dial string) pairs; a channel whose dial string
    is not one of them falls back to the usual `PJSIP/agent<id>` form, or None."""

    def __init__(self, dials: Iterable[tuple[str, str]] = ()) -> None:
        self._by_dial = {dial: agent for agent, dial in dials}

    @classmethod
    def from_acd(cls, cfg: Any) -> AgentChannels:
        """From an AcdConfig: every configured agent's `dial_string`."""
        return cls((a.id, cfg.dial_string(a.id)) for a in cfg.agents)

    def __call__(self, channel: str) -> str | None:
        base = _CHANNEL_SUFFIX.sub("", channel)
        agent = self._by_dial.get(base)
        if agent is not None:
            return agent
        m = re.fullmatch(r"PJSIP/agent([A-Za-z0-9_]{1,40})", base)
        return m.group(1) if m else None


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
    def call_queue(self, call_id: str) -> tuple[str, str] | None: ...
    def agent_ids(self) -> list[str]: ...


def call_agent(acd_agent: str | None, legs: Iterable[Leg], agent_of: Callable[[str], str | None]) -> str | None:
    """Whose call it is now (pure): the ACD's agent while their leg is in the call; else the agent
    whose leg answered last (a transfer target, or the desk an escalation reached); else the ACD's."""
    legs = list(legs)
    if acd_agent is not None and any(agent_of(leg.channel) == acd_agent for leg in legs):
        return acd_agent
    answered = sorted((leg.answered_at, leg.started, agent) for leg in legs
                      if leg.answered_at is not None and (agent := agent_of(leg.channel)) is not None)
    return answered[-1][2] if answered else acd_agent


class AmiCallControl:
    def __init__(self, trackers: dict[str, CallTracker], clients: dict[str, _Ami], engine: _AgentOf,
                 emit: Callable[[Event], None], now: Callable[[], float], *,
                 atxfer_start_s: float = 6.0, queue_codes: Mapping[str, str] | None = None,
                 agent_of: Callable[[str], str | None] | None = None) -> None:
        self.trackers = trackers
        self.clients = clients
        self.engine = engine
        self.emit = emit
        self.now = now
        self.atxfer_start_s = atxfer_start_s  # how long the consultation call may take to appear
        self.queue_codes = dict(queue_codes or {})  # skill -> the code an attended transfer dials
        self.agent_of = agent_of or AgentChannels()
        self._desk_transfers: dict[str, float] = {}  # call id -> when the desktop started a transfer

    def live_calls(self) -> list[dict[str, Any]]:
        out = []
        now = self.now()
        for server, tracker in self.trackers.items():
            for snap in tracker.live_calls(now):
                snap["server"] = server
                call = tracker.calls.get(snap["call_id"])
                snap["agent_id"] = self._agent(snap["call_id"], call.legs.values() if call else ())
                out.append(snap)
        return out

    def _agent(self, call_id: str, legs: Iterable[Leg]) -> str | None:
        return call_agent(self.engine.call_agent(call_id), legs, self.agent_of)

    def caller_number(self, call_id: str) -> str:
        """The caller's number as their leg shows it now ('' for an unknown call or number)."""
        try:
            _, legs = self._find(call_id)
        except PortError:
            return ""
        num = self._caller_leg(legs).caller_num
        return "" if num in ("", "<unknown>") else num

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
        earliest leg that dialled (later diallers are agents consulting someone, or the consultation
        channel of an escalation ringing the desk; the leg the caller dialled may be gone since, as
        after a transfer). Before any Dial (or after a resync) the first leg in the `hotline` context.
        """
        dialling = [leg for leg in legs if leg.dialled]
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

    def note_completed_transfer(self, server: str, call_id: str, agent_id: str, kind: str,
                                when: float | None = None) -> None:
        """Asterisk says an agent's transfer completed (at `when`, Asterisk's time): log `acd.transfer` if
        the desktop did not start it (the agent used the phone's transfer keys), so the KPIs count every
        transfer once."""
        started = self._desk_transfers.pop(call_id, None)
        if started is not None and self.now() - started <= DESK_TRANSFER_MEMORY_S:
            return
        self.emit(Event(kind=Kind.ACD_TRANSFER, ts=self.now() if when is None else when, call_id=call_id,
                        agent_id=agent_id, server=server,
                        data={"target": "", "target_kind": "phone", "kind": kind, "escalated": False,
                              "by": "phone"}))

    async def hangup(self, call_id: str) -> None:
        server, legs = self._find(call_id)
        caller = self._caller_leg(legs)
        await self._act(server, "Hangup", {"Channel": caller.channel, "Cause": "16"})

    async def transfer(self, call_id: str, target_kind: TargetKind, target: str, kind: TransferKind,
                       *, escalated: bool = False) -> None:
        if not _TARGET.match(target):
            raise PortError("bad-target", "a transfer target is letters, digits, _ and - only", 422)
        context, exten = ("agents" if target_kind == "agent" else "transfer-queue"), target
        if kind == "attended" and target_kind == "queue":
            code = self.queue_codes.get(target)
            if code is None:
                raise PortError("no-transfer-code",
                                f"queue {target!r} has no transfer code (acd.yaml transfer_codes): an attended "
                                "transfer dials its target as DTMF digits; transfer to it blind", 422)
            context, exten = CODE_CONTEXT, code
        elif kind == "attended" and not _DIALLABLE.match(target):
            raise PortError("attended-needs-digits",
                            f"an attended transfer dials {target!r} as DTMF digits, so an agent's id must be a "
                            "number", 422)
        if target_kind == "agent" and target not in self.engine.agent_ids():
            raise PortError("unknown-agent", f"no agent {target!r} to transfer to: the caller stays with you", 404)
        server, legs = self._find(call_id)
        caller = self._caller_leg(legs)
        agent_id = self._agent(call_id, legs)
        if target_kind == "agent" and target == agent_id:
            raise PortError("transfer-to-self", "this call is already yours", 422)
        if kind == "blind":
            if target_kind == "agent":
                context = AGENT_CONTEXT
                # where the caller goes back to if the target cannot take the call
                queue, tier = self.engine.call_queue(call_id) or ("", "")
                await self._act(server, "Setvar", {"Channel": caller.channel, "Variable": "CTI_XFER",
                                                   "Value": f"{agent_id or ''}/{queue}/{tier}"})
            await self._act(server, "Redirect", {"Channel": caller.channel, "Context": context,
                                                 "Exten": exten, "Priority": "1"})
        else:
            agent_leg = self._agent_leg(legs, caller, agent_id)
            if context == CODE_CONTEXT:
                await self._carry_cti_address(server, caller, agent_leg)
            before = {leg.uniqueid for leg in legs}
            await self._act(server, "Atxfer", {"Channel": agent_leg.channel, "Context": context, "Exten": exten})
            if not await self._consultation_started(server, call_id, f"Local/{exten}@{context}-", before):
                raise PortError("transfer-not-started",
                                f"Asterisk accepted the attended transfer but started no call to {target} within "
                                f"{self.atxfer_start_s:g} s: the agent's leg has no transfer feature (the ACD must "
                                "dial agents with option t; features.conf must define atxfer)", 409)
        data: dict[str, Any] = {"target": target, "target_kind": target_kind, "kind": kind, "escalated": escalated,
                                "context": context}
        if exten != target:
            data["code"] = exten
        self.emit(Event(kind=Kind.ACD_TRANSFER, ts=self.now(), call_id=call_id, agent_id=agent_id,
                        server=server, data=data))
        now = self.now()
        for old in [c for c, t in self._desk_transfers.items() if now - t > DESK_TRANSFER_MEMORY_S]:
            del self._desk_transfers[old]  # blind ones (a Redirect) never report a completed transfer
        self._desk_transfers[call_id] = now
        log.info("call %s: %s transfer to %s %s%s", call_id, kind, target_kind, target,
                 " (escalation)" if escalated else "")

    async def _carry_cti_address(self, server: str, caller: Leg, agent_leg: Leg) -> None:
        """Copy the caller's CTI_AGI onto the agent's leg (inherited once: by the consultation channel).

        Best effort: without it the consultation uses the dialplan's global CTI_AGI."""
        try:
            resp = await self.clients[server].action("Getvar", {"Channel": caller.channel, "Variable": "CTI_AGI"})
            value = str(resp.get("Value", "") or "") if resp.success else ""
            if _AGI_ADDRESS.match(value):
                await self._act(server, "Setvar", {"Channel": agent_leg.channel, "Variable": "_CTI_AGI",
                                                   "Value": value})
        except (AmiError, PortError, AttributeError) as exc:
            log.warning("could not carry CTI_AGI to %s: %s", agent_leg.channel, exc)

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


class _Talks(Protocol):
    """The ACD runtime, as far as transfers end an agent's talk."""

    @property
    def engine(self) -> Any: ...

    def end_talk(self, call_id: str) -> None: ...

    def note_answered(self, call_id: str, when: float | None = None) -> bool: ...


def transfer_listener(acd: _Talks, agent_of: Callable[[str], str | None],
                      on_transfer: Callable[[str, str, str, str, float | None], None] | None = None,
                      ) -> Callable[[str, Any], None]:
    """AMI listener: a completed transfer away from an agent ends their ACD talk (they go to wrap-up);
    the answer of a consultation the ACD serves under its own channel id is noted.

    Asterisk reports `AttendedTransfer` (desktop Atxfer, a phone's own attended REFER) and
    `BlindTransfer` (a phone's blind REFER; the desktop's blind transfer is a Redirect, which the
    ACD sees as its Dial returning) with `Result: Success`. The transferer's channel names the
    agent; the call the ACD has them talking on is ended, so they wrap up now and not when the
    caller, by then talking to someone else, hangs up (the caller's Dial returns then and finds
    the talk already closed). `acd.transfer` is logged by whoever started the transfer; a transfer
    made with the phone's own keys has no such starter, so `on_transfer(server, call_id, agent, kind, when)`
    (AmiCallControl.note_completed_transfer) logs it, at Asterisk's time, unless the desktop started it.
    """

    def listener(server: str, msg: Any) -> None:
        event = msg.get("Event")
        if event == "DialEnd":
            # A consultation queued under its own id (not the Linkedid: the caller holds that one)
            # is answered when the channel that dialled, the consultation leg, says so.
            uid = msg.get("Uniqueid")
            if msg.get("DialStatus") == "ANSWER" and uid and uid != msg.get("Linkedid"):
                acd.note_answered(str(uid), event_time(msg))
            return
        if event == "AttendedTransfer":
            channel = msg.get("OrigTransfererChannel")
        elif event == "BlindTransfer":
            channel = msg.get("TransfererChannel")
        else:
            return
        if msg.get("Result") != "Success" or not channel:
            return
        agent = agent_of(str(channel))
        if agent is None or agent not in acd.engine.agent_ids():
            return
        call_id = acd.engine.agent_call(agent)
        if call_id is None or acd.engine.call_state(call_id) != TALKING:
            return
        log.info("call %s: agent %s transferred it away (%s); wrap-up", call_id, agent, event)
        try:
            acd.end_talk(call_id)
        except AcdError:
            log.exception("ACD could not close call %s after its transfer", call_id)
        if on_transfer is not None:
            on_transfer(server, call_id, agent, "attended" if event == "AttendedTransfer" else "blind",
                        event_time(msg))

    return listener
