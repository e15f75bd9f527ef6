"""Hold time from a real phone: the agent's softphone puts the caller on hold (re-INVITE a=sendonly)
on the sandbox Asterisk; AMI Hold/Unhold reach the ACD and the completed call reports the hold apart
from talk time (AHT = talk + hold + wrap-up)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from ctiserver.app.wiring import build_server
from ctiserver.config import load_server_config
from ctiserver.events import Event, Kind
from tests.asterisk_fixture import AmiRecorder, event_is, originate_caller
from tests.callbacks.test_asterisk import callback_config, until
from tests.live_config import KEYS_TO_AGENT
from tests.sipphone import agent_phone


async def test_a_hold_on_the_agents_phone_is_reported_as_hold_time(asterisk_sandbox: Any, ami: AmiRecorder,
                                                                   tmp_path: Path) -> None:
    cfg_dir = callback_config(tmp_path, asterisk_sandbox)
    acd_yaml = cfg_dir / "acd.yaml"  # agents on their PJSIP phones, as in production
    acd_yaml.write_text(re.sub(r'^dial_template: .*$', 'dial_template: "PJSIP/agent{id}"',
                               acd_yaml.read_text(encoding="utf-8"), flags=re.M), encoding="utf-8")
    server = await build_server(cfg_dir, load_server_config(cfg_dir), sample_data=True, base_dir=tmp_path)
    seen: list[Event] = []
    server.event_listeners.append(seen.append)
    await server.start()
    sip = (asterisk_sandbox.ami_host, getattr(asterisk_sandbox, "sip_port", 5060))
    try:
        await asyncio.wait_for(server.ami["pbx1"].wait_connected(), 20)
        await server.features.ivr.wait_prerendered()
        async with agent_phone("1001", sip, answer_after_s=1.0, talk_s=None) as phone:
            server.features.acd.login("1001", ready=True)
            await originate_caller(ami, "13800000002", keys=KEYS_TO_AGENT, name="李秀英", hold_s=90,
                                   agi=f"127.0.0.1:{server.cfg.agi.port}")
            call = await phone.wait_for_call("answered", timeout=90)
            # the ACD learns the answer from AMI DialEnd, a moment after the 200 OK
            [answer] = await until(lambda: [e for e in seen if e.kind == Kind.ACD_ANSWER], 60, "the ACD's answer")
            await asyncio.sleep(1.0)
            await phone.hold(call.call_id, True)
            [hold] = await ami.wait_for(event_is("Hold", Linkedid=answer.call_id or ""), timeout=30)
            await asyncio.sleep(3.0)
            await phone.hold(call.call_id, False)
            [unhold] = await ami.wait_for(event_is("Unhold", Linkedid=answer.call_id or ""), timeout=30)
            await asyncio.sleep(1.0)
            await phone.hangup(call.call_id)
            [complete] = await until(lambda: [e for e in seen if e.kind == Kind.ACD_COMPLETE
                                              and e.call_id == answer.call_id], 60, "the ACD's completion")
        # what Asterisk stamped on its Hold and Unhold events, however late the CTI read them
        held = float(unhold.get("Timestamp")) - float(hold.get("Timestamp"))
        assert held >= 2.9  # the phone held for 3 s of the test's own sleeping
        assert abs(complete.data["hold_s"] - held) <= 0.25, (complete.data, held)
        assert complete.data["talk_s"] > 0
    finally:
        await server.stop()
