"""Every way a call reaches an agent is recorded, against the real sandbox Asterisk: the dialplan's
[cti-record] runs MixMonitor on the answered leg (docs/qc.md), whoever dialled it.

Here: a blind transfer from agent A to agent B (both legs recorded, one call id) and a campaign call whose
customer presses 0 for an agent; the ACD callback is checked in tests/callbacks/test_asterisk.py and live
monitoring's barge in tests/qc/test_monitor_asterisk.py."""

from __future__ import annotations

import asyncio
import contextlib
import socket
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


async def test_the_fallback_queue_records_while_the_cti_is_away(asterisk_sandbox: Any, ami: AmiRecorder,
                                                                tmp_path: Path) -> None:
    """No CTI answers FastAGI: the caller goes to Queue(fallback), whose gosub records the member that answers
    (sim agent 1002); a CTI that starts afterwards indexes the recording from the spool."""
    from ctiserver.recording import store
    from ctiserver.recording.core import DONE, SpoolName

    spool = Path(asterisk_sandbox.root) / "var/spool/asterisk/monitor/cti"
    await ami.setvar("CTI_RECORD_DIR", "/var/spool/asterisk/monitor/cti")  # as the last CTI left it
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    await ami.setvar("CTI_AGI", f"127.0.0.1:{dead}")
    for other in range(1001, 1011):  # only 1002 answers, whatever an earlier test left set
        await ami.setvar(f"AGENT_{other}_MODE", "")
    await ami.setvar("AGENT_1002_MODE", "answer")
    await ami.setvar("AGENT_1002_TALK", "2")
    await originate_caller(ami, "13800000078", "w1", hold_s=15)
    [started] = await ami.wait_for(lambda m: m.get("Event") == "UserEvent" and m.get("UserEvent") == "CtiRecording"
                                   and str(m.get("Channel") or "").startswith("Local/1002@sim-agents"), timeout=40)
    name = SpoolName.parse(str(started.get("Spool")))
    assert name is not None and name.agent_id == "1002" and name.uniqueid == started.get("Uniqueid")
    await ami.wait_for(lambda m: m.get("Event") == "Hangup" and m.get("Uniqueid") == name.uniqueid, timeout=30)
    loop = asyncio.get_running_loop()
    end = loop.time() + 20
    while not (spool / f"{name.base}{DONE}").exists():  # MixMonitor's end command: Asterisk closed the files
        assert loop.time() < end, "MixMonitor never touched its done marker"
        await asyncio.sleep(0.05)
    await ami.setvar("AGENT_1002_MODE", "")
    async with live_server(tmp_path, asterisk_sandbox, ami) as server:
        recorder = server.features.extra["recorder"]

        async def indexed() -> dict[str, Any]:
            while True:
                row = await store.get(recorder.engine(), await recorder.indexed.get())
                if row is not None and row["spool"] == name.base:
                    return dict(row)

        row = await asyncio.wait_for(indexed(), 60)
    assert (row["agent_id"], row["call_id"]) == ("1002", name.call_id) and row["duration_s"] > 1.0, row
