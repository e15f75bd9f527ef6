"""An agent whose phone is busy outside the ACD is not offered callers (real sandbox Asterisk, PJSIP phones).

The whole server as it ships (build_server on the sample config; agent_selection: proficiency). Agents 1001
(billing 9) and 1002 (billing 7) on real PJSIP softphones. 1001's phone takes a call that is not the ACD's (an
AMI Originate straight to PJSIP/agent1001): Asterisk's DeviceStateChange makes 1001 on_call "direct". A caller
queues: the ACD gives them to 1002, though 1001 is the more proficient, and never dials 1001. With 1002 busy
too, the next caller waits; when 1001 hangs up, 1001 is offered that caller and takes them. Agent 1003 has no
phone registered: the server read every phone's state when it started (AMI DeviceStateList), so 1003 logging in
ready is not ready "unregistered", not offered callers it could never take.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ctiserver.ami.message import event_time
from ctiserver.app.wiring import build_server
from ctiserver.config import load_server_config
from ctiserver.events import Event, Kind
from tests.asterisk_fixture import AmiRecorder, originate_caller
from tests.live_config import sandbox_config
from tests.sipphone import agent_phone

pytestmark = [pytest.mark.asterisk, pytest.mark.pjsip_agents]

A, B = "1001", "1002"  # billing 9 and 7: a caller goes to A whenever A is free
DIRECT_CALLER = "8005550101"


async def until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := pred()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return got


def _device(acd: Any, agent: str) -> str:
    return str(next(a["device"] for a in acd.engine.agents_snapshot(0.0) if a["agent_id"] == agent))


async def test_a_busy_phone_outside_the_acd_is_never_offered_until_it_is_free(
        asterisk_sandbox: Any, ami: AmiRecorder, tmp_path: Path) -> None:
    cfg_dir = sandbox_config(tmp_path, asterisk_sandbox)
    server = await build_server(cfg_dir, load_server_config(cfg_dir), sample_data=True, base_dir=tmp_path)
    seen: list[Event] = []
    server.event_listeners.append(seen.append)
    acd = server.features.acd
    agi = f"127.0.0.1:{server.cfg.agi.port}"
    await server.start()
    sip = (asterisk_sandbox.ami_host, asterisk_sandbox.sip_port)

    def of(kind: str, call_id: str | None = None, agent: str | None = None) -> list[Event]:
        return [e for e in seen if e.kind == kind and (call_id is None or e.call_id == call_id)
                and (agent is None or e.agent_id == agent)]

    def dialled(agent: str, call_id: str) -> list[Any]:
        return ami.matching(lambda m: m.get("Event") == "DialBegin" and m.get("Linkedid") == call_id
                            and str(m.get("DestChannel", "")).startswith(f"PJSIP/agent{agent}-"))

    async def queued(number: str) -> str:
        before = {e.call_id for e in of(Kind.ACD_ENQUEUE)}
        await originate_caller(ami, number, "w2|0|w1|0|w1|0", hold_s=60, agi=agi)
        enq = await until(lambda: [e for e in of(Kind.ACD_ENQUEUE) if e.call_id not in before], 30, f"{number} queued")
        assert enq[0].queue == "billing"
        return str(enq[0].call_id)

    try:
        await asyncio.wait_for(server.ami["pbx1"].wait_connected(), 20)
        await server.features.ivr.wait_prerendered()
        async with agent_phone(A, sip, answer_after_s=0.5, talk_s=None) as phone_a, \
                agent_phone(B, sip, answer_after_s=0.5, talk_s=None) as phone_b:
            acd.login(A, ready=True)
            acd.login(B, ready=True)
            # 1003's phone is not registered (no softphone): known from the start-up read, before any change
            await until(lambda: _device(acd, "1003") == "unavailable", 15, "1003's phone read as unavailable")
            acd.login("1003", ready=True)
            assert acd.engine.agent_state("1003") == ("not_ready", "unregistered")
            # A's phone takes a call that is not the ACD's
            ami.originated.add(DIRECT_CALLER)
            (await ami.action("Originate", {
                "Channel": f"PJSIP/agent{A}", "Application": "Wait", "Data": "120", "CallerID": DIRECT_CALLER,
                "Async": "true"})).raise_for_error("Originate")
            await phone_a.wait_for_call("answered", timeout=30)
            await until(lambda: acd.engine.agent_state(A) == ("on_call", "direct"), 15, "A on_call direct")
            busy = [e for e in of(Kind.AGENT_STATE, agent=A) if e.data["reason"] == "direct"]
            assert [(e.data["previous"], e.data["state"]) for e in busy] == [("available", "on_call")]

            # a caller queues: B takes them, A is never rung
            first = await queued("13900000251")
            [offer] = await until(lambda: of(Kind.ACD_OFFER, first), 30, "the first offer")
            assert offer.agent_id == B
            await phone_b.wait_for_call("answered", timeout=30)
            await until(lambda: of(Kind.ACD_ANSWER, first, B), 15, "B answers the first caller")
            assert dialled(A, first) == []
            assert len(phone_a.calls) == 1  # only the direct call ever reached A's phone

            # B goes on a break after this call; the next caller waits for A's phone to be free
            acd.set_not_ready(B, "break")
            second = await queued("13900000252")
            assert acd.engine.call_state(second) == "waiting" and of(Kind.ACD_OFFER, second) == []

            await phone_a.hangup(phone_a.calls[0].call_id)  # A's direct call ends
            [offer2] = await until(lambda: of(Kind.ACD_OFFER, second), 30, "the second offer")
            assert offer2.agent_id == A
            await phone_a.wait_for_call("answered", timeout=30, count=2)
            await until(lambda: of(Kind.ACD_ANSWER, second, A), 15, "A answers the second caller")
            freed = [e for e in of(Kind.AGENT_STATE, agent=A) if e.data["previous_reason"] == "direct"]
            assert [(e.data["previous"], e.data["state"]) for e in freed] == [("on_call", "available")]
            [ring] = dialled(A, second)
            assert event_time(ring) >= freed[0].ts - 0.5  # rung only once the phone was free (clock skew aside)
            assert dialled(A, first) == []
            # the ACD's own ring and talk did not make A "direct" again
            assert len([e for e in of(Kind.AGENT_STATE, agent=A) if e.data["reason"] == "direct"]) == 1

            await phone_b.hangup(phone_b.calls[0].call_id)
            await phone_a.hangup(phone_a.calls[1].call_id)
            await until(lambda: of(Kind.ACD_COMPLETE, second), 15, "the second talk's end")
    finally:
        await ami.hang_up_callers()
        await server.stop()
