"""Desktop call control against the real sandbox Asterisk: blind and attended transfers, hang-up.

The whole server runs in-process as it ships (`build_server` on a copy of config/, agents
dialled as `PJSIP/agent{id}` with the sample's `dial_options`); agents are real PJSIP
softphones (tests/sipphone.py) registered on the sandbox's endpoints. Each caller is a
`Local/95598@hotline` channel that walks the IVR, presses 0 and is answered by agent A
(1003, billing) through the ACD; then `AmiCallControl` (the desktop's CallControl port)
acts on the live call and the test checks what Asterisk did: who is bridged with whom
(CoreShowChannels: same BridgeId, or the two halves of a Local channel), which legs ended,
and what the CTI logged.

Agents: A = 1003 (billing, takes every caller), B = 1005 (transfer target, not in the ACD),
C = 1010 (complaint, ready: the queue target), S = 1004 (shift leader: the `supervisor` desk),
U = 1006 (an ACD agent whose phone is not registered: Asterisk cannot reach it), Q = 1008 (billing, like A).

AMI Atxfer types its target as DTMF into the agent's bridge, so a queue (a skill name) cannot
be dialled by name; seen here: Asterisk answers Success, holds the caller, prompts the agent,
times out and does nothing. Queues an attended transfer may reach therefore have 4-digit codes
(acd.yaml transfer_codes, `9001` = supervisor) dialled into [transfer-code]; the desktop's
escalation is one. When A completes an attended transfer, A wraps up at once (AMI
AttendedTransfer), not when the caller, by then with someone else, hangs up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ctiserver.app.server import CtiServer
from ctiserver.app.wiring import build_server
from ctiserver.config import load_server_config
from ctiserver.events import Event, Kind
from ctiserver.store.query import fetch_events
from ctiserver.web.auth import create_user
from ctiserver.web.ports import PortError
from tests.asterisk_fixture import AmiRecorder, event_is, originate_caller
from tests.live_config import sandbox_config
from tests.sipphone import SoftPhone, agent_phone

pytestmark = [pytest.mark.asterisk, pytest.mark.pjsip_agents]

A, B, C, S, U, Q = "1003", "1005", "1010", "1004", "1006", "1008"
PASSWORD = "sandbox-desk-pw"


async def until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Live:
    server: CtiServer
    ami: AmiRecorder
    sip: tuple[str, int]
    events: list[Event] = field(default_factory=list)

    @property
    def calls(self) -> Any:
        return self.server.features.calls

    def acd(self, kind: str, call_id: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind and e.call_id == call_id]

    async def call_answered_by_a(self, number: str, phone_a: SoftPhone) -> str:
        """A caller walks the IVR (unknown number: language menu, 0 for an agent), agent A answers.

        Returns the call id (the Linkedid), found by the caller's number in the ACD's log."""
        answered = len([c for c in phone_a.calls if c.answered_at is not None])
        await originate_caller(self.ami, number, keys="0", hold_s=50,
                               agi=f"127.0.0.1:{self.server.cfg.agi.port}")
        enq = await until(lambda: [e for e in self.events if e.kind == Kind.ACD_ENQUEUE
                                   and e.data.get("caller") == number], 25, f"{number} queued")
        call_id = enq[0].call_id
        assert call_id
        await phone_a.wait_for_call("answered", timeout=20, count=answered + 1)
        await until(lambda: self.acd(Kind.ACD_ANSWER, call_id), 10, "the ACD's answer")
        return call_id

    async def bridges(self) -> dict[str, str]:
        """Every channel Asterisk has now, with its bridge (empty when not bridged)."""
        resp = (await self.ami.action("CoreShowChannels")).raise_for_error("CoreShowChannels")
        return {str(e.get("Channel")): str(e.get("BridgeId") or "") for e in resp.events
                if e.get("Event") == "CoreShowChannel"}

    async def reaches(self, channel: str) -> set[str]:
        """Channels whose audio reaches `channel`: same bridge, or across a Local channel's two halves."""
        chans = await self.bridges()
        seen, todo = {channel}, [channel]
        while todo:
            here = todo.pop()
            peers = {c for c, b in chans.items() if b and b == chans.get(here)}
            if here.startswith("Local/") and here[-2:] in (";1", ";2"):
                peers.add(here[:-1] + ("2" if here.endswith("1") else "1"))
            for peer in peers & set(chans) - seen:
                seen.add(peer)
                todo.append(peer)
        return seen

    async def wait_reaches(self, channel: str, pred: Callable[[set[str]], bool], timeout: float,
                           what: str) -> set[str]:
        deadline = time.monotonic() + timeout
        while True:
            got = await self.reaches(channel)
            if pred(got):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; {channel} reaches {sorted(got)}")
            await asyncio.sleep(0.2)

    def caller_end(self, call_id: str) -> str:
        """The caller's own channel: the `;1` half of the originated Local/95598@hotline."""
        legs = self.server.trackers["pbx1"].calls[call_id].legs.values()
        return next(leg.channel for leg in legs if leg.channel.startswith("Local/95598@hotline-")
                    and leg.channel.endswith(";1"))

    def agent_channel(self, call_id: str, agent: str) -> str:
        legs = self.server.trackers["pbx1"].calls[call_id].legs.values()
        return next(leg.channel for leg in legs if leg.channel.startswith(f"PJSIP/agent{agent}-"))

    async def stored(self, call_id: str, kind: str) -> list[Event]:
        await self.server.store.flush(timeout=10)
        return await fetch_events(self.server.store.engine, call_id=call_id, kinds=[kind])

    async def hang_up_everything_of(self, call_ids: list[str]) -> None:
        for call_id in call_ids:
            call = self.server.trackers["pbx1"].calls.get(call_id)
            for leg in list(call.legs.values()) if call else []:
                await self.ami.action("Hangup", {"Channel": leg.channel})


