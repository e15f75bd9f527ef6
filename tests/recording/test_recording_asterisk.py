"""Recording against the real sandbox Asterisk: a caller walks the IVR to agent 1003, whose softphone
"speaks" a 1 kHz tone; Asterisk's MixMonitor records the agent's leg, the CTI merges and compresses it.

Checked: the recording is indexed with the call's facts; its duration is the talk time Asterisk stamped
(BridgeEnter to Hangup of the agent's channel) within 0.5 s; the agent's (right) channel carries the tone
and the caller's (left) does not (sox `stat`); a CTI that stops mid-call indexes the recording when it
starts again (Asterisk kept writing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ctiserver.ami.message import event_time
from ctiserver.events import Kind
from ctiserver.store.query import fetch_events
from tests.asterisk_fixture import AmiRecorder, originate_caller
from tests.recording.live import channel_rms, indexed_row, live_server
from tests.sipphone import agent_phone, audio_after

pytestmark = [pytest.mark.asterisk, pytest.mark.pjsip_agents]

A = "1003"  # billing


def _agent_leg(name: str) -> Any:
    return lambda m: m.get("Event") == name and str(m.get("Channel") or "").startswith(f"PJSIP/agent{A}-")


async def test_an_answered_call_is_recorded_in_two_channels(asterisk_sandbox: Any, ami: AmiRecorder,
                                                           tmp_path: Path) -> None:
    sip = (asterisk_sandbox.ami_host, asterisk_sandbox.sip_port)
    async with live_server(tmp_path, asterisk_sandbox, ami) as server, \
            agent_phone(A, sip, answer_after_s=0.3, talk_s=4.0, tone_hz=1000.0) as phone:
        recorder = server.features.extra["recorder"]
        server.features.acd.login(A, ready=True)
        await originate_caller(ami, "13900000015", keys="0", hold_s=40, agi=f"127.0.0.1:{server.cfg.agi.port}")
        await phone.wait_for_call("ended", timeout=60)
        row = await indexed_row(recorder, "13900000015")
        enter = (await ami.wait_for(_agent_leg("BridgeEnter")))[0]
        hangup = (await ami.wait_for(_agent_leg("Hangup")))[0]
        talk = event_time(hangup) - event_time(enter)
        assert row["agent_id"] == A and row["call_id"] == enter.get("Linkedid")
        assert row["queue"] == "billing" and row["number"] == "13900000015" and row["codec"] == "opus"
        assert abs(row["duration_s"] - talk) < 0.5, (row["duration_s"], talk)
        path = recorder.root / row["path"]
        assert path.stat().st_size == row["size"] and len(row["sha256"]) == 64
        caller_rms, agent_rms = channel_rms(path, tmp_path)
        assert agent_rms > 0.05 and caller_rms < 0.005, (caller_rms, agent_rms)
        assert not list(recorder.spool.glob(f"*{row['uniqueid']}*"))  # spool files gone once archived
        await server.store.flush()
        kinds = [e.kind for e in await fetch_events(server.store.engine, call_id=row["call_id"])]
        assert Kind.RECORDING_START in kinds and Kind.RECORDING_DONE in kinds


async def test_a_recording_survives_a_cti_restart_mid_call(asterisk_sandbox: Any, ami: AmiRecorder,
                                                          tmp_path: Path) -> None:
    """The CTI stops while the agent talks; Asterisk keeps recording; the CTI that comes back indexes it."""
    sip = (asterisk_sandbox.ami_host, asterisk_sandbox.sip_port)
    async with agent_phone(A, sip, answer_after_s=0.3, talk_s=None, tone_hz=1000.0) as phone:
        async with live_server(tmp_path, asterisk_sandbox, ami) as server:
            server.features.acd.login(A, ready=True)
            await originate_caller(ami, "13900000016", keys="0", hold_s=40,
                                   agi=f"127.0.0.1:{server.cfg.agi.port}")
            call = await phone.wait_for_call("answered", timeout=60)
            started = await ami.wait_for(lambda m: m.get("Event") == "MixMonitorStart"
                                         and str(m.get("Channel") or "").startswith(f"PJSIP/agent{A}-"))
        assert started  # the CTI is gone now; the call goes on: a second of it, then the agent hangs up
        await audio_after(call, 8000)
        await phone.hangup(call.call_id)
        hangup = (await ami.wait_for(_agent_leg("Hangup")))[0]
        async with live_server(tmp_path, asterisk_sandbox, ami) as server:
            recorder = server.features.extra["recorder"]
            row = await indexed_row(recorder, "13900000016")
            assert row["agent_id"] == A
            enter = (await ami.wait_for(_agent_leg("BridgeEnter")))[0]
            assert abs(row["duration_s"] - (event_time(hangup) - event_time(enter))) < 0.5
            _, agent_rms = channel_rms(recorder.root / row["path"], tmp_path)
            assert agent_rms > 0.05
