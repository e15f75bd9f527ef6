"""Where the ACD sends a caller instead of an agent, heard and recorded on the real sandbox Asterisk.

The billing queue overflows to its voicemail after its maximum wait: the caller walks the IVR to
billing, nobody is ready, and after the (shortened) wait they hear the voicemail prompt, a beep, and
are recorded by Asterisk; the recording is a real file and the message is logged as `acd.voicemail`.
Then an agent answers the message: their phone rings, they hear it, and the caller is dialled back.
"""

from __future__ import annotations

import asyncio
import re
import wave
from pathlib import Path
from typing import Any

from ctiserver.app.wiring import build_server
from ctiserver.config import load_server_config
from ctiserver.events import Event, Kind
from tests.asterisk_fixture import AmiRecorder, originate_caller
from tests.callbacks.test_asterisk import callback_config
from tests.live_config import IVR_TO_AGENT


async def test_a_caller_past_the_maximum_wait_leaves_a_voicemail(asterisk_sandbox: Any, ami: AmiRecorder,
                                                                  tmp_path: Path) -> None:
    cfg_dir = callback_config(tmp_path, asterisk_sandbox)
    acd_yaml = cfg_dir / "acd.yaml"
    text = acd_yaml.read_text(encoding="utf-8")
    text = re.sub(r"(\n  billing:\n(?:    .*\n)*?    max_wait_s: )600", r"\g<1>4", text)  # billing: 4 s, then voicemail
    # the message is cut at its time limit (kept short here)
    text = re.sub(r"\n  max_s: 120", "\n  max_s: 8", text)
    acd_yaml.write_text(text, encoding="utf-8")
    server = await build_server(cfg_dir, load_server_config(cfg_dir), sample_data=True, base_dir=tmp_path)
    assert server.features.acd.cfg.queue("billing").max_wait_s == 4
    seen: list[Event] = []
    server.event_listeners.append(seen.append)
    await server.start()
    try:
        await asyncio.wait_for(server.ami["pbx1"].wait_connected(), 20)
        await server.features.ivr.wait_prerendered()
        server.features.acd.login("1001", ready=False)  # staffed, nobody free: the caller waits
        # after pressing 0 the caller keeps talking (a sound played into the call) for the message
        await originate_caller(ami, "13800000002", IVR_TO_AGENT + "|w8" + "|ptt-monkeys" * 4, name="李秀英", hold_s=60,
                               agi=f"127.0.0.1:{server.cfg.agi.port}")
        for _ in range(1200):
            vms = [e for e in seen if e.kind == Kind.ACD_VOICEMAIL]
            if vms:
                break
            await asyncio.sleep(0.1)
        [vm] = vms
        # an agent answers the message: 1001 gets ready, hears it, and the caller is dialled back
        await ami.setvar("AGENT_1001_MODE", "answer")
        await ami.setvar("AGENT_1001_TALK", "25")  # long enough to hear the message, then talk
        server.features.acd.set_ready("1001")
        store = server.features.outbound.callbacks.store
        for _ in range(900):
            rows = [r for r in await store.by_origin(vm.call_id) if r.status == "done"]
            if rows:
                break
            await asyncio.sleep(0.1)
        if not rows:  # what the CTI saw, for the failure report
            print(await store.by_origin(vm.call_id), [(e.kind, e.call_id, e.data) for e in seen[-30:]])
        [row] = rows
        assert (row.reason, row.agent_id, row.last_outcome) == ("voicemail", "1001", "answered")
        assert row.recording == vm.data["path"].removesuffix(".wav")
    finally:
        await ami.setvar("AGENT_1001_MODE", "")
        await ami.setvar("AGENT_1001_TALK", "")
        await server.stop()
    [overflow] = [e for e in seen if e.kind == Kind.ACD_OVERFLOW and e.call_id == vm.call_id]
    assert overflow.data["target"] == "voicemail:billing" and overflow.data["wait_s"] >= 4
    assert vm.data["box"] == "billing" and 4.0 <= vm.data["duration_s"] <= 20.0
    # the file Asterisk wrote, as the host sees the sandbox's folder
    recorded = Path(asterisk_sandbox.root) / vm.data["path"].lstrip("/")
    with wave.open(str(recorded)) as w:
        assert w.getframerate() == 8000 and w.getnframes() > 0