async def _gone(live: Live, channel: str) -> bool:
    return channel not in await live.bridges()


def agent_of(channels: set[str], agent: str) -> bool:
    return any(c.startswith(f"PJSIP/agent{agent}-") for c in channels)


@pytest.fixture
async def live(asterisk_sandbox: Any, ami: AmiRecorder, tmp_path: Path) -> AsyncIterator[Live]:
    cfg_dir = sandbox_config(tmp_path, asterisk_sandbox)
    server = await build_server(cfg_dir, load_server_config(cfg_dir), sample_data=True, base_dir=tmp_path)
    harness = Live(server, ami, (asterisk_sandbox.ami_host, asterisk_sandbox.sip_port))
    server.event_listeners.append(harness.events.append)
    await server.start()
    ours: list[str] = []
    try:
        await asyncio.wait_for(server.ami["pbx1"].wait_connected(), 20)
        await server.features.ivr.wait_prerendered()
        server.features.acd.login(A, ready=True)
        yield harness
    finally:
        ours = sorted({e.call_id for e in harness.events if e.kind == Kind.ACD_ENQUEUE and e.call_id})
        await harness.hang_up_everything_of(ours)
        await server.stop()


async def test_blind_transfer_to_an_agent(live: Live) -> None:
    async with agent_phone(A, live.sip, answer_after_s=0.3, talk_s=None) as phone_a, \
            agent_phone(B, live.sip, answer_after_s=0.5, talk_s=None) as phone_b:
        call_id = await live.call_answered_by_a("13900000101", phone_a)
        caller = live.caller_end(call_id)
        assert agent_of(await live.reaches(caller), A)

        await live.calls.transfer(call_id, "agent", B, "blind")

        talk = await phone_b.wait_for_call("answered", timeout=15)
        assert "13900000101" in talk.caller  # B is rung with the caller's number, not agent A's
        now = await live.wait_reaches(caller, lambda s: agent_of(s, B), 10, "B bridged with the caller")
        assert not agent_of(now, A), now
        ended = await phone_a.wait_for_call("ended", timeout=5)
        assert ended.ended_by == "remote"  # Asterisk hung A up: the caller left A's bridge
        [xfer] = live.acd(Kind.ACD_TRANSFER, call_id)
        assert (xfer.agent_id, xfer.data["kind"], xfer.data["target_kind"], xfer.data["target"]) == \
               (A, "blind", "agent", B)
        assert len(await live.stored(call_id, Kind.ACD_TRANSFER)) == 1  # in the store, for the KPIs
        # the ACD closed A's talk (A goes to wrap-up) and did not queue the caller again
        await until(lambda: live.acd(Kind.ACD_COMPLETE, call_id), 10, "A's talk completed")
        assert len(live.acd(Kind.ACD_ENQUEUE, call_id)) == 1


