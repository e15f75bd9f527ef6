"""ACD callbacks through the real sandbox Asterisk, with the server as it ships (build_server).

Callers walk the IVR to the billing queue while the only agent (1001, a `Local/<id>@sim-agents`
channel) is not ready. One is a priority-tier customer who gives up after waiting: the ACD
schedules a callback. The other presses 1 to keep their place and hangs up. When the agent
gets ready, the CTI rings the agent's phone first, and once the agent answered it dials the
customer (`Local/<number>@outbound-dest`, the sandbox's scripted customers) from that leg.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctiserver.app.server import CtiServer
from ctiserver.app.wiring import build_server
from ctiserver.callbacks.store import CallbackRow
from ctiserver.config import load_server_config
from ctiserver.events import Event, Kind
from tests.asterisk_fixture import AmiRecorder, originate_caller
from tests.live_config import IVR_TO_AGENT, KEYS_TO_AGENT, sandbox_config
from tests.recording.live import indexed_row


def callback_config(tmp: Path, info: Any) -> Path:
    """The sample config on the sandbox with Local sim agents; customers are the sandbox's scripted
    numbers and callbacks may ring at any hour (the test runs at any hour)."""
    cfg = sandbox_config(tmp, info, local_agents=True)
    out = yaml.safe_load((cfg / "outbound.yaml").read_text(encoding="utf-8"))
    out["dial"]["channel"] = "Local/{number}@outbound-dest"
    out["acd_callbacks"]["windows"] = ["00:00-24:00"]
    out["quiet_hours"] = {"default": []}
    (cfg / "outbound.yaml").write_text(yaml.safe_dump(out, allow_unicode=True), encoding="utf-8")
    return cfg


@pytest.fixture
async def live(asterisk_sandbox: Any, ami: AmiRecorder, tmp_path: Path) -> AsyncIterator[CtiServer]:
    cfg_dir = callback_config(tmp_path, asterisk_sandbox)
    server = await build_server(cfg_dir, load_server_config(cfg_dir), sample_data=True, base_dir=tmp_path)
    events: list[Event] = []
    server.event_listeners.append(events.append)
    server.features.extra["events"] = events
    await server.start()
    try:
        await asyncio.wait_for(server.ami["pbx1"].wait_connected(), 20)
        await server.features.ivr.wait_prerendered()
        await server.features.extra["recorder"].wait_armed("pbx1", 20)
        await ami.setvar("AGENT_1001_MODE", "answer")
        await ami.setvar("AGENT_1001_RING", "1")
        await ami.setvar("AGENT_1001_TALK", "6")
        yield server
    finally:
        await ami.setvar("AGENT_1001_MODE", "")
        await ami.setvar("AGENT_1001_TALK", "")
        await server.stop()


async def until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = pred()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.25)


async def rows_of(server: CtiServer, number: str) -> list[CallbackRow]:
    store = server.features.outbound.callbacks.store
    return [r for r in await store.recent() if r.number == number]


def kinds(server: CtiServer, event_kind: str, /, **data: Any) -> list[Event]:
    return [e for e in server.features.extra["events"]
            if e.kind == event_kind and all(e.data.get(k) == v for k, v in data.items())]


async def customer_answered(ami: AmiRecorder, number: str, timeout: float) -> Any:
    def answered(m: Any) -> bool:
        return bool(m.get("Event") == "DialEnd" and m.get("DialStatus") == "ANSWER"
                    and str(m.get("DestChannel") or "").startswith(f"Local/{number}@outbound-dest"))

    [end] = await ami.wait_for(answered, timeout=timeout)
    return end


async def test_a_priority_caller_who_gave_up_is_called_back_from_the_agents_phone(
        live: CtiServer, ami: AmiRecorder) -> None:
    acd = live.features.acd
    acd.login("1001", ready=False)  # staffed, not ready: the caller waits
    number = "13800000007"  # 赵磊, priority tier; the sandbox customer ...7 answers
    # the caller gives up 11 s after the ACD queued them (a priority caller who waited >= 10 s is called back):
    # timed from the ACD's own enqueue, however long the IVR took to get them there on a busy machine
    await originate_caller(ami, number, IVR_TO_AGENT, name="赵磊", hold_s=600, agi=f"127.0.0.1:{live.cfg.agi.port}")
    # this caller's call: a caller another test left on the shared sandbox that gives up in Asterisk's own
    # fallback queue meanwhile is seen (and counted) by this server too, but is not this scenario's
    [queued] = await until(lambda: kinds(live, Kind.ACD_ENQUEUE, caller=number), 90, "the caller in the queue")
    await asyncio.sleep(11)  # the scenario: how long this caller is willing to wait
    await ami.hang_up_callers()
    await until(lambda: [e for e in kinds(live, Kind.ACD_ABANDON) if e.call_id == queued.call_id], 90,
                "the caller to give up")
    [abandon] = [e for e in kinds(live, Kind.ACD_ABANDON) if e.call_id == queued.call_id]  # once
    assert abandon.tier == "priority" and abandon.data["wait_s"] >= 10
    [row] = await until(lambda: rows_of(live, number), 10, "the callback row")
    assert (row.origin_call, row.reason, row.tier) == (abandon.call_id, "abandon", "priority")
    await until(lambda: acd.engine.call_state(f"cb-{row.id}-1") == "waiting", 10, "the callback in the ACD")

    acd.set_ready("1001")
    await customer_answered(ami, number, timeout=40)  # the agent answered, then the customer did
    done = await until(lambda: _done(live, number), 40, "the callback to be done")
    assert (done.status, done.attempts, done.agent_id, done.last_outcome) == ("done", 1, "1001", "answered")
    assert [e.agent_id for e in kinds(live, Kind.ACD_ANSWER, kind="callback")] == ["1001"]
    [result] = kinds(live, Kind.OUT_RESULT, campaign="acd-callback")
    assert result.data["outcome"] == "answered"
    [end] = kinds(live, Kind.ACD_CALLBACK_END)
    assert (end.call_id, end.data["status"]) == (abandon.call_id, "done")
    # the agent's leg the CTI originated is recorded with the CallerID the Originate gave it (Asterisk
    # creates the channel as <unknown> and sets it in NewCallerid just after), never as <unknown>
    [leg] = kinds(live, Kind.OUT_ATTEMPT, leg="agent")
    await until(lambda: kinds(live, Kind.CALL_END) and [e for e in kinds(live, Kind.CALL_END)
                                                        if e.call_id == leg.call_id], 20, "the agent leg's end")
    mine = [e for e in live.features.extra["events"] if e.call_id == leg.call_id]
    [cid] = [e for e in mine if e.kind == Kind.CALL_CALLERID]
    assert (cid.data["caller_num"], cid.data["caller_name"]) == (number, f"CB {number}")
    [leg_end] = [e for e in mine if e.kind == Kind.CALL_END]
    assert leg_end.data["caller_num"] == number
    assert "<unknown>" not in {e.data.get("caller_num") for e in live.features.extra["events"]
                               if e.kind in (Kind.CALL_NEW, Kind.CALL_END)}
    # the call is recorded (docs/qc.md): from the customer's leg once they answered, sides swapped
    rec = await indexed_row(live.features.extra["recorder"], number)
    assert (rec["agent_id"], rec["call_id"], rec["queue"]) == ("1001", leg.call_id, abandon.queue)
    assert rec["duration_s"] > 1.0 and rec["size"] > 0


async def test_a_caller_who_keeps_their_place_is_called_back_at_their_turn(
        live: CtiServer, ami: AmiRecorder) -> None:
    acd = live.features.acd
    acd.login("1001", ready=False)
    number = "13800000002"  # 李秀英, normal tier; the sandbox customer ...2 answers
    keys = await originate_caller(ami, number, keys=KEYS_TO_AGENT + "|~1", name="李秀英", hold_s=60,
                                  agi=f"127.0.0.1:{live.cfg.agi.port}")
    try:
        [kept] = await until(lambda: kinds(live, Kind.ACD_CALLBACK, reason="in_place"), 150, "the caller to press 1")
        assert keys is not None
        await keys
    except AssertionError:
        for e in live.features.extra["events"]:
            print(e.ts, e.kind, e.call_id, e.data)  # what the CTI saw, for the failure report
        raise
    [row] = await until(lambda: rows_of(live, number), 10, "the callback row")
    assert (row.origin_call, row.reason, row.status, row.engine_call) == (
        kept.call_id, "in_place", "queued", kept.call_id)
    # the caller is off the line: Asterisk no longer has their channel
    await until(lambda: not [c for c in live.trackers["pbx1"].calls.values() if c.call_id == kept.call_id],
                20, "the caller to hang up")

    acd.set_ready("1001")
    await customer_answered(ami, number, timeout=40)
    done = await until(lambda: _done(live, number), 40, "the callback to be done")
    assert (done.status, done.agent_id, done.last_outcome) == ("done", "1001", "answered")
    [offer] = kinds(live, Kind.ACD_OFFER, kind="callback")
    assert (offer.call_id, offer.data["number"]) == (kept.call_id, number)


async def _done(server: CtiServer, number: str) -> CallbackRow | None:
    rows = [r for r in await rows_of(server, number) if r.status not in ("pending", "queued", "dialing")]
    return rows[0] if rows else None
