"""The ACD runtime with scripted AGI channels: holding, ringing, RONA, hangups, announcements, timers.

Time is real but short: ring timeouts and wrap-ups of a fraction of a second.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from ctiserver.acd.engine import AcdEngine
from ctiserver.acd.model import Offer, ScheduleCallback
from ctiserver.acd.runtime import AcdHooks, AcdRuntime, Served
from ctiserver.agi.channel import AgiChannel, AgiError, AgiHangup, AgiReply
from ctiserver.clock import SystemClock
from ctiserver.events import Event, Kind
from ctiserver.fencing import NO_CLAIMS, Claims

from .helpers import config


@dataclass
class Agent:
    """How a scripted agent phone behaves when dialled."""

    answer: bool = True
    ring_s: float = 0.02
    talk_s: float = 0.05
    status: str = "NOANSWER"  # when not answering
    caller_hangs_up_in_talk: bool = False


@dataclass
class FakeChannel:
    """An AgiChannel that plays Asterisk: MOH, probes, digits and Dial by script."""

    agents: dict[str, Agent] = field(default_factory=dict)
    hangup_after_s: float | None = None
    digits: list[str] = field(default_factory=list)
    dial_timeout_seen: list[float | None] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    on_dial_answer: Any = None
    record_s: float = 0.0  # how long a RECORD FILE takes (the caller speaking)
    more_headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._born = asyncio.get_running_loop().time()
        self._dead = False

    @property
    def headers(self) -> dict[str, str]:
        return {"agi_uniqueid": "1.1", **self.more_headers}

    @property
    def path(self) -> str:
        return "ivr"

    def _check(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._dead or (self.hangup_after_s is not None and now - self._born >= self.hangup_after_s):
            self._dead = True
            raise AgiHangup("the caller hung up")

    async def execute(self, command: str, timeout: float | None = None) -> AgiReply:
        self.commands.append(command)
        self._check()
        if command.startswith("EXEC Dial "):
            self.dial_timeout_seen.append(timeout)
            target = command.split(" ", 2)[2].split(",")[0]
            agent = self.agents[target.removeprefix("Local/").split("@")[0]]
            await asyncio.sleep(agent.ring_s)
            if agent.answer:
                if self.on_dial_answer is not None:
                    self.on_dial_answer()
                await asyncio.sleep(agent.talk_s)
                self.variables.update(DIALSTATUS="ANSWER", ANSWEREDTIME=str(agent.talk_s))
                if agent.caller_hangs_up_in_talk:
                    self._dead = True
                    raise AgiHangup("the caller hung up")
            else:
                self.variables.update(DIALSTATUS=agent.status, ANSWEREDTIME="")
            return AgiReply(200, "0")
        if command.startswith("GET VARIABLE "):
            name = command.split(" ", 2)[2]
            value = self.variables.get(name)
            return AgiReply(200, "1", value) if value is not None else AgiReply(200, "0")
        if command.startswith("SET VARIABLE "):
            _, _, name, value = command.split(" ", 3)
            self.variables[name] = value[1:-1] if value.startswith('"') and value.endswith('"') else value
            return AgiReply(200, "1")
        if command.startswith("EXEC MSet "):  # name=value,name=value (plain values: agi/channel.py)
            for pair in command[len("EXEC MSet "):].split(","):
                name, _, value = pair.partition("=")
                self.variables[name] = value
            return AgiReply(200, "0")
        if command.startswith("WAIT FOR DIGIT "):
            await asyncio.sleep(int(command.split()[-1]) / 1000)
            self._check()
            return AgiReply(200, str(ord(self.digits.pop(0))) if self.digits else "0")
        if command == "CHANNEL STATUS":
            return AgiReply(200, "6")
        if command.startswith("RECORD FILE"):
            await asyncio.sleep(self.record_s)
        return AgiReply(200, "0")


def runtime(agents: dict[str, dict[str, int]], *, say: Any = None, hooks: AcdHooks | None = None,
            claims: Claims = NO_CLAIMS, release_on_stop: bool = False, **over: Any) -> tuple[AcdRuntime, list[Event]]:
    settings: dict[str, Any] = {"dial_template": "Local/{id}@sim-agents", "probe_every_s": 0.02,
                                "announce": {"first_after_s": 100, "every_s": 100},
                                "queue_defaults": {"wrap_up_s": 0.05, "handle_time_s": 60},
                                "ring_timeout_s": 12}
    settings.update(over)
    eng = AcdEngine(config(agents, **settings))
    log: list[Event] = []
    return AcdRuntime(eng, SystemClock(), log.append, say=say, hooks=hooks, claims=claims,
                      release_on_stop=release_on_stop), log


def kinds(log: list[Event], call_id: str | None = None) -> list[str]:
    return [e.kind for e in log if call_id is None or e.call_id == call_id]


async def test_caller_reaches_an_agent_through_dial_and_the_cti_marks_the_call_done() -> None:
    seen: list[tuple[str, str, str]] = []
    hooks = AcdHooks(on_offer=lambda c, a, i: seen.append(("offer", c, a)),
                     on_answer=lambda c, a, i: seen.append(("answer", c, a)),
                     on_end=lambda c, a, i: seen.append(("end", c, a)))
    rt, log = runtime({"1001": {"billing": 5}}, hooks=hooks)
    rt.login("1001", ready=True)
    chan = FakeChannel(agents={"1001": Agent(talk_s=0.05)})
    result = await rt.serve_caller(chan, "c1", "billing", "normal", "13800000000", None)
    assert result == "answered"
    assert "EXEC Dial Local/1001@sim-agents,12,U(cti-record^1001)" in chan.commands  # recorded on answer
    assert chan.dial_timeout_seen == [4 * 3600.0]
    assert chan.variables["CTI_DONE"] == "1" and chan.variables["CTI_ACD_RESULT"] == "answered"
    assert kinds(log, "c1") == ["acd.enqueue", "agent.state", "acd.offer", "agent.state", "agent.state",
                                "acd.answer", "acd.complete", "agent.state"]
    complete = next(e for e in log if e.kind == Kind.ACD_COMPLETE)
    assert complete.data["talk_s"] == pytest.approx(0.05, abs=0.03)
    assert seen == [("offer", "c1", "1001"), ("answer", "c1", "1001"), ("end", "c1", "1001")]
    assert rt.engine.agent_state("1001")[0] == "wrap_up"


async def test_rona_skips_the_silent_agent_and_the_caller_reaches_another() -> None:
    rt, log = runtime({"1001": {"billing": 9}, "1002": {"billing": 5}})
    rt.login("1001", ready=True)
    rt.login("1002", ready=True)
    chan = FakeChannel(agents={"1001": Agent(answer=False, status="NOANSWER"), "1002": Agent()})
    assert await rt.serve_caller(chan, "c1", "billing", "normal", "1", None) == "answered"
    dials = [c for c in chan.commands if c.startswith("EXEC Dial")]
    assert dials == ["EXEC Dial Local/1001@sim-agents,12,U(cti-record^1001)",
                     "EXEC Dial Local/1002@sim-agents,12,U(cti-record^1002)"]
    assert rt.engine.agent_state("1001") == ("not_ready", "rona")
    rona = next(e for e in log if e.kind == Kind.ACD_RONA)
    assert rona.agent_id == "1001" and rona.data["reason"] == "noanswer"
    assert [e.agent_id for e in log if e.kind == Kind.ACD_ANSWER] == ["1002"]


async def test_unreachable_phone_sets_agent_unreachable() -> None:
    rt, _ = runtime({"1001": {"billing": 9}, "1002": {"billing": 5}})
    rt.login("1001", ready=True)
    rt.login("1002", ready=True)
    chan = FakeChannel(agents={"1001": Agent(answer=False, status="CHANUNAVAIL"), "1002": Agent()})
    assert await rt.serve_caller(chan, "c1", "billing", "normal", "1", None) == "answered"
    assert rt.engine.agent_state("1001") == ("not_ready", "unreachable")


async def test_hangup_while_waiting_is_an_abandon_and_leaves_nothing_behind() -> None:
    rt, log = runtime({"1001": {"billing": 5}})
    rt.login("1001", ready=False)  # logged in, not ready: the caller must wait
    chan = FakeChannel(hangup_after_s=0.1)
    assert await rt.serve_caller(chan, "c1", "billing", "normal", "1", None) == "abandoned"
    assert "EXEC StartMusicOnHold default" in chan.commands
    assert "CHANNEL STATUS" in chan.commands
    [ab] = [e for e in log if e.kind == Kind.ACD_ABANDON]
    assert ab.data["where"] == "queue" and ab.data["wait_s"] >= 0.1
    assert rt.engine.call_state("c1") is None and "CTI_DONE" not in chan.variables


async def test_announcements_stop_the_music_and_tell_position_and_wait() -> None:
    said: list[str] = []

    async def say(chan: AgiChannel, text: str, lang: str = "zh") -> None:
        said.append(text)

    rt, _ = runtime({"1001": {"billing": 5}}, say=say,
                    announce={"first_after_s": 0.05, "every_s": 0.1,
                              "text": "位置{position}，约{wait_min}分钟", "text_unknown": "位置{position}"})
    rt.login("1001", ready=True)
    rt.apply(lambda now: rt.engine.enqueue("busy", "billing", "normal", "9", now))
    rt.apply(lambda now: rt.engine.ring_answered("busy", now))  # 1001 talks: the caller must wait
    chan = FakeChannel(hangup_after_s=0.28)
    assert await rt.serve_caller(chan, "c1", "billing", "normal", "1", None) == "abandoned"
    assert said[:2] == ["位置1，约1分钟", "位置1，约1分钟"]
    rt.apply(lambda now: rt.engine.call_ended("busy", now))
    rt.set_not_ready("1001", "break")  # nobody serves billing now: no estimate
    said.clear()
    assert await rt.serve_caller(FakeChannel(hangup_after_s=0.1), "c2", "billing", "normal", "2", None) == \
        "abandoned"
    assert said == ["位置1"]
    first = chan.commands.index("EXEC StopMusicOnHold")
    assert chan.commands[first + 1] == "EXEC StartMusicOnHold default"  # resumed after speaking


async def test_closed_or_unstaffed_queue_returns_the_destination() -> None:
    rt, log = runtime({"1001": {"billing": 5}})
    chan = FakeChannel()
    assert await rt.serve_caller(chan, "c1", "billing", "normal", "1", None) == "blocked:no_agents:message:busy"
    assert chan.variables["CTI_DONE"] == "1"
    assert kinds(log) == ["acd.blocked"]


async def test_max_wait_overflow_returns_the_overflow_target() -> None:
    rt, log = runtime({"1001": {"billing": 5}}, queues={"billing": {
        "max_wait_s": 0.1, "overflow": {"kind": "voicemail", "target": "800"}}})
    await rt.start()
    try:
        rt.login("1001", ready=False)
        chan = FakeChannel()
        result = await asyncio.wait_for(rt.serve_caller(chan, "c1", "billing", "normal", "1", None), 5)
    finally:
        await rt.stop()
    assert result == "overflow:voicemail:800"
    assert chan.variables["CTI_ACD_RESULT"] == "overflow:voicemail:800"
    assert chan.commands[-2:] == ["EXEC StopMusicOnHold",  # no place left to resume, the result, done: one command
                                  "EXEC MSet CTI_QUEUED=,CTI_ACD_RESULT=overflow:voicemail:800,CTI_DONE=1"]
    assert kinds(log, "c1") == ["acd.enqueue", "acd.overflow"]


async def test_callback_key_keeps_the_place_and_the_outbound_side_gets_the_offer() -> None:
    offers: list[Offer] = []
    rt, log = runtime({"1001": {"billing": 5}}, hooks=AcdHooks(on_callback_offer=offers.append),
                      callback_key="1", key_source="poll", key_poll_ms=100)
    rt.login("1001", ready=False)
    chan = FakeChannel(digits=["5", "1"])
    assert await rt.serve_caller(chan, "c1", "billing", "normal", "13912345678", None) == "callback"
    assert [c for c in chan.commands if c.startswith("WAIT FOR DIGIT")] == ["WAIT FOR DIGIT 100"] * 2
    assert rt.engine.call_state("c1") == "waiting"
    rt.set_ready("1001")
    assert [(o.call_id, o.kind, o.number) for o in offers] == [("c1", "callback", "13912345678")]
    rt.callback_answered("c1")
    rt.callback_ended("c1", outcome="reached")
    done = next(e for e in log if e.kind == Kind.ACD_COMPLETE)
    assert done.data["outcome"] == "reached"


async def test_callback_key_from_asterisks_dtmf_events_without_polling() -> None:
    """key_source ami (the default): the key comes from AMI DTMFEnd (`key_pressed`); only the callback key,
    only on the held caller's own channel; the session sends no WAIT FOR DIGIT."""
    offers: list[Offer] = []
    rt, _log = runtime({"1001": {"billing": 5}}, hooks=AcdHooks(on_callback_offer=offers.append),
                       callback_key="1")
    rt.login("1001", ready=False)
    chan = FakeChannel(more_headers={"agi_channel": "Local/95598@hotline-00000001;2"})
    mine = chan.headers["agi_channel"]
    assert not rt.key_pressed("c1", mine, "1")  # not held yet: nobody to tell
    serving = asyncio.create_task(rt.serve_caller(chan, "c1", "billing", "normal", "13912345678", None))
    for _ in range(500):  # until the caller is held (a few loop turns)
        if "c1" in rt.sessions._keyed:
            break
        await asyncio.sleep(0.01)
    assert not rt.key_pressed("c1", mine, "5")  # not the callback key
    assert not rt.key_pressed("c1", "PJSIP/agent1001-00000001", "1")  # another channel of the call
    assert rt.key_pressed("c1", mine, "1")
    assert await asyncio.wait_for(serving, 5) == "callback"
    assert not [c for c in chan.commands if c.startswith("WAIT FOR DIGIT")]
    rt.set_ready("1001")
    assert [(o.call_id, o.kind) for o in offers] == [("c1", "callback")]


