"""Live monitoring against the real sandbox Asterisk, measured by the energy of each party's tone.

Agent 1003's softphone sends 1 kHz, the supervisor's (endpoint agent1009) 600 Hz, the caller nothing.
What the caller hears reaches a third softphone (endpoint agent1008, the caller's "ears"): the simulated
caller is the `;1` half of a Local pair, and what that half reads is what the call sends the caller, so
`ChanSpy(<;1>,qo)` (o: only what the spied channel reads) plays exactly that to the ears. Listen: the
supervisor hears the agent, the agent does not hear the supervisor. Whisper: the agent hears the
supervisor, the caller does not. Barge: both do."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ctiserver.events import Kind
from tests.asterisk_fixture import AmiRecorder, originate_caller
from tests.production import PASSWORD
from tests.recording.live import live_server
from tests.sipphone import CallRecord, SoftPhone, agent_phone, tone_energy

pytestmark = [pytest.mark.asterisk, pytest.mark.pjsip_agents]

A, SUP_PHONE, EARS = "1003", "1009", "1008"
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


async def caller_ears(ami: AmiRecorder, phone: SoftPhone, caller_leg: str) -> CallRecord:
    """What the simulated caller hears, on `phone`: ChanSpy on the caller's own half of the Local pair
    (`caller_leg` is the `;2` half in the agent's bridge), listening only to what that half reads."""
    ears = caller_leg[:-1] + "1"
    (await ami.action("Originate", {"Channel": f"PJSIP/agent{EARS}", "Application": "ChanSpy",
                                    "Data": f"{ears},qoE", "Async": "true", "Timeout": "20000"})
     ).raise_for_error("Originate")
    call = await phone.wait_for_call("answered", timeout=20)
    await ami.wait_for(lambda m: m.get("Event") == "ChanSpyStart" and m.get("SpyeeChannel") == ears, timeout=20)
    return call


def spying_agent(msg: Any) -> bool:
    return msg.get("Event") == "ChanSpyStart" and str(msg.get("SpyeeChannel", "")).startswith(f"PJSIP/agent{A}-")


async def spy(http: aiohttp.ClientSession, url: str, token: str, mode: str) -> dict[str, Any]:
    async with http.post(f"{url}/api/monitor", json={"agent": A, "mode": mode, "phone": SUP_PHONE},
                         headers={"Authorization": f"Bearer {token}", "Origin": url}) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


async def test_listen_whisper_and_barge_reach_only_whom_they_should(asterisk_sandbox: Any, ami: AmiRecorder,
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

                # --- whisper: the caller's ears listen meanwhile ---------------------------------------
                ears_phone = SoftPhone(f"agent{EARS}", f"pw{EARS}", sip, answer_after_s=0.2, talk_s=None)
                await ears_phone.start()
                try:
                    await ears_phone.register()
                    ears = await caller_ears(ami, ears_phone, caller_chan)
                    await spy(http, url, token, "whisper")
                    spied = await sup.wait_for_call("answered", timeout=20, count=2)
                    await ami.wait_for(spying_agent, timeout=20, count=2)
                    heard_by_agent = await more_audio(call, len(call.audio), 8000)
                    heard_by_caller = await more_audio(ears, len(ears.audio), 8000)
                    assert tone_energy(heard_by_agent, 600) > HEARS  # the agent hears the coach
                    assert tone_energy(heard_by_caller, 1000) > HEARS  # the caller hears the agent...
                    assert tone_energy(heard_by_caller, 600) < SILENT  # ...and not the coach
                    await sup.hangup(spied.call_id)
                    await ami.wait_for(lambda m: m.get("Event") == "ChanSpyStop"
                                       and str(m.get("SpyeeChannel", "")).startswith(f"PJSIP/agent{A}-"),
                                       timeout=20, count=2)

                    # --- barge: a three-way call, the caller and the agent both hear the supervisor ----
                    await spy(http, url, token, "barge")
                    await sup.wait_for_call("answered", timeout=20, count=3)
                    await ami.wait_for(spying_agent, timeout=20, count=3)
                    heard_by_agent = await more_audio(call, len(call.audio), 8000)
                    heard_by_caller = await more_audio(ears, len(ears.audio), 8000)
                    assert tone_energy(heard_by_agent, 600) > HEARS  # the agent hears the supervisor
                    assert tone_energy(heard_by_caller, 600) > HEARS  # so does the caller
                    assert tone_energy(heard_by_caller, 1000) > HEARS  # who still hears the agent
                finally:
                    await ears_phone.close()
            await server.store.flush()
            from ctiserver.store.query import fetch_events

            modes = [e.data["mode"] for e in await fetch_events(server.store.engine, kinds=[Kind.MONITOR])]
            assert modes == ["listen", "whisper", "barge"]
        finally:
            await sup.close()
