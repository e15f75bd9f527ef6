"""The ACD through the real sandbox Asterisk: tier order, RONA, and no caller lost when the CTI dies.

Callers are `Local/95598@hotline` channels whose dialplan runs `AGI(agi://<CTI_AGI host>/ivr)`;
agents are `Local/<id>@sim-agents`, whose behaviour the test sets with AMI globals.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ctiserver.acd.callback_key import callback_key_listener
from ctiserver.acd.engine import AcdEngine
from ctiserver.acd.model import Offer
from ctiserver.acd.runtime import AcdHooks, AcdRuntime
from ctiserver.agi.channel import AgiChannel
from ctiserver.agi.server import FastAGIServer
from ctiserver.clock import SystemClock
from ctiserver.events import Event, Kind
from tests.asterisk_fixture import AmiRecorder, event_is, originate_caller

from .helpers import config

pytestmark = pytest.mark.asterisk

ROOT = Path(__file__).resolve().parents[2]


async def until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def set_agents(ami: AmiRecorder, modes: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Set sim-agent globals; returns the previous values so the test can put them back."""
    before: dict[str, dict[str, str]] = {}
    for agent, values in modes.items():
        for key, value in values.items():
            name = f"AGENT_{agent}_{key}"
            resp = await ami.action("Getvar", {"Variable": name})
            before.setdefault(agent, {})[key] = resp.get("Value") or ""
            await ami.setvar(name, value)
    return before


async def call_hotline(ami: AmiRecorder, number: str, agi: str, hold_s: int = 90, keys: str = "") -> None:
    """A simulated caller whose FastAGI target is ours (a channel variable: the global stays untouched)."""
    await originate_caller(ami, number, hold_s=hold_s, agi=agi, keys=keys)


async def test_vip_first_blacklist_last_and_rona_skips_the_silent_agent(ami: AmiRecorder) -> None:
    cfg = config({"1091": {"billing": 5}, "1092": {"billing": 9}}, dial_template="Local/{id}@sim-agents",
                 ring_timeout_s=2, probe_every_s=0.5, announce={"first_after_s": 600, "every_s": 600},
                 queue_defaults={"wrap_up_s": 0.3, "handle_time_s": 60})
    log: list[Event] = []
    rt = AcdRuntime(AcdEngine(cfg), SystemClock(), log.append)
    tiers = {"13900000010": "normal", "13900000011": "blacklist", "13900000012": "normal",
             "13900000013": "vip", "13900000014": "normal", "13900000015": "normal"}
    results: dict[str, str] = {}

    async def handler(chan: AgiChannel) -> None:
        caller = chan.headers.get("agi_callerid", "")
        results[caller] = await rt.serve_caller(chan, chan.headers["agi_uniqueid"], "billing", tiers[caller],
                                                caller, None)

    server = FastAGIServer("127.0.0.1", 0, handler)
    await server.start()
    await rt.start()
    agi = f"127.0.0.1:{server.port}"
    before = await set_agents(ami, {"1091": {"MODE": "answer", "RING": "0.5", "TALK": "8"},
                                    "1092": {"MODE": "noanswer"}})
    try:
        rt.login("1091", ready=True)
        rt.login("1092", ready=True)
        await call_hotline(ami, "13900000010", agi)
        await until(lambda: any(e.kind == Kind.ACD_ANSWER for e in log), 30, "the first caller's answer")
        # 1092 (better proficiency) was offered first, did not answer, and is now not ready
        assert [e.agent_id for e in log if e.kind == Kind.ACD_RONA] == ["1092"]
        assert rt.engine.agent_state("1092") == ("not_ready", "rona")
        await ami.setvar("AGENT_1091_TALK", "1")
        for number in ["13900000011", "13900000012", "13900000013", "13900000014", "13900000015"]:
            await call_hotline(ami, number, agi)
            await until(lambda n=number: any(e.kind == Kind.ACD_ENQUEUE and e.data["caller"] == n for e in log),
                        20, f"{number} queued")
        await until(lambda: len(results) == 6, 90, "every caller served")
    finally:
        await set_agents(ami, before)
        await rt.stop()
        await server.close()
    answered = [e.data for e in log if e.kind == Kind.ACD_ENQUEUE]
    by_call = {e.call_id: e.data["caller"] for e in log if e.kind == Kind.ACD_ENQUEUE}
    order = [by_call[e.call_id] for e in log if e.kind == Kind.ACD_ANSWER]
    assert len(answered) == 6
    assert order == ["13900000010", "13900000013", "13900000012", "13900000014", "13900000015",
                     "13900000011"]
    assert set(results.values()) == {"answered"}