async def test_wrap_up_timer_frees_the_agent_for_the_next_caller() -> None:
    rt, log = runtime({"1001": {"billing": 5}})
    await rt.start()
    try:
        rt.login("1001", ready=True)
        ch1 = FakeChannel(agents={"1001": Agent(talk_s=0.1)})
        ch2 = FakeChannel(agents={"1001": Agent(talk_s=0.01)})
        r1 = asyncio.create_task(rt.serve_caller(ch1, "c1", "billing", "normal", "1", None))
        await asyncio.sleep(0.02)
        r2 = asyncio.create_task(rt.serve_caller(ch2, "c2", "billing", "vip", "2", None))
        assert await asyncio.wait_for(asyncio.gather(r1, r2), 5) == ["answered", "answered"]
    finally:
        await rt.stop()
    answers = [e for e in log if e.kind == Kind.ACD_ANSWER]
    assert [e.call_id for e in answers] == ["c1", "c2"]
    wrap_end = [e for e in log if e.kind == Kind.AGENT_STATE and e.data["previous"] == "wrap_up"]
    assert wrap_end and wrap_end[0].data["duration_s"] == pytest.approx(0.05, abs=0.04)


async def test_answer_fed_from_ami_and_caller_hangup_during_talk_is_still_answered() -> None:
    rt, log = runtime({"1001": {"billing": 5}})
    rt.login("1001", ready=True)
    chan = FakeChannel(agents={"1001": Agent(talk_s=0.05, caller_hangs_up_in_talk=True)})
    chan.on_dial_answer = lambda: rt.note_answered("c1")
    assert await rt.serve_caller(chan, "c1", "billing", "normal", "1", None) == "answered"
    assert kinds(log, "c1").count("acd.answer") == 1
    assert kinds(log, "c1")[-2:] == ["acd.complete", "agent.state"]
    assert rt.note_answered("c1") is False


