"""Every way a call reaches an agent is recorded, against the real sandbox Asterisk: the dialplan's
[cti-record] runs MixMonitor on the answered leg (docs/qc.md), whoever dialled it.

Here: a blind transfer from agent A to agent B (both legs recorded, one call id); the ACD callback and
the fallback queue are checked in their own tests (tests/callbacks/test_asterisk.py,
tests/acd/test_fallback_asterisk.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ctiserver.events import Event, Kind
from tests.asterisk_fixture import AmiRecorder, originate_caller
from tests.recording.live import channel_rms, indexed_rows, live_server
from tests.sipphone import agent_phone, audio_after

pytestmark = [pytest.mark.asterisk, pytest.mark.pjsip_agents]

A, B = "1003", "1005"  # A billing (takes the caller), B the transfer target


async def started_for(events: list[Event], agent: str, timeout: float = 20.0) -> Event:
    """This server's recording.start of `agent`'s leg (what the dialplan said it started)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        found = [e for e in events if e.kind == Kind.RECORDING_START and e.agent_id == agent]
        if found:
            return found[0]
        if loop.time() > end:
            raise AssertionError(f"no recording started for agent {agent}")
        await asyncio.sleep(0.05)


async def test_a_blind_transfer_is_recorded_on_both_agents_legs(asterisk_sandbox: Any, ami: AmiRecorder,
                                                                tmp_path: Path) -> None:
    sip = (asterisk_sandbox.ami_host, asterisk_sandbox.sip_port)
    number = "13900000018"
    async with live_server(tmp_path, asterisk_sandbox, ami) as server, \
            agent_phone(A, sip, answer_after_s=0.3, talk_s=None, tone_hz=1000.0) as phone_a, \
            agent_phone(B, sip, answer_after_s=0.3, talk_s=3.0, tone_hz=1000.0) as phone_b:
        events: list[Event] = []
        server.event_listeners.append(events.append)
        recorder = server.features.extra["recorder"]
        server.features.acd.login(A, ready=True)
        await originate_caller(ami, number, keys="0", hold_s=60, agi=f"127.0.0.1:{server.cfg.agi.port}")
        talk_a = await phone_a.wait_for_call("answered", timeout=60)
        call_id = str((await started_for(events, A)).call_id)
        await audio_after(talk_a, 8000)  # a second of A's talk
        await server.features.calls.transfer(call_id, "agent", B, "blind")
        talk_b = await phone_b.wait_for_call("answered", timeout=20)
        assert (await started_for(events, B)).call_id == call_id
        await audio_after(talk_b, 8000)
        rows = await indexed_rows(recorder, number, 2)
        assert sorted(r["agent_id"] for r in rows) == [A, B]
        assert {r["call_id"] for r in rows} == {call_id}
        for row in rows:
            assert row["duration_s"] > 0.5, row
            caller_rms, agent_rms = channel_rms(recorder.root / row["path"], tmp_path)
            assert agent_rms > 0.05 and caller_rms < 0.005, (row["agent_id"], caller_rms, agent_rms)