@pytest.mark.parametrize("source", ["ami", "poll"])
async def test_callback_key_keeps_the_place_through_asterisk(ami: AmiRecorder, source: str) -> None:
    """The caller presses the callback key after the hint: heard from Asterisk's DTMF events while the
    session sends nothing (ami: the key pressed with no command listening), or by WAIT FOR DIGIT (poll)."""
    offers: list[Offer] = []
    said: list[str] = []
    commands: list[str] = []

    async def say(chan: AgiChannel, text: str, lang: str = "zh") -> None:
        said.append(text)
        await chan.execute('STREAM FILE beep ""')

    cfg = config({"1093": {"billing": 5}}, callback_key="1", key_source=source, key_poll_ms=300,
                 probe_every_s=0.5, announce={"first_after_s": 0.5, "every_s": 600, "callback_hint": "press 1"})
    rt = AcdRuntime(AcdEngine(cfg), SystemClock(), lambda e: None, say=say,
                    hooks=AcdHooks(on_callback_offer=offers.append))
    ami.listeners.append(callback_key_listener(rt))
    results: list[str] = []

    async def handler(chan: AgiChannel) -> None:
        execute = chan.execute

        async def noted(command: str, *args: Any, **kw: Any) -> Any:
            commands.append(command.split(" ", 3)[0] + " " + command.split(" ", 3)[1])
            return await execute(command, *args, **kw)

        chan.execute = noted  # type: ignore[method-assign]
        call_id = (await chan.execute("GET VARIABLE CHANNEL(linkedid)")).data.strip()  # as the IVR's
        results.append(await rt.serve_caller(chan, call_id, "billing", "normal",
                                             chan.headers.get("agi_callerid", ""), None))

    server = FastAGIServer("127.0.0.1", 0, handler)
    await server.start()
    try:
        rt.login("1093", ready=False)
        await call_hotline(ami, "13900000031", f"127.0.0.1:{server.port}", keys=">|!1" if source == "ami" else ">|1")
        await until(lambda: bool(results), 30, "the caller's choice")
        assert results == ["callback"]
        assert said and said[0].endswith("press 1")
        assert ("WAIT FOR" in commands) == (source == "poll"), commands
        rt.set_ready("1093")
        assert [(o.kind, o.number, o.agent_id) for o in offers] == [("callback", "13900000031", "1093")]
    finally:
        await server.close()


CTI_PROCESS = r"""
import asyncio, json, sys
from ctiserver.acd.callback_key import callback_key_listener
from ctiserver.acd.config import AcdConfig
from ctiserver.acd.callback_key import callback_key_listener
from ctiserver.acd.engine import AcdEngine
from ctiserver.acd.runtime import AcdRuntime
from ctiserver.agi.server import FastAGIServer
from ctiserver.clock import SystemClock

async def main():
    cfg = AcdConfig.model_validate(json.loads(sys.argv[1]))
    rt = AcdRuntime(AcdEngine(cfg), SystemClock(), lambda e: print(e.kind, e.call_id, flush=True))
    for agent in rt.engine.agent_ids():
        rt.login(agent, ready=False)  # nobody ready: every caller waits under CTI control
    async def handler(chan):
        await rt.serve_caller(chan, chan.headers["agi_uniqueid"], "billing", "normal",
                              chan.headers.get("agi_callerid", ""), None)
    server = FastAGIServer("127.0.0.1", 0, handler)
    await server.start()
    await rt.start()
    print("PORT", server.port, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_killing_the_cti_mid_queue_loses_no_caller(ami: AmiRecorder) -> None:
    settings: dict[str, Any] = {"skills": ["billing"], "tiers": [{"name": "normal"}], "probe_every_s": 0.5,
                                "agents": [{"id": "1001", "skills": {"billing": 5}}],
                                "announce": {"first_after_s": 600, "every_s": 600}}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CTI_PROCESS, json.dumps(settings),
                                                stdout=asyncio.subprocess.PIPE, env=env, start_new_session=True)
    lines: list[str] = []

    async def read_until(pred: Callable[[list[str]], bool], timeout: float) -> None:
        assert proc.stdout is not None
        async with asyncio.timeout(timeout):
            while not pred(lines):
                line = await proc.stdout.readline()
                if not line:
                    raise AssertionError(f"the CTI process exited: {lines}")
                lines.append(line.decode().strip())

    numbers = ["13900000021", "13900000022", "13900000023"]
    before: dict[str, dict[str, str]] = {}
    try:
        await read_until(lambda ls: any(x.startswith("PORT ") for x in ls), 30)
        agi = "127.0.0.1:" + next(x for x in lines if x.startswith("PORT ")).split()[1]
        answering = {"MODE": "answer", "RING": "0.5", "TALK": "1"}
        before = await set_agents(ami, {a: answering for a in ("1008", "1009", "1010")})
        for number in numbers:
            await call_hotline(ami, number, agi)
        await read_until(lambda ls: sum(x.startswith("acd.enqueue") for x in ls) == 3, 30)
        ours = {x.split()[1] for x in lines if x.startswith("acd.enqueue")}  # call ids = AGI uniqueids
        os.kill(proc.pid, signal.SIGKILL)  # the CTI dies with three callers on hold under its control
        await asyncio.wait_for(proc.wait(), 10)
        fallbacks = await ami.wait_for(lambda m: event_is("UserEvent", UserEvent="CtiFallback")(m)
                                       and m.get("Uniqueid") in ours, timeout=30, count=3)
        assert len({f.get("Uniqueid") for f in fallbacks}) == 3
        connects = await ami.wait_for(lambda m: event_is("AgentConnect", Queue="fallback")(m)
                                      and m.get("Uniqueid") in ours, timeout=90, count=3)
        assert len({c.get("Uniqueid") for c in connects}) == 3
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 10)
        if before:
            await set_agents(ami, before)