async def test_priority_abandon_hands_a_callback_to_the_outbound_side() -> None:
    callbacks: list[ScheduleCallback] = []
    rt, _ = runtime({"1001": {"billing": 5}}, hooks=AcdHooks(on_callback=callbacks.append),
                    tiers=[{"name": "vip"}, {"name": "priority", "callback_on_abandon": {"min_wait_s": 0.05}},
                           {"name": "normal"}])
    rt.login("1001", ready=False)
    chan = FakeChannel(hangup_after_s=0.1)
    assert await rt.serve_caller(chan, "c1", "billing", "priority", "13800000001", None) == "abandoned"
    assert [(c.number, c.reason) for c in callbacks] == [("13800000001", "abandon")]


async def test_a_failing_hook_or_emit_does_not_lose_the_call() -> None:
    def boom(*_: Any) -> None:
        raise RuntimeError("desktop down")

    rt, _ = runtime({"1001": {"billing": 5}}, hooks=AcdHooks(on_offer=boom, on_answer=boom, on_end=boom))
    rt.emit = boom
    rt.login("1001", ready=True)
    chan = FakeChannel(agents={"1001": Agent()})
    assert await rt.serve_caller(chan, "c1", "billing", "normal", "1", None) == "answered"


async def test_bad_skill_is_an_error_and_the_same_call_cannot_be_served_twice() -> None:
    rt, _ = runtime({"1001": {"billing": 5}})
    rt.login("1001", ready=False)
    with pytest.raises(Exception, match="unknown skill"):
        await rt.serve_caller(FakeChannel(), "c1", "gardening", "normal", "1", None)
    task = asyncio.create_task(rt.serve_caller(FakeChannel(hangup_after_s=0.2), "c2", "billing", "normal", "2",
                                               None))
    await asyncio.sleep(0.02)
    with pytest.raises(Exception, match="already being served"):
        await rt.serve_caller(FakeChannel(), "c2", "billing", "normal", "2", None)
    assert await task == "abandoned"