async def test_blind_transfer_to_a_queue_reenters_the_acd(live: Live) -> None:
    live.server.features.acd.login(C, ready=True)  # complaint desk: free, and not a billing agent
    async with agent_phone(A, live.sip, answer_after_s=0.3, talk_s=None) as phone_a, \
            agent_phone(C, live.sip, answer_after_s=0.5, talk_s=None) as phone_c:
        call_id = await live.call_answered_by_a("13900000102", phone_a)
        caller = live.caller_end(call_id)

        await live.calls.transfer(call_id, "queue", "complaint", "blind")

        # through [transfer-queue] and AGI /queue/complaint back into the CTI's ACD
        await until(lambda: len(live.acd(Kind.ACD_ENQUEUE, call_id)) == 2, 15, "the caller queued again")
        requeued = live.acd(Kind.ACD_ENQUEUE, call_id)[1]
        assert requeued.queue == "complaint" and requeued.data["caller"] == "13900000102"
        answers = await until(lambda: [e for e in live.acd(Kind.ACD_ANSWER, call_id) if e.agent_id == C],
                              15, "C answered through the ACD")
        assert answers[0].queue == "complaint"
        await phone_c.wait_for_call("answered", timeout=5)
        now = await live.wait_reaches(caller, lambda s: agent_of(s, C), 10, "C bridged with the caller")
        assert not agent_of(now, A), now
        assert (await phone_a.wait_for_call("ended", timeout=5)).ended_by == "remote"
        [xfer] = live.acd(Kind.ACD_TRANSFER, call_id)
        assert (xfer.agent_id, xfer.data["kind"], xfer.data["target_kind"]) == (A, "blind", "queue")
        fallbacks = live.ami.matching(lambda m: event_is("UserEvent", UserEvent="CtiFallback")(m)
                                      and m.get("Linkedid") == call_id)
        assert not fallbacks and not live.ami.matching(
            lambda m: event_is("QueueCallerJoin", Queue="fallback")(m) and m.get("Linkedid") == call_id)


async def test_attended_transfer_to_an_agent(live: Live) -> None:
    """Atxfer: A consults B while the caller is on hold, then hangs up; the caller is B's (via a Local channel).

    Needs what ships: the ACD dials agents with option `t` (config/acd.yaml) and
    asterisk/features.conf defines the atxfer code; without either Asterisk answers
    Atxfer with Success and does nothing, which `transfer` reports as transfer-not-started."""
    async with agent_phone(A, live.sip, answer_after_s=0.3, talk_s=None) as phone_a, \
            agent_phone(B, live.sip, answer_after_s=0.5, talk_s=None) as phone_b:
        call_id = await live.call_answered_by_a("13900000103", phone_a)
        caller, a_chan = live.caller_end(call_id), live.agent_channel(call_id, A)

        await live.calls.transfer(call_id, "agent", B, "attended")  # returns once the consult call exists

        [xfer] = live.acd(Kind.ACD_TRANSFER, call_id)
        assert (xfer.data["kind"], xfer.data["target"]) == ("attended", B)
        consult = await phone_b.wait_for_call("answered", timeout=10)
        assert phone_a.calls[-1].state == "answered"  # A is still on: consulting
        talk = await live.wait_reaches(a_chan, lambda s: agent_of(s, B), 10, "A talking to B")
        assert caller not in talk  # the caller does not hear the consultation...
        await live.ami.wait_for(lambda m: event_is("MusicOnHoldStart")(m) and m.get("Linkedid") == call_id
                                and str(m.get("Channel", "")).startswith("Local/95598@hotline-"), timeout=5)
        assert agent_of(await live.reaches(caller), B) is False  # ...and is on hold

        await phone_a.hangup(phone_a.calls[-1].call_id)  # A hangs up: the transfer completes

        done = await live.ami.wait_for(lambda m: event_is("AttendedTransfer")(m)
                                       and m.get("OrigTransfererLinkedid") == call_id, timeout=10)
        assert done[0].get("Result") == "Success"
        now = await live.wait_reaches(caller, lambda s: agent_of(s, B), 10, "B bridged with the caller")
        assert not agent_of(now, A)
        await until(lambda: _gone(live, a_chan), 10, "A's channel to be gone")  # A's hang-up takes a moment
        assert consult.state == "answered"  # B's call is the one that now carries the caller
        # A wraps up now, not when the caller (talking to B) hangs up; the transfer was logged once
        [complete] = await until(lambda: live.acd(Kind.ACD_COMPLETE, call_id), 5, "A's talk completed")
        assert complete.agent_id == A and live.server.features.acd.engine.agent_state(A)[0] == "wrap_up"
        assert len(live.acd(Kind.ACD_TRANSFER, call_id)) == 1
        assert B in {c["agent_id"] for c in live.calls.live_calls() if c["call_id"] == call_id}


