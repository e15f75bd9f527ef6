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
C = 1010 (complaint, ready: the queue target), S = 1004 (shift leader: the `supervisor` desk).

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

from ctiserver.config import load_server_config
from ctiserver.events import Event, Kind
from ctiserver.server import CtiServer
from ctiserver.store.query import fetch_events
from ctiserver.web.auth import create_user
from ctiserver.web.ports import PortError
from ctiserver.wiring import build_server
from tests.asterisk_fixture import AmiRecorder, event_is, originate_caller
from tests.live_config import sandbox_config
from tests.sipphone import SoftPhone, agent_phone

pytestmark = [pytest.mark.asterisk, pytest.mark.pjsip_agents]

A, B, C, S = "1003", "1005", "1010", "1004"
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
        await originate_caller(self.ami, number, "w2|0|w1|0|w1|0", hold_s=50,
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
        self.tokens: dict[str, str] = {}

    async def sign_in(self, agent: str) -> None:
        await create_user(self.engine, agent, f"坐席{agent}", "agent", PASSWORD)
        async with self.web.post(f"{self.base}/api/auth/login",
                                 json={"agent_no": agent, "password": PASSWORD}) as r:
            assert r.status == 200, await r.text()
            self.tokens[agent] = (await r.json())["token"]

    async def post(self, agent: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        async with self.web.post(self.base + path, json=body or {},
                                 headers={"Authorization": f"Bearer {self.tokens[agent]}"}) as r:
            return r.status, await r.json()

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
                                                 "kind": "attended", "escalated": True, "code": "9001"})
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