async def test_hangup_during_an_announcement_is_an_abandon() -> None:
    async def say(chan: AgiChannel, text: str, lang: str = "zh") -> None:
        raise AgiHangup("the caller hung up")

    rt, log = runtime({"1001": {"billing": 5}}, say=say, announce={"first_after_s": 0, "every_s": 10})
    rt.login("1001", ready=False)
    assert await rt.serve_caller(FakeChannel(), "c1", "billing", "normal", "1", None) == "abandoned"
    assert kinds(log, "c1") == ["acd.enqueue", "acd.abandon"]


async def test_our_own_failure_hands_the_caller_to_the_fallback_queue() -> None:
    class Broken(FakeChannel):
        async def execute(self, command: str, timeout: float | None = None) -> AgiReply:
            if command.startswith("EXEC StartMusicOnHold"):
                raise AgiError("511 dead channel")
            return await super().execute(command, timeout)

    rt, log = runtime({"1001": {"billing": 5}})
    rt.login("1001", ready=False)
    chan = Broken()
    with pytest.raises(AgiError):
        await rt.serve_caller(chan, "c1", "billing", "normal", "1", None)
    [ov] = [e for e in log if e.kind == Kind.ACD_OVERFLOW]
    assert (ov.data["reason"], ov.data["target"]) == ("cti_error", "fallback")
    assert rt.engine.call_state("c1") is None and "CTI_DONE" not in chan.variables


async def test_an_offer_waiting_behind_a_long_prompt_does_not_rona_the_agent() -> None:
    async def slow_say(chan: AgiChannel, text: str, lang: str) -> None:
        await asyncio.sleep(0.3)

    rt, log = runtime({"1001": {"billing": 5}}, say=slow_say, announce={"first_after_s": 0, "every_s": 10},
                      ring_timeout_s=0.1, ring_guard_s=0)
    await rt.start()
    try:
        rt.login("1001", ready=False)
        chan = FakeChannel(agents={"1001": Agent()})
        task = asyncio.create_task(rt.serve_caller(chan, "c1", "billing", "normal", "1", None))
        await asyncio.sleep(0.05)  # the caller is now listening to the announcement
        rt.set_ready("1001")
        assert await asyncio.wait_for(task, 5) == "answered"
    finally:
        await rt.stop()
    assert kinds(log, "c1").count("acd.rona") == 0
    assert "EXEC Dial Local/1001@sim-agents,1,U(cti-record^1001)" in chan.commands


