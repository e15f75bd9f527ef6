"""`ctiserver export queue-log` against the queue_log Asterisk itself writes (issue 14 item 5).

Calls run through the sandbox's real `Queue(fallback)` (the caller's FastAGI is out of reach, so the
hotline falls back to it): one answered by a sim agent, who hangs up (COMPLETEAGENT), one that gives up
waiting (ABANDON); the agent is driven the way a CTI drives an app_queue member over AMI (QueueAdd paused
with a reason, QueuePause without a queue: ready, not ready, another reason, ready; QueueRemove), as member
name `Agent/<id>`. The lines Asterisk
wrote for this test's calls and member (found by the calls' channel ids and the member's name; the file
may hold other tests' lines) are read back and held verb by verb, field by field, against what
kpi/queuelog.py writes for the ACD's events of the same happenings: the call events as the server's
fallback tracker makes them from the AMI events of those calls, the agent's states at the moments Asterisk
stamped the member's changes, and a RONA for one member Asterisk reported RINGNOANSWER for.

Where the two deliberately differ (docs/kpis.md): the callid is ctiserver's call id (the call's Linkedid)
where Asterisk writes the queued channel's Uniqueid; ADDMEMBER/REMOVEMEMBER carry no queue (an agent
logs in to all its skills); a pause is one PAUSEALL (Asterisk adds a PAUSE per queue after it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ctiserver.acd.fallback import FallbackQueues
from ctiserver.ami.message import event_time
from ctiserver.events import Event, Kind
from ctiserver.kpi.queuelog import queue_log
from tests.asterisk_fixture import AmiRecorder, event_is, originate_caller

from .test_kpi_queue_log import INTS, parse

pytestmark = [pytest.mark.asterisk]

AGENT = "1011"  # Local/1011@sim-agents: not a static member of [fallback]; this test adds and removes it
MEMBER = f"Local/{AGENT}@sim-agents/n"
NAME = f"Agent/{AGENT}"  # the member's name: queue_log's agent column, as ctiserver writes it
ANSWERED, ABANDONED = "13900001401", "13900001402"
UNREACHABLE_AGI = "127.0.0.1:1"  # AGI() fails at once: the hotline sends the caller to Queue(fallback)
QUEUE_LOG = "var/log/asterisk/queue_log"
STATIC_PAUSE = "queue-log-test"
BUSY_AGENT = "1001"
BUSY_MEMBER = f"Local/{BUSY_AGENT}@sim-agents/n"  # the one static member left in: busy, it rings no answer
PAUSED: list[str] = []  # the static members this test paused, unpaused when it ends
DURATIONS = {"holdtime", "calltime", "waittime", "ringtime"}  # whole-second spans: stamps may straddle a second


async def until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := pred()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return got


def same_line(real: dict[str, Any], ours: dict[str, Any], linkedid: dict[str, str],
              agent_of: Callable[[str], str]) -> None:
    """One of Asterisk's lines and ctiserver's for the same happening: same verb, fields, types, values."""
    what = (real, ours)
    assert ours["event"] == real["event"], what
    assert set(ours) == set(real), what  # the parser gave both the verb's fields, no more, no fewer
    assert abs(ours["time"] - real["time"]) <= 1, what
    assert ours["callid"] == linkedid.get(real["callid"], real["callid"]), what
    assert ours["agent"] in (real["agent"], f"Agent/{agent_of(real['agent'])}"), what  # a static member: its id
    if real["event"] not in ("ADDMEMBER", "REMOVEMEMBER"):
        assert ours["queue"] == real["queue"], what
    for name, value in real.items():
        if name in ("time", "callid", "queue", "agent", "event"):
            continue
        if name in INTS:
            assert isinstance(ours[name], int) and isinstance(value, int), (name, what)
        if name in DURATIONS:
            assert abs(ours[name] - value) <= 1, (name, what)
        else:
            assert ours[name] == value, (name, what)


async def pause_the_static_members(ami: AmiRecorder) -> None:
    """[fallback]'s static members (PJSIP/agent10xx, Local/10xx@sim-agents) paused for this test but one busy
    sim agent (BUSY_MEMBER: each ring of it is a RINGNOANSWER, which the test needs), so that only its own
    member can answer: rrmemory rings one member at a time for 12 s, and a phone an earlier test left
    registered (its contact outlives the softphone) would use up the wait first. Paused under a reason of
    their own; the test's lines are its member's and its calls' only."""
    await ami.setvar(f"AGENT_{BUSY_AGENT}_MODE", "busy")
    resp = (await ami.action("QueueStatus", {"Queue": "fallback"})).raise_for_error("QueueStatus")
    for msg in resp.events:
        if msg.get("Event") == "QueueMember" and msg.get("Membership") == "static" and msg.get("Paused") == "0" \
                and msg.get("Location") != BUSY_MEMBER:
            iface = str(msg.get("Location") or "")
            (await ami.action("QueuePause", {"Queue": "fallback", "Interface": iface, "Paused": "true",
                                             "Reason": STATIC_PAUSE})).raise_for_error("QueuePause")
            PAUSED.append(iface)


