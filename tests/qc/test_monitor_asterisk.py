"""Live monitoring against the real sandbox Asterisk, measured by the energy of each party's tone.

Agent 1003's softphone sends 1 kHz, the supervisor's (endpoint agent1009) 600 Hz, the caller nothing.
What the caller hears is recorded by a MixMonitor of the test on the caller's channel (`t()`: what
Asterisk sends it). Listen: the supervisor hears the agent, the agent does not hear the supervisor.
Whisper: the agent hears the supervisor, the caller does not."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ctiserver.events import Kind
from tests.asterisk_fixture import AmiRecorder, originate_caller
from tests.production import PASSWORD
from tests.recording.live import live_server
from tests.sipphone import CallRecord, SoftPhone, agent_phone, tone_energy, ulaw

pytestmark = [pytest.mark.asterisk, pytest.mark.pjsip_agents]

A, SUP_PHONE = "1003", "1009"
HEARS, SILENT = 1e6, 2e4  # Goertzel power of a tone (8000 peak: ~1.6e7) heard / not heard


async def more_audio(rec: CallRecord, since: int, nbytes: int, timeout: float = 20.0) -> bytes:
    """The next `nbytes` of audio the phone receives after byte `since` (waits on the RTP, not on a clock)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while len(rec.audio) < since + nbytes:
        if loop.time() > end:
            raise AssertionError(f"only {len(rec.audio) - since} bytes of audio came")
        await asyncio.sleep(0.05)
    return bytes(rec.audio[since:since + nbytes])


def wav_energy(path: Path, hz: float) -> float:
    with wave.open(str(path)) as w:
        frames = w.readframes(w.getnframes())
    samples = [int.from_bytes(frames[i:i + 2], "little", signed=True) for i in range(0, len(frames), 2)]
    return tone_energy(bytes(ulaw(s) for s in samples), hz)


async def spy(http: aiohttp.ClientSession, url: str, token: str, mode: str) -> dict[str, Any]:
    async with http.post(f"{url}/api/monitor", json={"agent": A, "mode": mode, "phone": SUP_PHONE},
                         headers={"Authorization": f"Bearer {token}", "Origin": url}) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


async def test_listen_and_whisper_reach_only_whom_they_should(asterisk_sandbox: Any, ami: AmiRecorder,
                                                              tmp_path: Path) -> None:
    sip = (asterisk_sandbox.ami_host, asterisk_sandbox.sip_port)
    async with live_server(tmp_path, asterisk_sandbox, ami) as server, \
            agent_phone(A, sip, answer_after_s=0.3, talk_s=None, tone_hz=1000.0) as agent:
        sup = SoftPhone(f"agent{SUP_PHONE}", f"pw{SUP_PHONE}", sip, answer_after_s=0.2, talk_s=None, tone_hz=600.0)
        await sup.start()
        try:
            await sup.register()
            from ctiserver.web.app import DESKTOP_KEY
            from ctiserver.web.auth import create_user

            await create_user(server.http_app[DESKTOP_KEY].engine, "2001", "王主管", "supervisor", PASSWORD,
                              now=server.clock.now())
            server.features.acd.login(A, ready=True)
            await originate_caller(ami, "13900000017", keys="0", hold_s=60, agi=f"127.0.0.1:{server.cfg.agi.port}")
            call = await agent.wait_for_call("answered", timeout=60)
            enter = (await ami.wait_for(lambda m: m.get("Event") == "BridgeEnter"
                                        and str(m.get("Channel", "")).startswith(f"PJSIP/agent{A}-")))[0]
            bridge = enter.get("BridgeUniqueid")
            peer = await ami.wait_for(lambda m: m.get("Event") == "BridgeEnter" and m.get("BridgeUniqueid") == bridge
                                      and not str(m.get("Channel", "")).startswith("PJSIP/agent"))
            caller_chan = peer[0].get("Channel")
            url = f"http://127.0.0.1:{server.http_port}"
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{url}/api/auth/login", json={"agent_no": "2001", "password": PASSWORD}) as r:
                    token = (await r.json())["token"]

                # --- listen ---------------------------------------------------------------------------
                await spy(http, url, token, "listen")
                spied = await sup.wait_for_call("answered", timeout=20)
                await ami.wait_for(lambda m: m.get("Event") == "ChanSpyStart", timeout=20)
                heard_by_sup = await more_audio(spied, len(spied.audio), 8000)  # one second
                heard_by_agent = await more_audio(call, len(call.audio), 8000)
                assert tone_energy(heard_by_sup, 1000) > HEARS  # the supervisor hears the agent
                assert tone_energy(heard_by_agent, 600) < SILENT  # the agent does not hear the supervisor
                await sup.hangup(spied.call_id)
                await ami.wait_for(lambda m: m.get("Event") == "ChanSpyStop", timeout=20)

                # --- whisper: the caller's ears recorded meanwhile ----------------------------------------
                spool = Path(asterisk_sandbox.root) / "var/spool/asterisk/monitor"
                ears = f"/var/spool/asterisk/monitor/test-ears-{call.call_id[:8]}"
                (await ami.action("MixMonitor", {"Channel": caller_chan, "Options": f"t({ears}.wav)",
                                                 "Command": f"touch {ears}.done"})).raise_for_error("MixMonitor")
                await spy(http, url, token, "whisper")
                spied = await sup.wait_for_call("answered", timeout=20, count=2)
                await ami.wait_for(lambda m: m.get("Event") == "ChanSpyStart", timeout=20, count=2)
                heard_by_agent = await more_audio(call, len(call.audio), 8000)
                assert tone_energy(heard_by_agent, 600) > HEARS  # the agent hears the coach
                await more_audio(spied, len(spied.audio), 8000)  # another second for the caller's recording
                (await ami.action("StopMixMonitor", {"Channel": caller_chan})).raise_for_error("StopMixMonitor")
                done = spool / Path(ears).name
                for _ in range(200):
                    if done.with_suffix(".done").exists():
                        break
                    await asyncio.sleep(0.05)
                caller_ears = done.with_suffix(".wav")
                assert wav_energy(caller_ears, 1000) > HEARS  # the caller hears the agent...
                assert wav_energy(caller_ears, 600) < SILENT  # ...and not the coach
                caller_ears.unlink()
                done.with_suffix(".done").unlink()
            await server.store.flush()
            from ctiserver.store.query import fetch_events

            modes = [e.data["mode"] for e in await fetch_events(server.store.engine, kinds=[Kind.MONITOR])]
            assert modes == ["listen", "whisper"]
        finally:
            await sup.close()
