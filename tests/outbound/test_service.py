"""The outbound service's own loop on a real event loop: AMI frames in, attempts and outcomes out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.ami.client import AmiResponse
from ctiserver.ami.message import AmiMessage
from ctiserver.clock import FakeClock
from ctiserver.events import Event, Kind
from ctiserver.outbound.model import CampaignSpec, ContactIn, OutboundConfig
from ctiserver.outbound.service import OutboundService

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"
NOON = datetime(2026, 11, 23, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
CFG = OutboundConfig.model_validate({
    "poll_s": 0.05,
    "pacing": {"max_concurrent": 10, "calls_per_s": 5, "burst": 5},
    "dial": {"channel": "Local/{number}@outbound-dest"},
    "templates": {"survey": {"zh": "请为{topic}打分", "en": "rate {topic}"}},
    "callbacks": {"mode": "survey"},
})


class Asterisk:
    """Just enough AMI: Originate is queued, Status lists what we say is up."""

    def __init__(self) -> None:
        self.originated: list[dict[str, Any]] = []
        self.up: set[str] = set()

    async def action(self, name: str, fields: Mapping[str, Any] | None = None, /) -> AmiResponse:
        fields = dict(fields or {})
        if name == "Originate":
            self.originated.append(fields)
            self.up.add(fields["ChannelId"])
            return AmiResponse(AmiMessage.of(Response="Success", ActionID=f"a{len(self.originated)}"))
        events = tuple(AmiMessage.of(Event="Status", Uniqueid=u) for u in self.up)
        return AmiResponse(AmiMessage.of(Response="Success"), events)


async def until(cond: Callable[[], bool], limit_s: float = 5.0) -> None:
    for _ in range(int(limit_s / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the service did not get there in time")


async def test_service_dials_and_records_from_ami_frames(engine: AsyncEngine) -> None:
    pbx = Asterisk()
    events: list[Event] = []
    svc = OutboundService(CFG, engine, pbx, "pbx1", FakeClock(NOON), events.append)
    await svc.store.create_campaign(CampaignSpec.model_validate(
        {"name": "sat", "kind": "survey", "windows": ["00:00-24:00"], "survey": {"topic": "服务"},
         "pacing": {"burst": 2}}), NOON)
    await svc.store.add_contacts("sat", [ContactIn("13800000001", variables={"agent_id": "1001"}),
                                         ContactIn("13800000002")], NOON)
    await svc.start()
    try:
        await svc.store.change_state("sat", "start", NOON)
        svc.dialer.wake()
        await until(lambda: len(pbx.originated) == 2)
        assert {f["Channel"] for f in pbx.originated} == {"Local/13800000001@outbound-dest",
                                                          "Local/13800000002@outbound-dest"}
        first, second = (f["ChannelId"] for f in pbx.originated)
        svc.on_ami_event("pbx2", AmiMessage.of(Event="Hangup", Uniqueid=first, ChannelState="6"))  # other PBX
        svc.on_ami_event("pbx1", AmiMessage.of(Event="UserEvent", UserEvent="OutboundResult",
                                               ChannelId=first, Digit="5", AMDSTATUS="HUMAN"))
        svc.on_ami_event("pbx1", AmiMessage.of(Event="Hangup", Uniqueid=first, ChannelState="6", Cause="16"))
        pbx.up.discard(first)
        await until(lambda: any(e.kind == Kind.SURVEY_RATING for e in events))
        # The link drops and comes back while the second call ended unseen: reconcile finds it gone.
        pbx.up.discard(second)
        svc.on_event(Event(kind=Kind.AMI_CONNECTED, ts=NOON, server="pbx1"))
        await until(lambda: sum(e.kind == Kind.OUT_RESULT for e in events) == 2)
        [status] = await svc.status_all()
        assert (status["done"], status["pending"], status["live"]) == (1, 1, 0)
        results = [e.data["outcome"] for e in events if e.kind == Kind.OUT_RESULT]
        assert results == ["rated", "lost"]
        [rating] = [e for e in events if e.kind == Kind.SURVEY_RATING]
        assert (rating.agent_id, rating.data["rating"]) == ("1001", 5)
    finally:
        await svc.stop()
    assert svc.dialer._task is None


class Emitted:
    """The service's emit: records events and lets a test wait for one (no polling)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    async def until(self, cond: Callable[[list[Event]], bool], limit_s: float = 10.0) -> None:
        async with asyncio.timeout(limit_s):
            while not cond(self.events):
                self._changed.clear()
                await self._changed.wait()

    def results(self) -> list[tuple[str | None, str]]:
        return [(e.call_id, e.data["outcome"]) for e in self.events if e.kind == Kind.OUT_RESULT]