async def test_ivr_handoff_returns_the_agent_who_answered_and_classifies_empty_tiers() -> None:
    from ctiserver.ivr.runtime import Handoff, QueueRequest

    rt, log = runtime({"1001": {"billing": 5}}, tier_rules=[
        {"tier": "vip", "all": [{"field": "category", "value": "hospital"}]}])
    rt.login("1001", ready=True)
    handoff: Handoff = rt.handoff
    request = QueueRequest(call_id="c1", skill="billing", tier="", caller="1", customer={"category": "hospital"},
                           ivr_path=("main", "billing"))
    assert await handoff(FakeChannel(agents={"1001": Agent()}), request) == "1001"
    assert next(e for e in log if e.kind == Kind.ACD_ENQUEUE).tier == "vip"
    rt.set_not_ready("1001", "break")
    lost = QueueRequest(call_id="c2", skill="billing", tier="normal", caller="2", customer=None, ivr_path=())
    assert await handoff(FakeChannel(hangup_after_s=0.05), lost) == ""


async def test_a_call_id_already_in_the_engine_is_refused_without_touching_that_call() -> None:
    rt, _ = runtime({"1001": {"billing": 5}})
    rt.login("1001", ready=False)
    rt.apply(lambda now: rt.engine.enqueue("c1", "billing", "normal", "1", now))  # e.g. an outbound transfer
    with pytest.raises(Exception, match="already in the ACD"):
        await rt.serve_caller(FakeChannel(), "c1", "billing", "normal", "1", None)
    assert rt.engine.call_state("c1") == "waiting"


async def test_a_hook_that_feeds_the_engine_at_once_keeps_the_log_in_causal_order() -> None:
    rt_box: list[AcdRuntime] = []

    def outbound_reports_at_once(offer: Offer) -> None:
        rt_box[0].apply(lambda now: [Event("test.nested", ts=now, call_id=offer.call_id)])

    rt, log = runtime({"1001": {"billing": 9}}, hooks=AcdHooks(on_callback_offer=outbound_reports_at_once))
    rt_box.append(rt)
    offer = Offer("c1", "1001", "billing", 12.0, "normal", "139", "callback", "139")
    rt.apply(lambda now: [Event("test.first", ts=now), offer, Event("test.after_offer", ts=now)])
    assert [e.kind for e in log] == ["test.first", "test.after_offer", "test.nested"]


async def test_callback_offer_failing_at_once_goes_to_the_next_agent() -> None:
    rt_box: list[AcdRuntime] = []

    def outbound(offer: Offer) -> None:
        if offer.agent_id == "1001":
            rt_box[0].callback_failed(offer.call_id, "noanswer")
        else:
            rt_box[0].callback_answered(offer.call_id)

    rt, log = runtime({"1001": {"billing": 9}, "1002": {"billing": 5}}, hooks=AcdHooks(on_callback_offer=outbound))
    rt_box.append(rt)
    rt.login("1001", ready=False)
    rt.login("1002", ready=True)
    rt.set_not_ready("1002", "break")
    rt.apply(lambda now: rt.engine.enqueue("c1", "billing", "normal", "139", now))
    rt.apply(lambda now: rt.engine.request_callback("c1", now))
    rt.set_ready("1001")
    rt.set_ready("1002")
    seq = [(e.kind, e.agent_id, e.data.get("state")) for e in log if e.call_id == "c1" and e.kind != "acd.enqueue"]
    assert seq == [("acd.callback", None, None),
                   ("agent.state", "1001", "reserved"), ("acd.offer", "1001", None),
                   ("acd.rona", "1001", None), ("agent.state", "1001", "not_ready"),
                   ("agent.state", "1002", "reserved"), ("acd.offer", "1002", None),
                   ("agent.state", "1002", "on_call"), ("acd.answer", "1002", None)]


async def test_hold_periods_reported_by_ami_add_up_into_the_completed_call() -> None:
    from ctiserver.clock import FakeClock

    clock = FakeClock(100.0)
    log: list[Event] = []
    rt = AcdRuntime(AcdEngine(config({"1001": {"billing": 5}})), clock, log.append)
    rt.login("1001", ready=True)
    rt.apply(lambda now: rt.engine.enqueue("c1", "billing", "normal", "139", now))
    assert rt.note_hold("c1", True) is False  # not talking yet: nothing to hold
    rt.apply(lambda now: rt.engine.ring_answered("c1", now))
    clock.jump(10)
    assert rt.note_hold("c1", True)
    clock.jump(20)
    rt.note_hold("c1", True)  # a repeated Hold does not restart the period
    clock.jump(10)
    rt.note_hold("c1", False)  # 30 s on hold
    clock.jump(5)
    rt.note_hold("c1", True)
    clock.jump(7)  # still on hold when the call ends: 7 s more
    rt._end_talk("c1")
    [done] = [e for e in log if e.kind == Kind.ACD_COMPLETE]
    assert (done.data["hold_s"], done.data["talk_s"]) == (37.0, 52.0 - 37.0)


