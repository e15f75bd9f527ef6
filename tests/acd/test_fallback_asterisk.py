"""Callers served by Asterisk's plain Queue() have an ACD outcome in the store (issue 12 item 24).

The whole server as it ships (build_server on the sample config) keeps its AMI link while a caller's
FastAGI is out of reach (the caller's CTI_AGI points at a closed port): the dialplan sends the caller
to Queue(fallback), whose member PJSIP/agent1002 (a real softphone) answers. Before, the store had
only the call's channel events and the reports counted the caller as lost. Also: the CTI is down when
the fallback queue connects a caller, and starts while they talk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ctiserver.ami.message import event_time
from ctiserver.app.server import CtiServer
from ctiserver.app.wiring import build_server
from ctiserver.calendar import load_calendar
from ctiserver.config import load_server_config
from ctiserver.events import Event, Kind
from ctiserver.kpi.config import load_kpi_config
from ctiserver.kpi.report import build_report
from ctiserver.store.query import fetch_events
from tests.asterisk_fixture import AmiRecorder, event_is, originate_caller
from tests.live_config import sandbox_config
from tests.sipphone import agent_phone

pytestmark = [pytest.mark.asterisk, pytest.mark.pjsip_agents]

AGENT = "1002"  # PJSIP/agent1002, a member of [fallback] in asterisk/queues.conf
UNREACHABLE_AGI = "127.0.0.1:1"  # nothing listens: AGI() fails at once (AGISTATUS=FAILURE)


async def until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := pred()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return got


async def stored(server: CtiServer, call_id: str) -> dict[str, list[Event]]:
    await server.store.flush(timeout=10)
    out: dict[str, list[Event]] = {}
    for e in await fetch_events(server.store.engine, call_id=call_id):
        out.setdefault(e.kind, []).append(e)
    return out


async def report(server: CtiServer, cfg_dir: Path, start: float) -> dict[str, Any]:
    kpi = load_kpi_config(cfg_dir, load_calendar(cfg_dir))
    now = server.clock.now()
    return (await build_report(server.store.engine, kpi, start - 60, now + 60, [], now=now))["total"]


async def test_a_fallback_queue_caller_answered_by_an_agent_is_answered_in_the_store(
        asterisk_sandbox: Any, ami: AmiRecorder, tmp_path: Path) -> None:
    cfg_dir = sandbox_config(tmp_path, asterisk_sandbox)
    server = await build_server(cfg_dir, load_server_config(cfg_dir), sample_data=True, base_dir=tmp_path)
    seen: list[Event] = []
    server.event_listeners.append(seen.append)
    await server.start()
    sip = (asterisk_sandbox.ami_host, asterisk_sandbox.sip_port)
    try:
        await asyncio.wait_for(server.ami["pbx1"].wait_connected(), 20)
        start = server.clock.now()
        async with agent_phone(AGENT, sip, answer_after_s=0.5, talk_s=2.0) as phone:
            await originate_caller(ami, "13900000241", "w0", hold_s=30, agi=UNREACHABLE_AGI)
            [fallback] = await ami.wait_for(event_is("UserEvent", UserEvent="CtiFallback", AgiStatus="FAILURE"),
                                            timeout=20)
            call_id = str(fallback.get("Linkedid"))
            await phone.wait_for_call("ended", timeout=30)
            [done] = await until(lambda: [e for e in seen if e.kind == Kind.ACD_COMPLETE and e.call_id == call_id],
                                 15, "the fallback call's completion")
        rows = await stored(server, call_id)
        [enq], [ans] = rows[Kind.ACD_ENQUEUE], rows[Kind.ACD_ANSWER]
        [complete] = rows[Kind.ACD_COMPLETE]
        assert (enq.queue, enq.data["fallback"], enq.data["caller"]) == ("fallback", True, "13900000241")
        assert (ans.agent_id, ans.queue, ans.data["fallback"]) == (AGENT, "fallback", True)
        [connect] = ami.matching(lambda m: event_is("AgentConnect", Queue="fallback")(m)
                                 and m.get("Linkedid") == call_id)
        [finish] = await ami.wait_for(event_is("AgentComplete", Queue="fallback", Interface=f"PJSIP/agent{AGENT}"),
                                      timeout=10)
        assert ans.ts == pytest.approx(event_time(connect), abs=1e-5)  # as Asterisk stamped it
        assert ans.data["wait_s"] == float(connect.get("HoldTime"))
        assert complete.agent_id == AGENT and complete.ts == pytest.approx(event_time(finish), abs=1e-5)
        assert complete.data["talk_s"] == pytest.approx(event_time(finish) - event_time(connect), abs=1e-4)
        assert done.data["reason"] in ("agent", "caller")
        total = await report(server, cfg_dir, start)
        assert (total["answered"], total["call_loss"], total["calls_offered"]) == (1, 0, 1)  # not lost any more
    finally:
        await server.stop()


async def test_a_fallback_call_already_talking_when_the_cti_starts_is_recorded_when_it_ends(
        asterisk_sandbox: Any, ami: AmiRecorder, tmp_path: Path) -> None:
    """The restart case: the join and the connect happened while the CTI was down and cannot be read again;
    the caller's channel (running Queue, bridged with the agent) is adopted when the CTI connects, and the
    AgentComplete that follows records the answer (at completion minus TalkTime) and the completion."""
    cfg_dir = sandbox_config(tmp_path, asterisk_sandbox)
    server = await build_server(cfg_dir, load_server_config(cfg_dir), sample_data=True, base_dir=tmp_path)
    seen: list[Event] = []
    server.event_listeners.append(seen.append)
    sip = (asterisk_sandbox.ami_host, asterisk_sandbox.sip_port)
    started = False
    try:
        async with agent_phone(AGENT, sip, answer_after_s=0.5, talk_s=None) as phone:
            await originate_caller(ami, "13900000242", "w0", hold_s=60, agi=UNREACHABLE_AGI)
            [connect] = await ami.wait_for(event_is("AgentConnect", Queue="fallback"), timeout=30)
            call_id = str(connect.get("Linkedid"))
            start = event_time(connect)

            await server.start()  # the CTI comes (back) while the caller talks to the agent
            started = True
            fallback = server.features.extra["fallback"]
            await until(lambda: ("pbx1", AGENT, call_id) in fallback.talking(), 20, "the talking call adopted")
            await phone.hangup(phone.calls[-1].call_id)

            [finish] = await ami.wait_for(event_is("AgentComplete", Queue="fallback",
                                                   Interface=f"PJSIP/agent{AGENT}"), timeout=10)
            await until(lambda: [e for e in seen if e.kind == Kind.ACD_COMPLETE and e.call_id == call_id], 10,
                        "the completion recorded")
        rows = await stored(server, call_id)
        [ans], [complete] = rows[Kind.ACD_ANSWER], rows[Kind.ACD_COMPLETE]
        talk = float(finish.get("TalkTime"))
        assert (ans.agent_id, ans.queue, ans.data["restored"], ans.data["wait_s"]) == (
            AGENT, "fallback", True, float(finish.get("HoldTime")))
        assert ans.ts == pytest.approx(event_time(finish) - talk)  # Asterisk's whole seconds of talk
        assert (complete.agent_id, complete.data["talk_s"], complete.data["restored"]) == (AGENT, talk, True)
        assert Kind.ACD_ENQUEUE not in rows  # the join happened while the CTI was down: not recoverable
        total = await report(server, cfg_dir, start)
        assert (total["answered"], total["call_loss"]) == (1, 0)
    finally:
        if started:
            await server.stop()