async def test_one_attempt_gets_one_result_whatever_order_asterisk_reports_in(engine: AsyncEngine) -> None:
    """Issue 12 item 24: a call that failed before answer was recorded 'failed', then 'congestion'."""
    pbx, emitted, clock = Asterisk(), Emitted(), FakeClock(NOON)
    svc = OutboundService(CFG, engine, pbx, "pbx1", clock, emitted)
    await svc.store.create_campaign(CampaignSpec.model_validate(
        {"name": "sat", "kind": "survey", "windows": ["00:00-24:00"], "survey": {"topic": "服务"},
         "pacing": {"burst": 3}, "retry": {"max_attempts": 1}}), NOON)
    await svc.store.add_contacts("sat", [ContactIn(f"1380000000{i}") for i in (1, 2, 3)], NOON)
    await svc.start()
    try:
        await svc.store.change_state("sat", "start", NOON)
        svc.dialer.wake()
        await emitted.until(lambda ev: sum(e.kind == Kind.OUT_ATTEMPT for e in ev) == 3)
        first, second, third = (f["ChannelId"] for f in pbx.originated)
        # congestion on a Local channel: its Hangup (cause 0, not ringing) comes before the response
        svc.on_ami_event("pbx1", AmiMessage.of(Event="Hangup", Uniqueid=first, ChannelState="0", Cause="0"))
        svc.on_ami_event("pbx1", AmiMessage.of(Event="OriginateResponse", Response="Failure", Uniqueid=first,
                                               Reason="8"))
        # rang out: the response (Reason 0) comes before the Hangup of the ringing channel
        svc.on_ami_event("pbx1", AmiMessage.of(Event="OriginateResponse", Response="Failure", Uniqueid=second,
                                               Reason="0"))
        svc.on_ami_event("pbx1", AmiMessage.of(Event="Hangup", Uniqueid=second, ChannelState="5", Cause="0"))
        # a Hangup whose response never comes (the link dropped in between) is released after settle_s
        svc.on_ami_event("pbx1", AmiMessage.of(Event="Hangup", Uniqueid=third, ChannelState="5", Cause="0"))
        clock.jump(svc.reader.settle_s)
        await emitted.until(lambda ev: len(emitted.results()) >= 3)
        svc.on_ami_event("pbx1", AmiMessage.of(Event="OriginateResponse", Response="Failure", Uniqueid=third,
                                               Reason="0"))  # too late: not a second result
        for cid in (first, second, third):
            pbx.up.discard(cid)
        await svc.dialer.process_results()
        assert sorted(emitted.results()) == sorted([(first, "congestion"), (second, "no_answer"),
                                                    (third, "no_answer")])
        attempts = {a["channel_id"]: a["outcome"] for a in await svc.store.attempts_of("sat")}
        assert attempts == {first: "congestion", second: "no_answer", third: "no_answer"}
    finally:
        await svc.stop()


async def test_the_shipped_config_calls_back_a_sample_of_fault_repairs_and_every_complaint(
        engine: AsyncEngine) -> None:
    """Issue 12 item 15: the sample was keyed `fault` while work orders say `fault_repair`, so every
    fault order was called back; complaints were called back only when the agent ticked the box."""
    from ctiserver.outbound.model import load_outbound_config

    shipped = load_outbound_config(REPO_CONFIG)
    cfg = shipped.model_copy(update={"callbacks": shipped.callbacks.model_copy(update={"mode": "survey"})})
    svc = OutboundService(cfg, engine, Asterisk(), "pbx1", FakeClock(NOON), [].append)
    await svc.store.create_campaign(CampaignSpec.model_validate(
        {"name": cfg.callbacks.campaign, "kind": "survey", "survey": {"topic": "服务"}}), NOON)
    picked = [await svc.add_callback(workorder_id=i, number=f"1380000{i:04d}", category="fault_repair")
              for i in range(1, 401)]
    assert 8 <= sum(picked) <= 35  # about 5% of 400 ticked fault repairs, not all of them
    assert await svc.add_callback(workorder_id=500, number="13900000500", category="complaint",
                                  requested=False) is True  # not ticked: called back all the same
    assert await svc.add_callback(workorder_id=501, number="13900000501", category="complaint",
                                  requested=False, anonymous=True) is False  # anonymous: only if ticked
    assert await svc.add_callback(workorder_id=502, number="13900000502", category="report",
                                  requested=False) is False  # other categories: only when ticked
    assert await svc.add_callback(workorder_id=503, number="13900000503", category="report") is True


