"""An English caller through the real sandbox Asterisk, with the server as it ships (build_server).

李秀英 (13800000002) presses 2 at the language menu and 0 at the main menu, which asks for the
billing queue. A billing agent (1001) is free, but the ACD sends English callers to the english desk
(acd.yaml `languages: {en: {desk: english}}`), whose agent 1008 is not ready at first: the caller
waits and hears the position announcement, in English. Then 1008 gets ready and answers.

What the caller heard is read from the AGI commands Asterisk ran (`STREAM FILE cti/<hash>`), each
prompt id mapped back to the text and voice the TTS rendered it from.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ctiserver.agi.channel import AgiChannel, AgiReply
from ctiserver.app.wiring import build_server
from ctiserver.config import load_server_config
from ctiserver.events import Event, Kind
from tests.asterisk_fixture import AmiRecorder, originate_caller
from tests.live_config import sandbox_config

pytestmark = pytest.mark.asterisk


class Recording:
    """An AgiChannel that passes commands to the real session and keeps them."""

    def __init__(self, chan: AgiChannel, log: list[str]) -> None:
        self.chan, self.log = chan, log

    @property
    def headers(self) -> dict[str, str]:
        return self.chan.headers

    @property
    def path(self) -> str:
        return self.chan.path

    async def execute(self, command: str, timeout: float | None = None) -> AgiReply:
        self.log.append(command)
        if timeout is None:
            return await self.chan.execute(command)
        return await self.chan.execute(command, timeout=timeout)  # type: ignore[call-arg]


async def until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := pred()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
    return value


async def test_an_english_caller_reaches_the_english_desk_and_hears_english(
        asterisk_sandbox: Any, ami: AmiRecorder, tmp_path: Path) -> None:
    cfg_dir = sandbox_config(tmp_path, asterisk_sandbox, local_agents=True)
    acd_yaml = cfg_dir / "acd.yaml"
    acd_yaml.write_text(re.sub(r"\n  first_after_s: 15\n", "\n  first_after_s: 2\n",
                               acd_yaml.read_text(encoding="utf-8")), encoding="utf-8")
    server = await build_server(cfg_dir, load_server_config(cfg_dir), sample_data=True, base_dir=tmp_path)
    acd, ivr = server.features.acd, server.features.ivr
    assert acd.cfg.announce.first_after_s == 2
    events: list[Event] = []
    server.event_listeners.append(events.append)
    rendered: dict[str, tuple[str, str]] = {}  # prompt id -> (language, text)
    sound = ivr.tts.sound

    async def spy(text: str, lang: str) -> str:
        name = await sound(text, lang)
        rendered[name] = (lang, text)
        return name

    ivr.tts.sound = spy  # type: ignore[method-assign]
    agi: list[str] = []
    route = server.agi_routes["ivr"]

    async def recorded(chan: AgiChannel) -> None:
        await route(Recording(chan, agi))  # type: ignore[arg-type]

    server.agi_routes["ivr"] = recorded
    await server.start()
    try:
        await asyncio.wait_for(server.ami["pbx1"].wait_connected(), 20)
        await ivr.wait_prerendered()
        for agent in ("1001", "1008"):
            await ami.setvar(f"AGENT_{agent}_MODE", "answer")
            await ami.setvar(f"AGENT_{agent}_TALK", "4")
        acd.login("1001", ready=True)   # billing: free, but not for an English caller
        acd.login("1008", ready=False)  # the english desk: busy with paperwork at first
        await originate_caller(ami, "13800000002", "w6|2|w6|0", name="李秀英", hold_s=60,
                               agi=f"127.0.0.1:{server.cfg.agi.port}")
        [enq] = await until(lambda: [e for e in events if e.kind == Kind.ACD_ENQUEUE], 90, "the caller in the ACD")

        def announced() -> bool:
            return any(rendered.get(c.split()[2], ("", ""))[1].startswith("You are number 1 in the queue")
                       for c in agi if c.startswith("STREAM FILE "))

        await until(announced, 30, "the position announcement")
        acd.set_ready("1008")
        [answer] = await until(lambda: [e for e in events if e.kind == Kind.ACD_ANSWER], 30, "an agent to answer")
        await until(lambda: [e for e in events if e.kind == Kind.ACD_COMPLETE], 30, "the talk to end")
    finally:
        for agent in ("1001", "1008"):
            await ami.setvar(f"AGENT_{agent}_MODE", "")
            await ami.setvar(f"AGENT_{agent}_TALK", "")
        await server.stop()

    assert (enq.queue, enq.data["lang"]) == ("english", "en")  # asked for billing, queued at the english desk
    assert answer.agent_id == "1008"
    assert not [c for c in agi if c.startswith("EXEC Dial") and "1001" in c]  # the free billing agent never rang
    played = [rendered[c.split()[2]] for c in agi if c.startswith("STREAM FILE cti/")]
    texts = [text for _, text in played]
    # before the choice: the outage notice, in Mandarin (the caller pressed 2 during it: barge-in)
    chosen = next(i for i, t in enumerate(texts) if t.startswith("For your bill and arrears, press 1"))
    assert chosen > 0 and all(lang == "zh" for lang, _ in played[:chosen]) and texts[0].startswith("尊敬的客户")
    # from the choice on, every prompt Asterisk played was rendered from an English text by the English voice
    after = played[chosen:]
    assert after and all(lang == "en" and text.isascii() for lang, text in after), after
    # the IVR's queue node, with the recording notice (config/recording.yaml: every agent call is recorded)
    assert "Transferring you to an agent, please hold. This call is recorded for quality purposes." in texts
    assert any(t.startswith("You are number 1 in the queue.") for t in texts)  # the ACD's announcement
    assert [c for c in agi if c.startswith("EXEC Dial")] == ["EXEC Dial Local/1008@sim-agents,12,tU(cti-record^1008)"]
