"""How calls reach the ACD from the dialplan, and what Asterisk tells it about them (the wiring connects these).

    AGI /queue/<skill or code>   a caller transferred to a queue re-enters the ACD (blind, or a consultation)
    AGI /transfer/<agent>        a caller blind-transferred to an agent: rung, or brought back
    AGI /outbound-agent          a customer who pressed 0 in an outbound call: the outbound skill
    AMI DialBegin / DialEnd      ring and answer times, at Asterisk's own timestamps
    AMI DeviceStateChange        an agent's phone busy outside the ACD, or unregistered (engine.device_state)
    ControlPlayback              an announcement stopped when an agent is offered to the caller hearing it

Each AGI route is refused while the leader features are stopped (`leader_only`): the session ends without
CTI_DONE, so the dialplan's fallback takes the call, or the next CTI node.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from ..acd.model import AcdError
from ..acd.records import DEVICE_BUSY, DEVICE_FREE, DEVICE_UNAVAILABLE
from ..acd.runtime import AcdRuntime
from ..agi.channel import AgiChannel, AgiError, AgiHandler, AgiHangup, get_variable, linked_id
from ..ami.message import event_time
from ..lifecycle import FeatureGroup, TaskOwner
from ..lograte import LogBurst
from .server import CtiServer

log = logging.getLogger(__name__)


def on_dial_end(acd: AcdRuntime) -> Any:
    """AMI DialEnd(ANSWER) on a caller we hold: the agent answered now (Dial itself returns at hang-up)."""

    def listener(server: str, msg: Any) -> None:
        if msg.get("Event") == "DialEnd" and msg.get("DialStatus") == "ANSWER":
            call_id = msg.get("Linkedid") or msg.get("Uniqueid")
            if call_id:
                acd.note_answered(str(call_id), event_time(msg))  # Asterisk's time of the answer

    return listener


# Asterisk's device states (ast_devstate_str) as the ACD reads them; UNKNOWN says nothing (a phone never seen
# busy reads NOT_INUSE), so it counts as free, the way an agent was taken before the CTI heard anything.
DEVICE_STATES = {"NOT_INUSE": DEVICE_FREE, "UNKNOWN": DEVICE_FREE, "INUSE": DEVICE_BUSY, "BUSY": DEVICE_BUSY,
                 "RINGING": DEVICE_BUSY, "RINGINUSE": DEVICE_BUSY, "ONHOLD": DEVICE_BUSY,
                 "UNAVAILABLE": DEVICE_UNAVAILABLE, "INVALID": DEVICE_UNAVAILABLE}


class AgentPhones:
    """AMI DeviceStateChange of an agent's phone (`PJSIP/agent1001`): the ACD learns it is busy with a call that
    is not the ACD's, or unregistered, and offers that agent nothing meanwhile (engine.device_state). Only an
    agent whose own dial string is a PJSIP device, that device (a Local dial string's device state is the
    dialplan's, not a phone's: the simulated agents are not watched), only from the server the agent's phone
    registers on (acd.yaml `server`, when set), only while it runs (a leader feature: the ACD's
    node). When it starts, and when an Asterisk logs the CTI in again (`FullyBooted`), it reads every phone's
    state at once (AMI DeviceStateList, class call): a phone unregistered or busy before then is known too."""

    def __init__(self, server: CtiServer, acd: AcdRuntime) -> None:
        self.server = server
        self.acd = acd
        cfg = acd.cfg
        self._agent_of = {dial: a.id for a in cfg.agents if (dial := cfg.dial_string(a.id)).startswith("PJSIP/")}
        self._servers = acd.cfg.agent_servers
        self._running = False
        self._live: set[str] = set()  # agents heard of live since a list was asked for (a list must not undo them)
        self._tasks = TaskOwner("agent phones")

    def _device(self, server: str, msg: Any) -> tuple[str, str] | None:
        agent = self._agent_of.get(str(msg.get("Device") or ""))
        state = DEVICE_STATES.get(str(msg.get("State") or ""))
        if agent is None or state is None or self._servers.get(agent, server) != server:
            return None
        return agent, state

    def _apply(self, agent: str, state: str) -> None:
        try:
            self.acd.note_device(agent, state)
        except AcdError as exc:  # not an agent of the ACD's
            log.debug("phone of agent %s: %s", agent, exc)

    def on_ami(self, server: str, msg: Any) -> None:
        if not self._running:
            return
        event = msg.get("Event")
        if event == "DeviceStateChange":
            got = self._device(server, msg)
            if got is not None:
                self._live.add(got[0])
                self._apply(*got)
        elif event == "FullyBooted":
            self._read_soon(server)

    def _read_soon(self, server: str) -> None:
        self._tasks.spawn(self.read(server), name=f"agent-phones-{server}")

    async def read(self, server: str) -> int:
        """Every agent phone's state on `server` now (DeviceStateList); how many were agents' phones."""
        client = self.server.ami.get(server)
        if client is None or not client.connected:
            return 0
        self._live.clear()
        try:
            reply = await client.action("DeviceStateList", timeout=10.0)
        except Exception as exc:  # the live changes still come; only what was before them is missed
            log.warning("AMI %s: could not read the agents' phones: %s", server, exc)
            return 0
        n = 0
        for msg in reply.events:
            got = self._device(server, msg)
            if got is not None and self._running:
                n += 1
                if got[0] not in self._live:  # a live change came after the list was made
                    self._apply(*got)
        return n

    @asynccontextmanager
    async def running(self) -> AsyncIterator[AgentPhones]:
        self._running = True
        try:
            for name, client in self.server.ami.items():
                if client.connected:  # connected before we ran: its FullyBooted went by
                    self._read_soon(name)
            yield self
        finally:
            self._running = False
            await self._tasks.aclose()


def on_dial_begin(acd: AcdRuntime, agent_of: Callable[[str], str | None]) -> Any:
    """AMI DialBegin from a caller we hold to the agent the ACD offered them: the ring starts then, at
    Asterisk's Timestamp (ring time = DialBegin to answer as Asterisk stamped both). The caller is known
    by its Linkedid, a consultation the ACD serves under its own id by its Uniqueid."""

    def listener(server: str, msg: Any) -> None:
        if msg.get("Event") != "DialBegin":
            return
        agent = agent_of(str(msg.get("DestChannel") or ""))
        if agent is None:
            return
        when = event_time(msg)
        for call_id in (msg.get("Uniqueid"), msg.get("Linkedid")):
            if call_id and acd.note_ringing(str(call_id), agent, when):
                return

    return listener


def interrupter(server: CtiServer) -> Callable[[str], Awaitable[object]]:
    """Stop what plays to a channel (an announcement, when an agent is offered to the caller hearing it):
    AMI ControlPlayback, on every Asterisk we are connected to (the channel is on one of them)."""

    async def interrupt(channel: str) -> object:
        results = []
        for client in server.ami.values():
            if client.connected:
                results.append(await client.action("ControlPlayback", {"Channel": channel, "Control": "stop"},
                                                   timeout=2.0))
        return results

    return interrupt


def queue_route(acd: AcdRuntime, caller_of: Callable[[str], str] = lambda call_id: "") -> Any:
    """AGI /queue/<skill or transfer code>: a caller transferred to a queue re-enters the ACD.

    Blind ([transfer-queue]): the caller's own leg, known to the ACD by the call's Linkedid (a
    previous ACD session on this leg may still be closing: wait for it briefly). Attended
    ([transfer-code], e.g. an escalation): the consultation channel, while the caller it shares
    the Linkedid with is still being served (on hold with their agent): it is queued under its own
    Uniqueid, else the ACD would refuse it ("already being served") and the dialplan would drop it
    into the fallback queue; its caller is the call's (`caller_of`), not the agent it was dialled
    from. The tier comes from the tier rules."""

    async def handle(chan: AgiChannel) -> None:
        parts = [p for p in chan.path.split("?")[0].split("/") if p]
        skill = parts[1] if len(parts) > 1 else ""
        skill = acd.cfg.transfer_codes.get(skill, skill)
        call_id = own_id = chan.headers.get("agi_uniqueid", "")
        caller = chan.headers.get("agi_callerid", "")
        kind = ""
        try:
            call_id = await linked_id(chan) or call_id
            if chan.headers.get("agi_context") != "transfer-code":
                for _ in range(20):  # the same leg's previous session ends as it is redirected
                    if acd.engine.call_state(call_id) is None:
                        break
                    await asyncio.sleep(0.05)
            if own_id and acd.engine.call_state(call_id) is not None:
                log.info("call %s is being served: queueing its consultation channel %s apart", call_id, own_id)
                caller = caller_of(call_id) or caller
                call_id = own_id
                kind = "consult"  # an agent's leg, not a new customer call (left out of inbound KPIs)
            lang = ""
            if not kind:  # the caller's own leg: the language the ACD noted on it before (CTI_LANG)
                lang = await get_variable(chan, "CTI_LANG")
            served = await acd.serve(chan, call_id, skill, None, caller, None, kind=kind, lang=lang)
            log.info("transferred call %s to queue %s: %s", call_id, skill, served.outcome)
        except (AgiHangup, AgiError) as exc:
            log.info("queue session ended: %s", exc)
        except Exception:
            log.exception("transfer of %s to queue %r failed; the dialplan falls back", call_id, skill)

    return handle


_XFER_PART = re.compile(r"^[A-Za-z0-9_-]{0,40}$")


def transfer_route(acd: AcdRuntime) -> Any:
    """AGI /transfer/<agent>: a caller blind-transferred to an agent ([transfer-agent]); the ACD rings the
    agent and, if that fails, brings the caller back (`AcdRuntime.serve_transfer`). The transferring agent,
    queue and tier come from the caller's CTI_XFER (`<agent>/<queue>/<tier>`, set by the desktop's transfer)."""

    async def handle(chan: AgiChannel) -> None:
        parts = [p for p in chan.path.split("?")[0].split("/") if p]
        target = parts[1] if len(parts) > 1 else ""
        caller = chan.headers.get("agi_callerid", "")
        call_id = chan.headers.get("agi_uniqueid", "")
        try:
            call_id = await linked_id(chan) or call_id
            xfer = await get_variable(chan, "CTI_XFER")
            fields = xfer.split("/")
            if len(fields) != 3 or not all(_XFER_PART.match(f) for f in fields) or \
                    target not in acd.engine.agent_ids():
                log.warning("transfer of %s to agent %r: no usable CTI_XFER %r; the dialplan falls back",
                            call_id, target, xfer[:100])
                return
            from_agent, queue, tier = fields
            served = await acd.serve_transfer(chan, call_id, target, from_agent=from_agent or None,
                                              skill=queue or None, tier=tier or None, caller=caller)
            log.info("transfer of %s to agent %s: %s", call_id, target, served.outcome)
        except (AgiHangup, AgiError) as exc:
            log.info("transfer session ended: %s", exc)
        except Exception:
            log.exception("transfer of %s to agent %r failed; the dialplan falls back", call_id, target)

    return handle


def outbound_agent_route(acd: AcdRuntime) -> Any:
    """A customer who pressed 0 in an outbound call: into the ACD with the outbound skill and their tier,
    in the language their message was played in (MSG_LANG; its desk, if that language has one)."""

    async def handle(chan: AgiChannel) -> None:
        try:
            call_id = await linked_id(chan) or chan.headers.get("agi_uniqueid", "")
            skill = await get_variable(chan, "OUT_SKILL") or "outbound"
            tier = await get_variable(chan, "OUT_TIER") or None
            lang = await get_variable(chan, "MSG_LANG")
            caller = chan.headers.get("agi_callerid", "") or chan.headers.get("agi_dnid", "")
            served = await acd.serve(chan, call_id, skill, tier, caller, None, lang=lang, route_by_language=True)
            log.info("outbound call %s to agent: %s", call_id, served.outcome)
        except (AgiHangup, AgiError) as exc:
            log.info("outbound-agent session ended: %s", exc)

    return handle


class NotLeading(RuntimeError):
    """The ACD is not running on this node (its leader features are stopped): the dialplan falls back."""


def leader_only(leader: FeatureGroup, handler: AgiHandler) -> AgiHandler:
    """An AGI route into the ACD, callbacks or dialer: refused while the leader features are stopped (the
    session ends without CTI_DONE, so the dialplan's fallback takes the call, or the next CTI node)."""
    refused = LogBurst(log, "AGI session refused: the ACD is not running on this node; the dialplan falls back")

    async def handle(chan: AgiChannel) -> None:
        if not leader.running:
            refused.add(f"{chan.path} {chan.headers.get('agi_uniqueid', '')}")
            return
        await handler(chan)

    return handle