def test_the_hold_listener_reads_ami_hold_and_unhold_by_linkedid() -> None:
    from ctiserver.acd.hold import hold_listener

    seen: list[tuple[str, bool]] = []

    class Acd:
        def note_hold(self, call_id: str, on: bool, when: float | None = None) -> bool:
            seen.append((call_id, on, when))
            return True

    listen = hold_listener(Acd())
    listen("pbx1", {"Event": "Hold", "Channel": "PJSIP/agent1001-0000000a", "Uniqueid": "2.1", "Linkedid": "1.1",
                    "Timestamp": "1700000010.500000"})
    listen("pbx1", {"Event": "Unhold", "Uniqueid": "2.1", "Linkedid": "1.1"})
    listen("pbx1", {"Event": "MusicOnHoldStart", "Uniqueid": "1.1", "Linkedid": "1.1"})  # a waiting caller's music
    listen("pbx1", {"Event": "Hold"})  # no ids: ignored
    # the hold starts when Asterisk says (its Timestamp), not when the CTI reads the event
    assert seen == [("1.1", True, 1700000010.5), ("1.1", False, None)]


async def test_the_caller_hears_where_the_acd_sends_them() -> None:
    said: list[str] = []

    async def say(chan: AgiChannel, text: str, lang: str = "zh") -> None:
        said.append(text)

    # refused at the door with a message destination: the message is played before the call ends
    rt, _ = runtime({"1001": {"billing": 5}}, say=say, messages={"busy": "坐席全忙，请稍后再拨。"})
    chan = FakeChannel()
    assert await rt.serve_caller(chan, "c1", "billing", "normal", "1", None) == "blocked:no_agents:message:busy"
    assert said == ["坐席全忙，请稍后再拨。"] and chan.variables["CTI_DONE"] == "1"
    # an overflow to callback: the caller is told we will call back (and the callback is scheduled)
    said.clear()
    rt, _ = runtime({"1001": {"billing": 5}}, say=say, queues={"billing": {"block_when_no_agents": True,
                                                                          "overflow": {"kind": "callback"}}})
    assert await rt.serve_caller(FakeChannel(), "c2", "billing", "normal", "13900000001", None) == \
        "blocked:no_agents:callback"
    assert said == [rt.cfg.text(rt.cfg.announce.callback_confirm, "zh")]


async def test_a_voicemail_destination_records_the_callers_message_and_logs_it() -> None:
    said: list[str] = []

    async def say(chan: AgiChannel, text: str, lang: str = "zh") -> None:
        said.append(text)

    callbacks: list[ScheduleCallback] = []
    rt, log = runtime({"1001": {"billing": 5}}, say=say, queues={"billing": {
        "max_wait_s": 0.1, "overflow": {"kind": "voicemail", "target": "billing"}}},
        hooks=AcdHooks(on_callback=callbacks.append))
    rt.recordings_dir = "/var/spool/asterisk/monitor/"
    await rt.start()
    try:
        rt.login("1001", ready=False)
        chan = FakeChannel(record_s=1.2)
        result = await asyncio.wait_for(rt.serve_caller(chan, "1700000000.7", "billing", "normal", "13900000001",
                                                        None), 5)
    finally:
        await rt.stop()
    assert result == "overflow:voicemail:billing"
    [record] = [c for c in chan.commands if c.startswith("RECORD FILE")]
    assert record == ('RECORD FILE /var/spool/asterisk/monitor/vm-billing-1700000000.7 wav "#" 120000 0 BEEP '
                      's=6')
    assert said == [rt.cfg.text(rt.cfg.voicemail.prompt, "zh"), rt.cfg.text(rt.cfg.voicemail.thanks, "zh")]
    [vm] = [e for e in log if e.kind == Kind.ACD_VOICEMAIL]
    assert (vm.call_id, vm.queue, vm.data["box"], vm.data["path"]) == (
        "1700000000.7", "billing", "billing", "/var/spool/asterisk/monitor/vm-billing-1700000000.7.wav")
    # an agent of the queue answers the message: a callback that plays it to them first
    [cb] = callbacks
    assert (cb.number, cb.skill, cb.reason, cb.recording) == (
        "13900000001", "billing", "voicemail", "/var/spool/asterisk/monitor/vm-billing-1700000000.7")


def test_the_answer_listener_passes_asterisks_time_of_the_answer() -> None:
    """AMI DialEnd(ANSWER) notes the answer at the event's Timestamp: ASA and service level are what
    Asterisk saw, not when the CTI got round to the event."""
    from ctiserver.app.acd_routes import on_dial_end

    seen: list[tuple[str, float | None]] = []

    class Acd:
        def note_answered(self, call_id: str, when: float | None = None) -> bool:
            seen.append((call_id, when))
            return True

    listen = on_dial_end(Acd())  # type: ignore[arg-type]
    listen("pbx1", {"Event": "DialEnd", "DialStatus": "ANSWER", "Linkedid": "1.1", "Timestamp": "1700000040.75"})
    listen("pbx1", {"Event": "DialEnd", "DialStatus": "ANSWER", "Uniqueid": "2.1"})
    listen("pbx1", {"Event": "DialEnd", "DialStatus": "BUSY", "Linkedid": "3.1", "Timestamp": "1700000041.0"})
    assert seen == [("1.1", 1700000040.75), ("2.1", None)]