async def test_hangup_ends_the_call(live: Live) -> None:
    async with agent_phone(A, live.sip, answer_after_s=0.3, talk_s=None) as phone_a:
        call_id = await live.call_answered_by_a("13900000104", phone_a)
        channels = {leg.channel for leg in live.server.trackers["pbx1"].calls[call_id].legs.values()}
        assert len(channels) == 3  # the caller's Local pair and A's PJSIP leg

        await live.calls.hangup(call_id)

        await until(lambda: [e for e in live.events if e.kind == Kind.CALL_END and e.call_id == call_id], 10,
                    "the call's end")
        assert (await phone_a.wait_for_call("ended", timeout=5)).ended_by == "remote"
        assert not channels & set(await live.bridges())  # every leg is gone from Asterisk
        assert call_id not in live.server.trackers["pbx1"].calls
        with pytest.raises(PortError) as gone:
            await live.calls.transfer(call_id, "agent", B, "blind")
        assert gone.value.status == 404


class Desk:
    """Agents' desktops: the real HTTP API of the server under test, one session per agent."""

    def __init__(self, live: Live, web: aiohttp.ClientSession) -> None:
        self.base, self.web = f"http://127.0.0.1:{live.server.http_port}", web
        self.engine = live.server.store.engine
        self.clock = live.server.clock
        self.tokens: dict[str, str] = {}

    async def sign_in(self, agent: str) -> None:
        await create_user(self.engine, agent, f"坐席{agent}", "agent", PASSWORD, now=self.clock.now())
        async with self.web.post(f"{self.base}/api/auth/login",
                                 json={"agent_no": agent, "password": PASSWORD}) as r:
            assert r.status == 200, await r.text()
            self.tokens[agent] = (await r.json())["token"]

    async def post(self, agent: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        async with self.web.post(self.base + path, json=body or {},
                                 headers={"Authorization": f"Bearer {self.tokens[agent]}"}) as r:
            return r.status, await r.json()

    async def pushes(self, agent: str) -> list[dict[str, Any]]:
        """What the agent's desktop was pushed so far (its stream replayed from the start), up to the snapshot."""
        auth = {"Authorization": f"Bearer {self.tokens[agent]}"}
        async with self.web.get(f"{self.base}/api/me", headers=auth) as r:
            epoch = (await r.json())["ws_epoch"]
        async with self.web.ws_connect(f"{self.base}/ws", headers=auth) as ws:
            await ws.send_json({"type": "hello", "epoch": epoch, "last": {f"agent:{agent}": 0}})
            got: list[dict[str, Any]] = []
            while not got or got[-1]["type"] != "snapshot":
                got.append(await ws.receive_json(timeout=10))
            return got

    async def calls_of(self, agent: str) -> list[str]:
        async with self.web.get(f"{self.base}/api/calls",
                                headers={"Authorization": f"Bearer {self.tokens[agent]}"}) as r:
            assert r.status == 200, await r.text()
            return [c["call_id"] for c in await r.json()]


async def test_escalation_is_a_warm_transfer_to_the_shift_leader_desk(live: Live) -> None:
    """A presses Escalate: the caller holds, A talks to the shift leader the ACD picked from the
    `supervisor` desk, A hangs up and the caller is the shift leader's, on their desktop too."""
    acd = live.server.features.acd
    async with agent_phone(A, live.sip, answer_after_s=0.3, talk_s=None) as phone_a, \
            agent_phone(S, live.sip, answer_after_s=0.5, talk_s=None) as phone_s, \
            aiohttp.ClientSession() as web:
        desk = Desk(live, web)
        call_id = await live.call_answered_by_a("13900000105", phone_a)
        caller, a_chan = live.caller_end(call_id), live.agent_channel(call_id, A)
        acd.login(S, ready=True)  # after A took the caller: the shift leader is free for escalations
        await desk.sign_in(A)
        await desk.sign_in(S)
        assert call_id in await desk.calls_of(A) and call_id not in await desk.calls_of(S)

        status, body = await desk.post(A, f"/api/calls/{call_id}/escalate", {"note": "客户要求找班长"})

        assert (status, body.get("escalated")) == (200, True), body
        [xfer] = live.acd(Kind.ACD_TRANSFER, call_id)
        assert (xfer.agent_id, xfer.data) == (A, {"target": "supervisor", "target_kind": "queue",
                                                 "kind": "attended", "escalated": True, "code": "9001",
                                                 "context": "transfer-code"})
        # the consultation (Local/9001@transfer-code) entered the ACD's supervisor desk under its own id
        [enq] = await until(lambda: [e for e in live.events if e.kind == Kind.ACD_ENQUEUE
                                     and e.queue == "supervisor"], 10, "the consultation queued")
        consult_id = enq.call_id
        assert enq.data["caller"] == "13900000105"  # the caller's number on the shift leader's screen, not A's
        assert enq.data["kind"] == "consult"  # an agent's leg: not counted as a new inbound call
        assert consult_id and consult_id != call_id
        assert live.server.trackers["pbx1"].call_for_channel(consult_id) == call_id  # a leg of the call
        await until(lambda: [e for e in live.acd(Kind.ACD_ANSWER, consult_id) if e.agent_id == S], 15,
                    "the shift leader answered through the ACD")
        await phone_s.wait_for_call("answered", timeout=5)
        talk = await live.wait_reaches(a_chan, lambda s: agent_of(s, S), 10, "A talking to the shift leader")
        assert caller not in talk  # the caller is on hold meanwhile
        assert acd.engine.agent_state(A)[0] == "on_call" and call_id in await desk.calls_of(A)
        assert not live.ami.matching(lambda m: (event_is("UserEvent", UserEvent="CtiFallback")(m)
                                                or event_is("QueueCallerJoin")(m))
                                     and m.get("Linkedid") == call_id)  # no fallback queue on the way

        await phone_a.hangup(phone_a.calls[-1].call_id)  # A hangs up: the transfer completes

        done = await live.ami.wait_for(lambda m: event_is("AttendedTransfer")(m)
                                       and m.get("OrigTransfererLinkedid") == call_id, timeout=10)
        assert done[0].get("Result") == "Success"
        now = await live.wait_reaches(caller, lambda s: agent_of(s, S), 10, "the shift leader bridged with the caller")
        assert not agent_of(now, A)
        [complete] = await until(lambda: live.acd(Kind.ACD_COMPLETE, call_id), 5, "A's talk completed")
        assert complete.agent_id == A and acd.engine.agent_state(A)[0] == "wrap_up"
        assert acd.engine.agent_state(S)[0] == "on_call"  # still talking to the caller
        assert call_id in await desk.calls_of(S) and call_id not in await desk.calls_of(A)
        assert len(live.acd(Kind.ACD_TRANSFER, call_id)) == 1
        assert len(await live.stored(call_id, Kind.ACD_TRANSFER)) == 1

        status, _ = await desk.post(S, f"/api/calls/{call_id}/hangup")  # the desk controls the call now

        assert status == 200
        await until(lambda: [e for e in live.events if e.kind == Kind.CALL_END and e.call_id == call_id], 10,
                    "the call's end")
        assert (await phone_s.wait_for_call("ended", timeout=5)).ended_by == "remote"
        [done_s] = await until(lambda: live.acd(Kind.ACD_COMPLETE, consult_id), 5, "the shift leader's talk completed")
        assert done_s.agent_id == S and acd.engine.agent_state(S)[0] == "wrap_up"
        assert len(live.acd(Kind.ACD_COMPLETE, call_id)) == 1  # A's talk was closed once


async def test_blind_transfer_to_an_agent_who_does_not_exist_keeps_the_caller(live: Live) -> None:
    """Item 19: Asterisk dialled PJSIP/agent1099, found no such phone and hung the caller up. Now the
    transfer is refused before anything reaches Asterisk, the desktop says why, the caller stays with A."""
    async with agent_phone(A, live.sip, answer_after_s=0.3, talk_s=None) as phone_a, \
            aiohttp.ClientSession() as web:
        desk = Desk(live, web)
        call_id = await live.call_answered_by_a("13900000106", phone_a)
        caller = live.caller_end(call_id)
        await desk.sign_in(A)

        status, body = await desk.post(A, f"/api/calls/{call_id}/transfer",
                                       {"target_kind": "agent", "target": "1099", "kind": "blind"})

        assert (status, body["error"]["id"]) == (404, "unknown-agent"), body
        assert "1099" in body["error"]["message"]
        assert agent_of(await live.reaches(caller), A)  # still talking to A
        assert phone_a.calls[-1].state == "answered"
        assert live.server.features.acd.engine.agent_state(A)[0] == "on_call"
        assert not live.acd(Kind.ACD_TRANSFER, call_id)


async def test_blind_transfer_that_cannot_complete_brings_the_caller_back_to_the_agent(live: Live) -> None:
    """Item 19: U's phone is not registered (Asterisk: CHANUNAVAIL). The CTI, which rings the target for
    the transfer, brings the caller back through the ACD to A, whose phone rings again, and A's desktop
    says why. Nobody fell into the fallback queue and the caller was never dropped."""
    acd = live.server.features.acd
    async with agent_phone(A, live.sip, answer_after_s=0.3, talk_s=None) as phone_a, \
            aiohttp.ClientSession() as web:
        desk = Desk(live, web)
        call_id = await live.call_answered_by_a("13900000107", phone_a)
        caller = live.caller_end(call_id)
        await desk.sign_in(A)

        status, body = await desk.post(A, f"/api/calls/{call_id}/transfer",
                                       {"target_kind": "agent", "target": U, "kind": "blind"})

        assert status == 200, body
        await phone_a.wait_for_call("answered", timeout=20, count=2)  # A's phone rang again: the caller
        await live.wait_reaches(caller, lambda s: agent_of(s, A), 10, "A bridged with the caller again")
        [failed] = await until(lambda: live.acd(Kind.ACD_TRANSFER_FAILED, call_id), 10, "the failure logged")
        assert (failed.agent_id, failed.data["target"], failed.data["reason"], failed.data["returned_to"]) == (
            A, U, "unreachable", "agent")
        first, back = live.acd(Kind.ACD_ENQUEUE, call_id)  # through the ACD: queued again, offered to A
        assert back.data["kind"] == "return" and back.queue == first.queue and back.tier == first.tier
        assert (live.acd(Kind.ACD_OFFER, call_id)[-1].agent_id, live.acd(Kind.ACD_OFFER, call_id)[-1].data["via"]) \
            == (A, "return")
        await until(lambda: len(live.acd(Kind.ACD_ANSWER, call_id)) == 2, 10, "the ACD's second answer")
        assert acd.engine.agent_state(A)[0] == "on_call" and call_id in await desk.calls_of(A)
        pushed = await desk.pushes(A)  # the desktop says why, before the caller pops again
        kinds = [m["type"] for m in pushed]
        said = pushed[kinds.index("transfer_failed")]["data"]
        assert said == {"call_id": call_id, "target": U, "reason": "unreachable", "returned_to": "agent",
                        "queue": first.queue}
        assert "pop" in kinds[kinds.index("transfer_failed"):]
        assert not live.ami.matching(lambda m: (event_is("UserEvent", UserEvent="CtiFallback")(m)
                                                or event_is("QueueCallerJoin")(m))
                                     and m.get("Linkedid") == call_id)
        assert len(await live.stored(call_id, Kind.ACD_TRANSFER_FAILED)) == 1


async def test_blind_transfer_that_cannot_complete_goes_to_the_queue_when_the_agent_is_gone(live: Live) -> None:
    """Item 19: the transfer to U fails and A does not take the caller back (A's phone rings out): the
    caller is one of A's queue again, and Q (1008, billing), free in that queue, answers through the ACD."""
    acd = live.server.features.acd
    async with agent_phone(A, live.sip, answer_after_s=0.3, talk_s=None) as phone_a, \
            agent_phone(Q, live.sip, answer_after_s=0.5, talk_s=None) as phone_q:
        call_id = await live.call_answered_by_a("13900000108", phone_a)
        caller = live.caller_end(call_id)
        queue = live.acd(Kind.ACD_ENQUEUE, call_id)[0].queue
        assert queue is not None and queue in next(a.skills for a in acd.cfg.agents if a.id == Q)
        acd.login(Q, ready=True)  # after A took the caller: Q is free in the caller's queue
        phone_a.answer_after_s = None  # A walks away from the desk

        await live.calls.transfer(call_id, "agent", U, "blind")

        [failed] = await until(lambda: live.acd(Kind.ACD_TRANSFER_FAILED, call_id), 10, "the failure logged")
        assert failed.data["returned_to"] == "agent"  # A was wrapping up: offered A first...
        await phone_q.wait_for_call("answered", timeout=30)  # ...A's ring timed out: Q, of the queue
        await live.wait_reaches(caller, lambda s: agent_of(s, Q), 10, "Q bridged with the caller")
        [rona] = live.acd(Kind.ACD_RONA, call_id)
        assert rona.agent_id == A
        answers = live.acd(Kind.ACD_ANSWER, call_id)
        assert [(e.agent_id, e.queue) for e in answers] == [(A, queue), (Q, queue)]
        assert not live.ami.matching(lambda m: event_is("QueueCallerJoin")(m) and m.get("Linkedid") == call_id)


async def test_without_the_cti_a_failed_blind_transfer_still_rings_the_transferring_agent(
        asterisk_sandbox: Any, ami: AmiRecorder) -> None:
    """The dialplan alone ([transfer-agent], CTI unreachable): the target U cannot be reached, so the
    transferring agent named in CTI_XFER (A) is rung; nobody is dropped."""
    sip = (asterisk_sandbox.ami_host, asterisk_sandbox.sip_port)
    async with agent_phone(A, sip, answer_after_s=0.3, talk_s=1.0) as phone_a:
        (await ami.action("Originate", {
            "Channel": f"Local/{U}@transfer-agent", "Context": "sim-callers", "Exten": "s", "Priority": "1",
            "CallerID": "13900000109", "Async": "true",
            "Variable": ["CTI_AGI=127.0.0.1:1", f"CTI_XFER={A}/billing/normal", "DTMF_PLAN=w0", "HOLD_S=10"],
        })).raise_for_error("Originate")
        fallback = await ami.wait_for(event_is("UserEvent", UserEvent="CtiFallback", AgiStatus="FAILURE"),
                                      timeout=15)
        call = await phone_a.wait_for_call("answered", timeout=20)
        assert "13900000109" in call.caller
        linkedid = fallback[0].get("Linkedid")
        assert not ami.matching(lambda m: event_is("QueueCallerJoin")(m) and m.get("Linkedid") == linkedid)
