"""The AMI client and the FastAGI listener against the real sandbox Asterisk 22 (loopback).

What the fakes cannot prove: Asterisk's own frames, list actions, OriginateResponse
with our ChannelId, CJK caller names end to end, HANGUP on a real hangup, and the
dialplan fallback when a handler crashes.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

import pytest

from ctiserver.agi.channel import AgiChannel, AgiHangup, AgiReply
from ctiserver.agi.server import FastAGIServer
from ctiserver.ami.client import AmiClient
from ctiserver.ami.errors import AmiActionError
from ctiserver.ami.message import AmiMessage
from ctiserver.ami.reconnect import ConnectInfo
from ctiserver.sandbox import chroot as sandbox
from tests.asterisk_fixture import AmiRecorder, ami_server_config, event_is, originate_caller

pytestmark = pytest.mark.asterisk

NAME = "国网客户张三"


async def _until(cond: Callable[[], bool], limit_s: float = 20.0) -> None:
    async with asyncio.timeout(limit_s):
        while not cond():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_ami_client_on_asterisk22(asterisk_sandbox: sandbox.SandboxInfo) -> None:
    events: list[AmiMessage] = []
    infos: list[ConnectInfo] = []

    async def on_connect(info: ConnectInfo) -> None:
        infos.append(info)

    client = AmiClient(ami_server_config(asterisk_sandbox), events.append, on_connect)
    await client.start()
    try:
        await client.wait_connected(15)
        await _until(lambda: bool(infos))
        assert infos[0].uptime is not None and infos[0].uptime >= 0  # read=system: FullyBooted
        assert infos[0].restarted is False and infos[0].ami_version
        chan_id = f"ctitest-{secrets.token_hex(4)}"
        resp = await client.action("Originate", {
            "Channel": "Local/1000@outbound-dest", "Application": "Wait", "Data": "30", "Async": "true",
            "ChannelId": chan_id, "OtherChannelId": f"{chan_id}-2", "CallerID": f'"{NAME}" <13800138000>',
        })
        assert resp.success and resp.message == "Originate successfully queued"

        def mine(name: str) -> list[AmiMessage]:
            return [m for m in events if m.event == name and m.get("Uniqueid") == chan_id]

        await _until(lambda: bool(mine("OriginateResponse")))
        (answered,) = mine("OriginateResponse")
        assert answered.get("Response") == "Success" and answered.action_id == resp.response.action_id
        assert any(m.get("CallerIDName") == NAME for m in events if m.get("Uniqueid") == chan_id)

        status = await client.action("Status")
        assert status.success and status.events[-1].event == "StatusComplete"
        assert chan_id in {m.get("Uniqueid") for m in status.events}
        assert not [m for m in events if m.event == "Status"]  # list members went to the caller only

        with pytest.raises(AmiActionError):
            await client.action("Hangup", {"Channel": answered.require("Channel") + "\r\n\r\nAction: Ping"})
        hangup = await client.action("Hangup", {"Channel": answered.require("Channel")})
        assert hangup.success
        await _until(lambda: bool(mine("Hangup")))
        assert client.connected and client.status()["reconnects"] == 0
    finally:
        await client.close()


async def _hotline_call(ami: AmiRecorder, port: int, keys: str, hold_s: int) -> str:
    number = "138" + str(secrets.randbelow(10**8)).zfill(8)
    await originate_caller(ami, number, keys=keys, name=NAME, hold_s=hold_s, agi=f"127.0.0.1:{port}")
    return number


async def test_fastagi_session_on_asterisk22(ami: AmiRecorder) -> None:
    log: list[tuple[str, object]] = []
    done = asyncio.Event()

    async def handler(chan: AgiChannel) -> None:
        log.append(("path", chan.path))
        log.append(("caller", (chan.headers.get("agi_callerid"), chan.headers.get("agi_calleridname"))))
        try:
            log.append(("getdata", await chan.execute("GET DATA beep 8000 1")))
            log.append(("set", await chan.execute("SET VARIABLE CTI_DONE 1")))
            log.append(("wait", await chan.execute("WAIT FOR DIGIT 30000")))
            log.append(("after", await chan.execute("NOOP")))
        except AgiHangup:
            log.append(("hangup", True))
        finally:
            done.set()

    server = FastAGIServer("127.0.0.1", 0, handler)
    await server.start()
    try:
        number = await _hotline_call(ami, server.port, "1", hold_s=10)
        async with asyncio.timeout(40):
            await done.wait()
    finally:
        await server.close()
    got = dict(log)
    assert got["path"] == "ivr" and got["caller"] == (number, NAME)
    assert got["getdata"] == AgiReply(200, "1", "")  # the digit the simulated caller pressed
    assert got["set"] == AgiReply(200, "1", "")
    assert log[-1] == ("hangup", True)  # the caller hung up: HANGUP, not a hang
    assert server.failed_total == 0 and server.active_sessions == 0


async def test_crashing_handler_leaves_the_caller_to_the_fallback(ami: AmiRecorder) -> None:
    async def handler(chan: AgiChannel) -> None:
        await chan.execute("ANSWER")
        raise RuntimeError("IVR bug")

    server = FastAGIServer("127.0.0.1", 0, handler)
    await server.start()
    try:
        number = await _hotline_call(ami, server.port, "", hold_s=4)
        fallback = await ami.wait_for(lambda m: event_is("UserEvent", UserEvent="CtiFallback")(m)
                                      and any(e.get("Uniqueid") == m.get("Uniqueid")
                                              and e.get("CallerIDNum") == number for e in ami.events),
                                      timeout=30)
    finally:
        await server.close()
    assert fallback and server.failed_total == 1 and server.sessions_total == 1