async def unpause_the_static_members(ami: AmiRecorder) -> None:
    while PAUSED:
        iface = PAUSED.pop()
        (await ami.action("QueuePause", {"Queue": "fallback", "Interface": iface, "Paused": "false",
                                         "Reason": STATIC_PAUSE})).raise_for_error("QueuePause")


async def test_the_export_writes_the_lines_a_real_queue_writes(asterisk_sandbox: Any, ami: AmiRecorder) -> None:
    path = Path(asterisk_sandbox.root) / QUEUE_LOG
    start = path.stat().st_size if path.exists() else 0
    states: list[Event] = []

    async def act(name: str, **fields: str) -> None:
        (await ami.action(name, fields)).raise_for_error(name)

    def state(msg: Any, now: str, was: str, reason: str | None = None, was_reason: str | None = None) -> None:
        states.append(Event(Kind.AGENT_STATE, event_time(msg), None, AGENT,
                            data={"state": now, "previous": was, "reason": reason, "previous_reason": was_reason}))

    async def paused(flag: str, reason: str) -> Any:  # each change of this test has its own (flag, reason)
        [msg] = await ami.wait_for(event_is("QueueMemberPause", Queue="fallback", Interface=MEMBER, Paused=flag,
                                            PausedReason=reason))
        return msg

    await ami.setvar(f"AGENT_{AGENT}_MODE", "answer")
    await ami.setvar(f"AGENT_{AGENT}_RING", "1")
    await ami.setvar(f"AGENT_{AGENT}_TALK", "1")
    await pause_the_static_members(ami)
    try:
        await act("QueueAdd", Queue="fallback", Interface=MEMBER, MemberName=NAME, Paused="true", Reason="login")
        # logs in not ready, then ready: the ACD's agent.state; QueueAdd paused, QueuePause (all queues)
        [added] = await ami.wait_for(event_is("QueueMemberAdded", Queue="fallback", Interface=MEMBER))
        state(added, "not_ready", "logged_out", "login")
        await act("QueuePause", Interface=MEMBER, Paused="false", Reason="login")
        state(await paused("0", "login"), "available", "not_ready", None, "login")

        # a caller answered by the agent, who hangs up
        await originate_caller(ami, ANSWERED, hold_s=30, agi=UNREACHABLE_AGI)
        [connect] = await ami.wait_for(lambda m: event_is("AgentConnect", Interface=MEMBER)(m)
                                       and m.get("CallerIDNum") == ANSWERED, timeout=30)
        await ami.wait_for(lambda m: event_is("AgentComplete", Interface=MEMBER)(m)
                           and event_time(m) >= event_time(connect), timeout=30)  # (it names no caller)

        # not ready (lunch); a caller gives up waiting; ready again; logs out
        await act("QueuePause", Interface=MEMBER, Paused="true", Reason="lunch")
        state(await paused("1", "lunch"), "not_ready", "available", "lunch")
        await originate_caller(ami, ABANDONED, hold_s=2, agi=UNREACHABLE_AGI)
        await ami.wait_for(lambda m: event_is("QueueCallerAbandon", Queue="fallback")(m)
                           and m.get("CallerIDNum") == ABANDONED, timeout=30)
        await act("QueuePause", Interface=MEMBER, Paused="true", Reason="meeting")  # another reason
        state(await paused("1", "meeting"), "not_ready", "not_ready", "meeting", "lunch")
        await act("QueuePause", Interface=MEMBER, Paused="false", Reason="meeting")
        state(await paused("0", "meeting"), "available", "not_ready", None, "meeting")
    finally:
        with contextlib.suppress(Exception):  # (not added: nothing to remove)
            await act("QueueRemove", Queue="fallback", Interface=MEMBER)
        await unpause_the_static_members(ami)
    [removed] = await ami.wait_for(event_is("QueueMemberRemoved", Queue="fallback", Interface=MEMBER))
    state(removed, "logged_out", "available")

    joins = {m.get("CallerIDNum"): m for m in ami.matching(event_is("QueueCallerJoin", Queue="fallback"))}
    uid = {num: str(joins[num].get("Uniqueid")) for num in (ANSWERED, ABANDONED)}
    linkedid = {uid[num]: str(joins[num].get("Linkedid")) for num in uid}

    def written() -> list[dict[str, Any]]:
        """This test's lines of the file (since the test began: other tests' calls and member are left out)."""
        with open(path, "rb") as fh:
            fh.seek(start)
            lines = [line.split("|") for line in fh.read().decode().splitlines()]
        return [parse("|".join(f)) for f in lines if len(f) > 4 and (f[1] in linkedid or f[3] == NAME)]

    rows = await until(lambda: (r := written()) and r[-1]["event"] == "REMOVEMEMBER" and r, 10,
                       "Asterisk's REMOVEMEMBER line")
    real = {num: [r for r in rows if r["callid"] == uid[num]] for num in uid}
    real_member = [r for r in rows if r["agent"] == NAME and r["callid"] in ("MANAGER", "NONE")]

    # what Asterisk wrote (the fallback queue's static sim agents are busy: each ring of them is a RINGNOANSWER)
    assert [r["event"] for r in real[ANSWERED] if r["event"] != "RINGNOANSWER"] == [
        "ENTERQUEUE", "CONNECT", "COMPLETEAGENT"]
    assert [r["event"] for r in real[ABANDONED] if r["event"] not in ("RINGNOANSWER", "RINGCANCELED")] == [
        "ENTERQUEUE", "ABANDON"]
    assert [(r["event"], r["queue"], r.get("reason", r.get("paused"))) for r in real_member] == [
        ("ADDMEMBER", "fallback", "PAUSED"), ("UNPAUSEALL", "NONE", "login"), ("UNPAUSE", "fallback", "login"),
        ("PAUSEALL", "NONE", "lunch"), ("PAUSE", "fallback", "lunch"), ("PAUSEALL", "NONE", "meeting"),
        ("PAUSE", "fallback", "meeting"), ("UNPAUSEALL", "NONE", "meeting"), ("UNPAUSE", "fallback", "meeting"),
        ("REMOVEMEMBER", "fallback", None)]
    ring = next(r for r in real[ABANDONED] if r["event"] == "RINGNOANSWER")  # (the agent was paused)

    # the ACD's events for the same: the server's fallback tracker on this test's AMI events, the agent's
    # states, and a RONA where Asterisk reported one
    tracker = FallbackQueues(lambda _name: None)
    acd = [e for m in ami.events for e in tracker.feed("pbx1", m, 0.0) if e.call_id in linkedid.values()]
    acd.append(Event(Kind.ACD_RONA, ring["time"] + 0.5, linkedid[ring["callid"]], tracker.agent(ring["agent"]),
                     "fallback", data={"ring_s": ring["ringtime_ms"] / 1000}))
    ours = [parse(line) for line in queue_log(acd + states)]
    mine = {num: [r for r in ours if r["callid"] == linkedid[uid[num]]] for num in uid}
    ours_member = [r for r in ours if r["agent"] == NAME and r["callid"] in ("MANAGER", "NONE")]

    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    calls = {ANSWERED: ["ENTERQUEUE", "CONNECT", "COMPLETEAGENT"], ABANDONED: ["ENTERQUEUE", "ABANDON"]}
    for num, verbs in calls.items():
        assert [r["event"] for r in mine[num] if r["event"] != "RINGNOANSWER"] == verbs
        pairs += zip([r for r in real[num] if r["event"] in verbs], [r for r in mine[num] if r["event"] in verbs],
                     strict=True)
    [our_ring] = [r for r in mine[ABANDONED] if r["event"] == "RINGNOANSWER"]
    pairs.append((ring, our_ring))
    # the member's lines: ours are Asterisk's without the per-queue PAUSE/UNPAUSE that follow each *ALL
    pairs += zip([r for r in real_member if r["event"] not in ("PAUSE", "UNPAUSE")], ours_member, strict=True)
    for real_row, our_row in pairs:
        same_line(real_row, our_row, linkedid, tracker.agent)
