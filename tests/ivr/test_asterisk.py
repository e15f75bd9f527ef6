"""The IVR through the real sandbox Asterisk (issue 4 acceptance).

A simulated caller (`Local/95598@hotline`, whose other half sends DTMF on a timed plan)
calls from 13800000002: an account in 城东区, where a fault outage is under way. The
caller hears the outage notice first (and presses 1 during it: barge-in, Mandarin),
presses 1 for the bill (identified by the bound number), hears the arrears figure
spoken from a TTS file rendered for this call, presses 0, and is handed to the ACD
with skill billing and tier normal. The event store holds the whole path.
"""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path
from typing import Any

import pytest

from ctiserver.agi.channel import AgiChannel, AgiReply
from ctiserver.agi.server import FastAGIServer
from ctiserver.customers.data import MemoryDataProvider, read_sample_data
from ctiserver.events import Kind
from ctiserver.ivr.runtime import IvrRuntime, QueueRequest
from ctiserver.ivr.settings import IvrSettings
from ctiserver.ivr.template import render
from ctiserver.ivr.tools import static_prompts
from ctiserver.ivr.tree import load_tree
from ctiserver.ivr.tts import Tts, TtsSettings
from ctiserver.store.engine import make_engine, migrate
from ctiserver.store.query import fetch_events
from ctiserver.store.writer import EventStore
from tests.asterisk_fixture import AmiRecorder, sounds_dir

from .helpers import SAMPLE_CONFIG

pytestmark = pytest.mark.asterisk


class Recording:
    """Passes commands through to the real session and keeps (command, reply) pairs."""

    def __init__(self, chan: AgiChannel) -> None:
        self.chan = chan
        self.log: list[tuple[str, AgiReply]] = []

    @property
    def headers(self) -> dict[str, str]:
        return self.chan.headers

    @property
    def path(self) -> str:
        return self.chan.path

    async def execute(self, command: str) -> AgiReply:
        reply = await self.chan.execute(command)
        self.log.append((command, reply))
        return reply


async def test_caller_hears_outage_then_arrears_then_reaches_the_acd(asterisk_sandbox: Any, ami: AmiRecorder,
                                                                      tmp_path: Path) -> None:
    now = time.time()
    tree = load_tree(SAMPLE_CONFIG / "ivr" / "hotline.yaml")
    tts = Tts(TtsSettings(workers=2), sounds_dir(asterisk_sandbox))
    await tts.render_all(static_prompts(tree, ["zh", "en"]))  # `ctiserver tts build`
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"
    await migrate(url)
    store = EventStore(url, journal_path=tmp_path / "journal.jsonl", flush_interval_s=0.05)
    await store.start()
    handed: list[QueueRequest] = []
    channels: list[Recording] = []
    got_handoff = asyncio.Event()

    async def handoff(chan: AgiChannel, req: QueueRequest) -> str:
        handed.append(req)
        got_handoff.set()
        await chan.execute("SET VARIABLE CTI_DONE 1")  # the ACD took the caller: no dialplan fallback
        return ""

    rt = IvrRuntime({"hotline": tree}, MemoryDataProvider(read_sample_data(SAMPLE_CONFIG, now)), tts,
                    store.append, handoff, IvrSettings())

    async def handler(chan: AgiChannel) -> None:
        rec = Recording(chan)
        channels.append(rec)
        await rt.handle(rec)

    server = FastAGIServer("127.0.0.1", 0, handler)
    await server.start()
    try:
        (await ami.action("Originate", {
            "Channel": "Local/95598@hotline", "Context": "sim-callers", "Exten": "s", "Priority": "1",
            "CallerID": "13800000002", "Async": "true",
            "Variable": ["SIM_CALLER_NUM=13800000002", "DTMF_PLAN=w6|1|w6|1|w10|0", "HOLD_S=40",
                         f"CTI_AGI=127.0.0.1:{server.port}"],
        })).raise_for_error("Originate")
        try:
            await asyncio.wait_for(got_handoff.wait(), 90)
        except TimeoutError:
            pass
        assert handed, f"no handoff; AGI commands: {[c for c, _ in channels[0].log] if channels else 'none'}"
        for _ in range(50):
            if rt.active == 0:
                break
            await asyncio.sleep(0.1)
    finally:
        await server.close()
        await store.close()
        await tts.close()

    [req] = handed
    # no tier named by the tree: the ACD's tier rules classify the customer record the IVR found
    assert (req.skill, req.tier, req.caller) == ("billing", "", "13800000002")
    assert req.customer is not None and req.customer["account"] == "9100000002"
    from ctiserver.acd.config import load_acd_config

    assert load_acd_config(SAMPLE_CONFIG).classify(req.customer) == "normal"
    path = list(req.ivr_path)
    assert path.index("outage_notice") < path.index("main") < path.index("bill_read") < path.index("to_agent")

    # the arrears prompt: rendered for this caller, 8 kHz mono 16-bit, and played by Asterisk
    account = await rt.data.lookup("account", {"account": "9100000002"}, now)
    text = render(tree.tree.nodes["bill_read"].prompt.text_for("zh"), {"account": account})  # type: ignore[union-attr]
    assert "当前欠费金额为86.50元" in text
    name = tts.cached(text, "zh")
    assert name is not None
    with wave.open(str(sounds_dir(asterisk_sandbox) / f"{name[4:]}.wav"), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
    played = [r for c, r in channels[0].log if c.startswith(f"STREAM FILE {name} ")]
    assert played and played[0].result_int >= 0  # found and played (0) or cut short by the 0 key (48)

    # the store holds the path, under the call's Linkedid
    engine = make_engine(url)
    try:
        engine_events = await fetch_events(engine, call_id=req.call_id)
    finally:
        await engine.dispose()
    kinds = [e.kind for e in engine_events]
    assert kinds[0] == Kind.IVR_START and Kind.IVR_END in kinds
    assert [e.data["node"] for e in engine_events if e.kind == Kind.IVR_NODE][:len(path)] == path
    assert [e.data["digits"] for e in engine_events if e.kind == Kind.IVR_DTMF] == ["1", "1", "0"]
    [end] = [e for e in engine_events if e.kind == Kind.IVR_END]
    assert end.data["outcome"] == "agent" and end.queue == "billing"