async def test_closed_work_orders_feed_the_callback_campaign(engine: AsyncEngine) -> None:
    from ctiserver.outbound.model import sampled

    events: list[Event] = []
    svc = OutboundService(CFG, engine, Asterisk(), "pbx1", FakeClock(NOON), events.append)
    await svc.store.create_campaign(CampaignSpec.model_validate(
        {"name": "survey-workorders", "kind": "survey", "survey": {"topic": "服务"}}), NOON)
    await svc.store.add_to_list(["13800000009"], "dnc", "asked", NOON)
    assert await svc.add_callback(workorder_id=1, number="138-0000-0001", category="complaint") is True
    assert await svc.add_callback(workorder_id=2, number="138-0000-0001", category="report") is False  # dup
    assert await svc.add_callback(workorder_id=3, number="13800000009", category="complaint") is False  # dnc
    assert await svc.add_callback(workorder_id=4, number="95598", category="complaint") is False  # bad number
    faults = [i for i in range(1000, 3000) if sampled(i, 0.05)]
    assert 60 <= len(faults) <= 140  # about 5% of fault repairs
    skipped = next(i for i in range(1000, 3000) if not sampled(i, 0.05))
    assert await svc.add_callback(workorder_id=skipped, number="13800000005", category="fault_repair") is False
    assert await svc.add_callback(workorder_id=faults[0], number="13800000006", category="fault_repair") is True
    svc.request_callback(workorder_id=7, number="13800000007", category="complaint", account="A7")
    await until(lambda: not svc._tasks)
    assert await svc.store.numbers_in("survey-workorders") == {"13800000001", "13800000006", "13800000007"}


async def test_a_satisfaction_survey_score_carries_the_orders_call_agent_and_queue(engine: AsyncEngine) -> None:
    """Issue 12 item 15: scores are reported per agent and per queue, and 回访率 needs due/done per order."""
    from ctiserver.store.schema import events as events_table
    from ctiserver.store.schema import metadata

    async with engine.begin() as conn:  # the event log, where the order's call was queued to billing
        await conn.run_sync(lambda sync: metadata.create_all(sync, tables=[events_table]))
        await conn.execute(events_table.insert(), [
            Event(Kind.ACD_ENQUEUE, NOON - 600, "1700000000.42", queue="billing").as_row(),
            Event(Kind.ACD_ANSWER, NOON - 590, "1700000000.42", agent_id="1001", queue="billing").as_row()])
    pbx, emitted = Asterisk(), Emitted()
    svc = OutboundService(CFG, engine, pbx, "pbx1", FakeClock(NOON), emitted)
    await svc.store.create_campaign(CampaignSpec.model_validate(
        {"name": "survey-workorders", "kind": "survey", "survey": {"topic": "服务"}, "windows": ["00:00-24:00"]}),
        NOON)
    await svc.start()
    try:
        assert await svc.add_callback(workorder_id=77, number="13800000077", category="complaint",
                                      requested=False, call_id="1700000000.42", agent_id="1001") is True
        [due] = [e for e in emitted.events if e.kind == Kind.WORKORDER_CALLBACK]
        assert (due.call_id, due.agent_id, due.queue, due.data["id"], due.data["action"]) == (
            "1700000000.42", "1001", "billing", "77", "due")
        await svc.store.change_state("survey-workorders", "start", NOON)
        svc.dialer.wake()
        await emitted.until(lambda ev: any(e.kind == Kind.OUT_ATTEMPT for e in ev))
        [call] = pbx.originated
        svc.on_ami_event("pbx1", AmiMessage.of(Event="UserEvent", UserEvent="OutboundResult",
                                               ChannelId=call["ChannelId"], Digit="4", AMDSTATUS="HUMAN"))
        await emitted.until(lambda ev: sum(e.kind == Kind.WORKORDER_CALLBACK for e in ev) == 2)
        [score] = [e for e in emitted.events if e.kind == Kind.SURVEY_RATING]
        assert (score.call_id, score.agent_id, score.queue, score.data["rating"]) == (
            "1700000000.42", "1001", "billing", 4)  # the order's call, not the survey call
        done = [e for e in emitted.events if e.kind == Kind.WORKORDER_CALLBACK][-1]
        assert (done.data["id"], done.data["action"], done.agent_id, done.queue) == ("77", "done", "1001", "billing")
    finally:
        await svc.stop()