async def test_the_enqueue_event_carries_the_callerid_name_asterisk_gave() -> None:
    rt, log = runtime({"1001": {"billing": 5}, "1002": {"billing": 5}})
    rt.login("1001", ready=True)
    rt.login("1002", ready=True)
    phones = {"1001": Agent(), "1002": Agent()}
    named = FakeChannel(agents=phones, more_headers={"agi_calleridname": "李秀英"})
    assert await rt.serve_caller(named, "c1", "billing", "normal", "13800000002", None) == "answered"
    nameless = FakeChannel(agents=phones, more_headers={"agi_calleridname": "unknown"})
    assert await rt.serve_caller(nameless, "c2", "billing", "normal", "13800000003", None) == "answered"
    enq = {e.call_id: e.data for e in log if e.kind == Kind.ACD_ENQUEUE}
    assert enq["c1"]["caller_name"] == "李秀英"
    assert "caller_name" not in enq["c2"]


class Announcing(FakeChannel):
    """A caller's channel whose prompts play until their length or until stopped (AMI ControlPlayback)."""

    prompt_s: float = 30.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.stop = asyncio.Event()
        self.playing = asyncio.Event()
        self.streams: list[str] = []

    @property
    def headers(self) -> dict[str, str]:
        return {"agi_uniqueid": "1.1", "agi_channel": "PJSIP/trunk-00000001"}

    async def execute(self, command: str, timeout: float | None = None) -> AgiReply:
        if command.startswith("STREAM FILE"):
            self.streams.append(command)
            self.playing.set()
            try:
                await asyncio.wait_for(self.stop.wait(), self.prompt_s)
            except TimeoutError:
                pass
            self.playing.clear()
            self.stop.clear()
            return AgiReply(200, "0", "endpos=8000")
        return await super().execute(command, timeout)


async def test_an_offer_stops_the_announcement_and_the_agent_is_rung_at_once() -> None:
    """Item 23: the agent was held reserved while the caller heard the rest of a long prompt (≈10 s), and
    that time was logged as ring time. Now the offer stops the prompt (AMI ControlPlayback on the caller's
    channel) and the ring starts; ring time is the ring only."""
    async def say(chan: AgiChannel, text: str, lang: str) -> None:
        await chan.execute('STREAM FILE cti/announce ""')

    rt, log = runtime({"1001": {"billing": 5}}, say=say, announce={"first_after_s": 0, "every_s": 100})
    chan = Announcing(agents={"1001": Agent(ring_s=0.05)})
    stopped: list[str] = []

    async def interrupt(channel: str) -> None:
        stopped.append(channel)
        chan.stop.set()

    rt.interrupt = interrupt
    rt.login("1001", ready=False)
    task = asyncio.create_task(rt.serve_caller(chan, "c1", "billing", "normal", "1", None))
    await asyncio.wait_for(chan.playing.wait(), 5)  # the caller hears the announcement
    rt.set_ready("1001")  # an agent comes free: offered now
    assert await asyncio.wait_for(task, 5) == "answered"  # long before the 30 s prompt would end
    assert stopped == ["PJSIP/trunk-00000001"]
    [answer] = [e for e in log if e.kind == Kind.ACD_ANSWER]
    assert answer.data["ring_s"] < 1.0 and answer.data["setup_s"] < 1.0


async def test_an_offer_during_the_prompts_making_means_it_is_never_played() -> None:
    made = asyncio.Event()
    go_on = asyncio.Event()

    async def say(chan: AgiChannel, text: str, lang: str) -> None:
        made.set()
        await go_on.wait()  # text to speech at work
        await chan.execute('STREAM FILE cti/announce ""')

    rt, _ = runtime({"1001": {"billing": 5}}, say=say, announce={"first_after_s": 0, "every_s": 100})
    chan = Announcing(agents={"1001": Agent(ring_s=0.05)})
    stopped: list[str] = []

    async def interrupt(channel: str) -> None:
        stopped.append(channel)

    rt.interrupt = interrupt
    rt.login("1001", ready=False)
    task = asyncio.create_task(rt.serve_caller(chan, "c1", "billing", "normal", "1", None))
    await asyncio.wait_for(made.wait(), 5)
    rt.set_ready("1001")
    go_on.set()
    assert await asyncio.wait_for(task, 5) == "answered"
    assert chan.streams == [] and stopped == []  # nothing was playing, nothing played


