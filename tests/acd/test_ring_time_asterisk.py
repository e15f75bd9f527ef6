"""Ring time on the real sandbox Asterisk (issue 12 item 23).

The whole server as it ships (build_server on the sample config), agent 1001 on a real PJSIP softphone
that answers one second after it starts ringing. The caller waits in billing and hears the position
announcement (the sample's, made by TTS: several seconds long) when 1001 comes free. Before, the agent
was reserved while the rest of the announcement played and the store logged that as ring time (11.2 s
of "ring" for about 1 s of ringing). Now the offer stops the announcement (AMI ControlPlayback), the
phone rings at once, and ring time is DialBegin to the answer as Asterisk stamped them.
"""

from __future__ import annotations

import asyncio
import re
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ctiserver.agi.channel import AgiChannel, AgiReply
from ctiserver.ami.message import event_time
from ctiserver.app.wiring import build_server
from ctiserver.config import load_server_config
from ctiserver.events import Event, Kind
from tests.asterisk_fixture import AmiRecorder, originate_caller, sounds_dir
from tests.live_config import sandbox_config
from tests.sipphone import agent_phone

pytestmark = [pytest.mark.asterisk, pytest.mark.pjsip_agents]

AGENT = "1001"  # billing 9


async def until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := pred()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return got


class Played:
    """What the ACD's announcements sent to the caller's channel, and what Asterisk answered."""

    def __init__(self, chan: AgiChannel, log: list[tuple[str, AgiReply]], started: asyncio.Event) -> None:
        self.chan, self.log, self.started = chan, log, started

    @property
    def headers(self) -> dict[str, str]:
        return self.chan.headers

    @property
    def path(self) -> str:
        return self.chan.path

    async def execute(self, command: str) -> AgiReply:
        if command.startswith("STREAM FILE"):
            self.started.set()
        reply = await self.chan.execute(command)
        self.log.append((command, reply))
        return reply


async def test_ring_time_is_the_ring_asterisk_saw_and_the_announcement_gives_way(
        asterisk_sandbox: Any, ami: AmiRecorder, tmp_path: Path) -> None:
    cfg_dir = sandbox_config(tmp_path, asterisk_sandbox)
    acd_yaml = cfg_dir / "acd.yaml"  # the first announcement after 1 s of waiting, not 15
    acd_yaml.write_text(re.sub(r"^  first_after_s: \d+", "  first_after_s: 1", acd_yaml.read_text(encoding="utf-8"),
                               flags=re.M), encoding="utf-8")
    server = await build_server(cfg_dir, load_server_config(cfg_dir), sample_data=True, base_dir=tmp_path)
    seen: list[Event] = []
    server.event_listeners.append(seen.append)
    acd = server.features.acd
    played: list[tuple[str, AgiReply]] = []
    announcing = asyncio.Event()
    say = acd.say

    async def watched_say(chan: AgiChannel, text: str, lang: str) -> None:
        assert say is not None
        await say(Played(chan, played, announcing), text, lang)

    acd.say = watched_say
    await server.start()
    sip = (asterisk_sandbox.ami_host, asterisk_sandbox.sip_port)
    try:
        await asyncio.wait_for(server.ami["pbx1"].wait_connected(), 20)
        await server.features.ivr.wait_prerendered()
        async with agent_phone(AGENT, sip, answer_after_s=1.0, talk_s=None) as phone:
            acd.login(AGENT, ready=False)  # staffed, not free: the caller waits
            await originate_caller(ami, "13900000231", "w2|0|w1|0|w1|0", hold_s=60,
                                   agi=f"127.0.0.1:{server.cfg.agi.port}")
            [enq] = await until(lambda: [e for e in seen if e.kind == Kind.ACD_ENQUEUE], 30, "the caller queued")
            call_id = enq.call_id
            assert enq.queue == "billing"
            await asyncio.wait_for(announcing.wait(), 30)  # the caller is hearing the announcement

            acd.set_ready(AGENT)  # the agent comes free in the middle of it

            await phone.wait_for_call("answered", timeout=30)
            [answer] = await until(lambda: [e for e in seen if e.kind == Kind.ACD_ANSWER and e.call_id == call_id],
                                   10, "the ACD's answer")
            agent_leg = lambda m: (str(m.get("DestChannel", "")).startswith(f"PJSIP/agent{AGENT}-")  # noqa: E731
                                   and m.get("Linkedid") == call_id)
            [begin] = ami.matching(lambda m: m.get("Event") == "DialBegin" and agent_leg(m))
            [end] = ami.matching(lambda m: m.get("Event") == "DialEnd" and m.get("DialStatus") == "ANSWER"
                                 and agent_leg(m))
            asterisk_ring = event_time(end) - event_time(begin)  # both stamped by Asterisk
            assert answer.data["ring_s"] == pytest.approx(asterisk_ring, abs=0.002), (answer.data, asterisk_ring)
            assert asterisk_ring < 3.0  # the phone answers a second after it rings: no prompt in the ring time
            # the announcement was stopped part-way for the agent: Asterisk played only part of the prompt
            [(command, reply)] = [p for p in played if p[0].startswith("STREAM FILE")]
            name = command.split()[2].split("/")[-1]
            with wave.open(str(sounds_dir(asterisk_sandbox) / f"{name}.wav")) as w:
                prompt_samples = w.getnframes() * 8000 // w.getframerate()
            endpos = int(reply.data.removeprefix("endpos="))
            assert endpos < prompt_samples - 8000, (endpos, prompt_samples)  # over a second of it left unsaid
            await phone.hangup(phone.calls[-1].call_id)
            await until(lambda: [e for e in seen if e.kind == Kind.ACD_COMPLETE and e.call_id == call_id], 10,
                        "the talk's end")
    finally:
        await server.stop()
