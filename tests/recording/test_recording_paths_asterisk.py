"""Every way a call reaches an agent is recorded, against the real sandbox Asterisk: the dialplan's
[cti-record] runs MixMonitor on the answered leg (docs/qc.md), whoever dialled it.

Here: a blind transfer from agent A to agent B (both legs recorded, one call id) and a campaign call whose
customer presses 0 for an agent; the ACD callback is checked in tests/callbacks/test_asterisk.py and live
monitoring's barge in tests/qc/test_monitor_asterisk.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctiserver.events import Event, Kind
from ctiserver.outbound.model import CampaignSpec, ContactIn
from ctiserver.outbound.tables import CampaignStateError
from tests.asterisk_fixture import AmiRecorder, originate_caller
from tests.recording.live import channel_rms, indexed_row, indexed_rows, live_server, recording_config
from tests.sipphone import agent_phone, audio_after

pytestmark = [pytest.mark.asterisk, pytest.mark.pjsip_agents]

A, B = "1003", "1005"  # A billing (takes the caller), B the transfer target
OUT = "1006"  # has the outbound skill


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


async def test_a_campaign_call_put_through_to_an_agent_is_recorded(asterisk_sandbox: Any, ami: AmiRecorder,
                                                                  tmp_path: Path) -> None:
    """The sandbox's customer ...2 answers, hears the notice and presses 0: the ACD rings agent OUT."""
    cfg = recording_config(tmp_path, asterisk_sandbox)
    out = yaml.safe_load((cfg / "outbound.yaml").read_text(encoding="utf-8"))
    out["dial"]["channel"] = "Local/{number}@outbound-dest"
    out["quiet_hours"] = {"default": []}
    (cfg / "outbound.yaml").write_text(yaml.safe_dump(out, allow_unicode=True), encoding="utf-8")
    sip = (asterisk_sandbox.ami_host, asterisk_sandbox.sip_port)
    number = "13900000022"
    async with live_server(tmp_path, asterisk_sandbox, ami) as server, \
            agent_phone(OUT, sip, answer_after_s=0.3, talk_s=3.0, tone_hz=1000.0) as phone:
        recorder = server.features.extra["recorder"]
        server.features.acd.login(OUT, ready=True)
        svc = server.features.outbound.service
        spec = CampaignSpec.model_validate({
            "name": f"rec-{int(time.time() * 1000)}", "kind": "outage_notice", "windows": ["00:00-24:00"],
            "retry": {"max_attempts": 1},
            "outage": {"areas": ["城东"], "start": "8时", "end": "12时", "reason": "检修"}})
        now = server.clock.now()
        await svc.store.create_campaign(spec, now)
        await svc.store.add_contacts(spec.name, [ContactIn(number, area="城东")], now)
        await svc.store.change_state(spec.name, "start", now)
        svc.dialer.wake()
        try:
            await phone.wait_for_call("ended", timeout=120)
            row = await indexed_row(recorder, number)
        finally:
            with contextlib.suppress(CampaignStateError):  # finished already: nothing more is dialled
                await svc.store.change_state(spec.name, "stop", server.clock.now())
        assert row["agent_id"] == OUT and row["queue"] == "outbound" and row["call_id"].startswith("ob-"), row
        assert row["duration_s"] > 1.0, row
        _, agent_rms = channel_rms(recorder.root / row["path"], tmp_path)
        assert agent_rms > 0.05