def test_ring_time_runs_from_asterisks_dialbegin_to_the_answer() -> None:
    """DialBegin's Timestamp starts the ring (the runtime's own ring start, before Dial, is only a fallback)."""
    from ctiserver.clock import FakeClock

    eng = AcdEngine(config({"1001": {"billing": 5}}))
    clock = FakeClock(1000.0)
    log: list[Event] = []
    rt = AcdRuntime(eng, clock, log.append)
    rt.login("1001", ready=True)
    rt.apply(lambda now: eng.enqueue("c1", "billing", "normal", "1", now))  # offered at 1000.0
    clock.jump(9.0)
    rt.apply(lambda now: eng.ring_started("c1", now))  # the prompt ended: Dial sent at 1009.0
    assert not rt.note_ringing("c1", "1002", 1009.3)  # not the agent offered
    assert not rt.note_ringing("c2", "1001", 1009.3)
    assert rt.note_ringing("c1", "1001", 1009.3)  # Asterisk began dialling 1001
    assert rt.note_answered("c1", 1010.4)
    [answer] = [e for e in log if e.kind == Kind.ACD_ANSWER]
    assert answer.data["ring_s"] == pytest.approx(1.1) and answer.data["setup_s"] == pytest.approx(9.3)
    assert answer.data["wait_s"] == pytest.approx(10.4)


EN = {"zh": {}, "en": {"desk": "english"}}


async def test_an_english_caller_is_queued_to_the_english_desk_and_hears_english() -> None:
    """Pressing 2 in the IVR makes `lang: en`: asking for billing, the caller goes to the english desk
    (not the billing agent who is free), and every announcement is the English text."""
    from ctiserver.ivr.runtime import QueueRequest

    said: list[tuple[str, str]] = []

    async def say(chan: AgiChannel, text: str, lang: str) -> None:
        said.append((lang, text))

    rt, log = runtime({"1001": {"billing": 9}, "1008": {"english": 9, "billing": 6}}, say=say, languages=EN,
                      announce={"first_after_s": 0, "every_s": 100})
    rt.login("1001", ready=True)
    rt.login("1008", ready=False)
    chan = FakeChannel(agents={"1001": Agent(), "1008": Agent()})
    req = QueueRequest(call_id="c1", skill="billing", tier="", caller="13800000002", customer=None,
                       ivr_path=("language", "main", "to_agent"), lang="en")
    task = asyncio.create_task(rt.handoff(chan, req))
    for _ in range(100):
        if said:
            break
        await asyncio.sleep(0.02)
    rt.set_ready("1008")
    assert await asyncio.wait_for(task, 5) == "1008"
    [enq] = [e for e in log if e.kind == Kind.ACD_ENQUEUE]
    assert (enq.queue, enq.data["lang"]) == ("english", "en")
    assert said == [("en", "You are number 1 in the queue. Please hold.")]
    assert chan.variables["CTI_LANG"] == "en"  # a transfer later on this leg keeps speaking English
    dials = [c for c in chan.commands if c.startswith("EXEC Dial")]
    assert dials == ["EXEC Dial Local/1008@sim-agents,12,U(cti-record^1008)"]


async def test_where_the_acd_sends_an_english_caller_is_said_in_english() -> None:
    said: list[tuple[str, str]] = []

    async def say(chan: AgiChannel, text: str, lang: str) -> None:
        said.append((lang, text))

    # nobody staffs the english desk: the queue's overflow (a message) in English
    rt, _ = runtime({"1001": {"billing": 5}}, say=say, languages=EN)
    rt.login("1001", ready=True)
    assert await rt.serve(FakeChannel(), "c1", "billing", "normal", "1", None, lang="en",
                          route_by_language=True) == Served("blocked:no_agents:message:busy")
    assert said == [("en", "All our agents are busy. Please call again later. Goodbye.")]
    # its voicemail: English prompt and thanks
    said.clear()
    rt, _ = runtime({"1001": {"billing": 5}}, say=say, languages=EN,
                    queues={"english": {"overflow": {"kind": "voicemail", "target": "english"}}})
    rt.recordings_dir = "/var/spool/asterisk/monitor"
    assert (await rt.serve(FakeChannel(), "c2", "billing", "normal", "1", None, lang="en",
                           route_by_language=True)).outcome == "blocked:no_agents:voicemail:english"
    vm = rt.cfg.voicemail
    assert said == [("en", rt.cfg.text(vm.prompt, "en")), ("en", rt.cfg.text(vm.thanks, "en"))]
    assert said[0][1].startswith("All our agents are busy. After the tone")
    # a transfer to a queue keeps its target (no desk routing) but still speaks the caller's language
    said.clear()
    rt, log = runtime({"1001": {"billing": 5}}, say=say, languages=EN,
                      queues={"billing": {"block_when_no_agents": True, "overflow": {"kind": "callback"}}})
    assert (await rt.serve(FakeChannel(), "c3", "billing", None, "13900000001", None, lang="en")).outcome == \
        "blocked:no_agents:callback"
    assert [e.queue for e in log if e.kind == Kind.ACD_BLOCKED] == ["billing"]
    assert said == [("en", "Your callback is booked. We will call you back when it is your turn. Goodbye.")]
    # no language, or one the ACD does not have: the default (Mandarin)
    said.clear()
    rt, _ = runtime({"1001": {"billing": 5}}, say=say, languages=EN)
    await rt.serve(FakeChannel(), "c4", "billing", "normal", "1", None, lang="fr", route_by_language=True)
    assert said == [("zh", "当前来电较多，坐席全忙，请您稍后再拨，再见。")]
