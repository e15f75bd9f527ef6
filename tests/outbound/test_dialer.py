"""The dialer with a scripted fake Originator on SQLite and PostgreSQL: outcomes, retries, crash, resume."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ctiserver.clock import FakeClock
from ctiserver.events import Event, Kind
from ctiserver.outbound.dialer import Dialer, OriginateNotSent, OriginateRejected, safe_value
from ctiserver.outbound.model import (
    CampaignSpec,
    ContactIn,
    Dial,
    OutboundConfig,
    Outcome,
    QuietHoursConfig,
    State,
)
from ctiserver.outbound.scheduler import Scheduler
from ctiserver.outbound.store import AttemptConflict, CampaignStateError, OutboundStore

TZ = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 23, 10, 0, tzinfo=TZ).timestamp()  # Monday 10:00

CFG = OutboundConfig.model_validate({
    "pacing": {"max_concurrent": 4, "calls_per_s": 10, "burst": 4},
    "templates": {
        "outage_notice": {"zh": "{name}您好，{area}因{reason}于{start}至{end}停电。",
                          "en": "Hello {name}: power in {area} is off from {start} to {end} ({reason})."},
        "arrears_reminder": {
            "zh": "{billing_month}欠费{arrears}元，违约金{late_fee}元，合计{total}元。", "en": "{total}"},
        "survey": {"zh": "请为{topic}打分，1到5分。", "en": "rate {topic}"},
    },
})


def spec(name: str = "notice", kind: str = "outage_notice", **kw: Any) -> CampaignSpec:
    data: dict[str, Any] = {"name": name, "kind": kind, "windows": ["08:00-21:00"],
                            "pacing": {"max_concurrent": 3, "calls_per_s": 10, "burst": 3},
                            "retry": {"max_attempts": 3, "busy": {"delay_s": 60},
                                      "no_answer": {"delay_s": 120}, "machine": {"delay_s": 300},
                                      "failed": {"delay_s": 60}, "lost": {"delay_s": 30}}}
    if kind == "outage_notice":
        data["outage"] = {"areas": ["城东"], "start": "8时", "end": "12时", "reason": "线路检修"}
    data.update(kw)
    return CampaignSpec.model_validate(data)


class FakeOriginator:
    """Records Originates; `script[number]` lists what each successive call to that number does."""

    def __init__(self, script: dict[str, list[tuple[str, str]]] | None = None) -> None:
        self.script = script or {}
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.live: set[str] = set()
        self.reject: set[str] = set()
        self.not_sent: set[str] = set()
        self.hang: set[str] = set()  # numbers whose Originate never returns
        self.down = False

    async def originate(self, channel_id: str, number: str, context: str, exten: str,
                        variables: dict[str, str], timeout_s: float) -> None:
        if number in self.reject:
            raise OriginateRejected("Extension does not exist")
        if number in self.not_sent:
            raise OriginateNotSent("Asterisk is shutting down")
        self.calls.append((channel_id, number, variables))
        self.live.add(channel_id)
        if number in self.hang:
            raise TimeoutError("no reply to Originate")

    async def is_live(self, channel_id: str) -> bool:
        if self.down:
            raise ConnectionError("AMI is down")
        return channel_id in self.live

    def outcome_for(self, channel_id: str, number: str) -> tuple[str, str]:
        n = sum(1 for cid, num, _ in self.calls if num == number and cid <= channel_id)
        plan = self.script.get(number, [(Outcome.ANSWERED, "1")])
        return plan[min(n, len(plan)) - 1]


def make(store: OutboundStore, clock: FakeClock, orig: FakeOriginator,
         events: list[Event]) -> Dialer:
    return Dialer(store, Scheduler(CFG), orig, clock, events.append, config=CFG)


def answer_all(dialer: Dialer, orig: FakeOriginator) -> None:
    """Every live call ends per the script (as the AMI reader would report it)."""
    for cid, number, _ in list(orig.calls):
        if cid in orig.live:
            orig.live.discard(cid)
            outcome, dtmf = orig.outcome_for(cid, number)
            dialer.on_result(cid, outcome, dtmf)


async def run_until_done(dialer: Dialer, orig: FakeOriginator, clock: FakeClock, limit: int = 200) -> None:
    for _ in range(limit):
        plan = await dialer.tick()
        answer_all(dialer, orig)
        await dialer.process_results()
        if not plan.dials and plan.next_deadline is None and not orig.live:
            snap = await dialer.store.snapshot(clock.now())
            if not snap.contacts and snap.later is None:
                return
        clock.set(max(clock.now() + 1, plan.next_deadline or 0))
    raise AssertionError("campaign did not finish")


PEOPLE = [
    ContactIn("13800000001", name="张三", area="城东", priority=10),  # important: confirms
    ContactIn("13800000002", name="李四", area="城东"),  # presses 0
    ContactIn("13800000003", name="王五", area="城东"),  # always busy
    ContactIn("13800000004", name="赵六", area="城东"),  # no answer, then confirms
    ContactIn("13800000005", name="钱七", area="城东", priority=10),  # machine every time
    ContactIn("02112345678", name="孙八", area="城东"),  # answers, presses nothing
]
SCRIPT = {
    "13800000001": [(Outcome.ANSWERED, "1")],
    "13800000002": [(Outcome.ANSWERED, "0")],
    "13800000003": [(Outcome.BUSY, "")],
    "13800000004": [(Outcome.NO_ANSWER, ""), (Outcome.ANSWERED, "21")],
    "13800000005": [(Outcome.MACHINE, "")],
    "02112345678": [(Outcome.ANSWERED, "")],
}


async def test_campaign_runs_to_results_matching_the_script(store: OutboundStore) -> None:
    clock = FakeClock(START)
    await store.create_campaign(spec(), clock.now())
    await store.add_contacts("notice", PEOPLE, clock.now())
    await store.change_state("notice", "start", clock.now())
    orig, events = FakeOriginator(SCRIPT), []
    dialer = make(store, clock, orig, events)
    await run_until_done(dialer, orig, clock)

    r = await store.results("notice")
    assert (r["reached"], r["confirmed"], r["to_agent"], r["not_reached"]) == (4, 2, 1, 2)
    assert (r["busy"], r["machine"], r["no_answer"]) == (3, 3, 1)
    assert r["attempts_per_contact"] == {"1": 3, "2": 1, "3": 2}
    assert [m["name"] for m in r["important_not_reached"]] == ["钱七"]
    missed = await store.not_reached("notice")
    assert [(m["number"], m["attempts"], m["last_outcome"]) for m in missed] == [
        ("13800000005", 3, "machine"), ("13800000003", 3, "busy")]
    assert await store.finish_campaigns(clock.now()) == ["notice"]
    assert (await store.status("notice"))["state"] == State.FINISHED

    assert len(orig.calls) == sum(1 for e in events if e.kind == Kind.OUT_ATTEMPT) == r["attempts"] == 11
    assert len({cid for cid, _, _ in orig.calls}) == 11
    results = [e for e in events if e.kind == Kind.OUT_RESULT]
    assert Counter(e.data["outcome"] for e in results)[Outcome.CONFIRMED] == 2
    first = orig.calls[0]
    assert first[1] == "13800000001"  # important first
    assert first[2]["MSG"].startswith("cti/") and first[2]["OUT_SKILL"] == "outbound"


async def test_retry_waits_for_its_delay(store: OutboundStore) -> None:
    clock = FakeClock(START)
    await store.create_campaign(spec(), clock.now())
    await store.add_contacts("notice", [PEOPLE[2]], clock.now())
    await store.change_state("notice", "start", clock.now())
    orig, events = FakeOriginator(SCRIPT), []
    dialer = make(store, clock, orig, events)
    await dialer.tick()
    answer_all(dialer, orig)
    await dialer.process_results()
    plan = await dialer.tick()
    assert plan.dials == [] and plan.next_deadline == pytest.approx(START + 60)
    clock.set(START + 59)
    assert (await dialer.tick()).dials == []
    clock.set(START + 60)
    assert [d.attempt_no for d in (await dialer.tick()).dials] == [2]


async def test_a_number_listed_mid_campaign_is_not_dialled_again(store: OutboundStore) -> None:
    """Issue 12 item 16: DNC was checked only at import; a number listed after it was still dialled,
    retries included."""
    clock = FakeClock(START)
    await store.create_campaign(spec(), clock.now())
    await store.add_contacts("notice", [PEOPLE[2], PEOPLE[3]], clock.now())  # busy; no answer then confirms
    await store.change_state("notice", "start", clock.now())
    orig, events = FakeOriginator(SCRIPT), []
    dialer = make(store, clock, orig, events)
    await dialer.tick()
    answer_all(dialer, orig)
    await dialer.process_results()
    assert sorted(n for _, n, _ in orig.calls) == ["13800000003", "13800000004"]
    assert await store.add_to_list(["13800000003"], "dnc", "asked mid-campaign", clock.now()) == 1
    assert await store.add_to_list(["13800000004"], "blacklist", "", clock.now()) == 1
    await run_until_done(dialer, orig, clock)
    assert len(orig.calls) == 2  # neither retry went out
    status = await store.status("notice")
    assert (status["excluded"], status["pending"], status["finished_contacts"]) == (2, 0, 2)
    r = await store.results("notice")
    assert (r["excluded"], r["attempts"]) == (2, 2)
    people = {p["number"]: p for p in await store.not_reached("notice")}
    assert people == {}  # not "not reached": taken out on purpose


async def test_a_number_listed_between_plan_and_dial_is_refused_by_the_store(store: OutboundStore) -> None:
    clock = FakeClock(START)
    await store.create_campaign(spec(), clock.now())
    await store.add_contacts("notice", [PEOPLE[2]], clock.now())
    await store.change_state("notice", "start", clock.now())
    snap = await store.snapshot(clock.now())
    plan = Scheduler(CFG).plan(clock.now(), snap)
    [dial] = plan.dials
    await store.add_to_list([dial.number], "dnc", "", clock.now())  # listed after the plan was made
    with pytest.raises(AttemptConflict, match="do-not-call"):
        await store.begin_attempt(dial, clock.now())
    orig, events = FakeOriginator(SCRIPT), []
    await make(store, clock, orig, events).tick()
    assert orig.calls == [] and (await store.status("notice"))["excluded"] == 1


async def test_crash_mid_campaign_resumes_without_extra_attempts(store: OutboundStore) -> None:
    clock = FakeClock(START)
    wide = spec(pacing={"max_concurrent": 6, "calls_per_s": 10, "burst": 6})
    await store.create_campaign(wide, clock.now())
    await store.add_contacts("notice", PEOPLE, clock.now())
    await store.change_state("notice", "start", clock.now())
    orig, events = FakeOriginator(SCRIPT), []
    first = make(store, clock, orig, events)
    plan = await first.tick()
    assert len(plan.dials) == 4  # overall max_concurrent
    # The process dies: two calls are still up in Asterisk, two ended while we were away.
    ended = [cid for cid, _, _ in orig.calls[:2]]
    for cid in ended:
        orig.live.discard(cid)
    still_up = [cid for cid, _, _ in orig.calls[2:]]
    # Also a crash right after writing an attempt, before its Originate went out.
    snap = await store.snapshot(clock.now())
    orphan = next(c for c in snap.contacts if c.number not in {n for _, n, _ in orig.calls})
    camp = await store.campaign("notice")
    await store.begin_attempt(Dial("notice", orphan.id, orphan.number, 1, f"ob-{camp.uid}-{orphan.id}-1"),
                              clock.now())

    clock.jump(5)
    second = make(store, clock, orig, events)
    assert await second.reconcile() == 3  # two ended unseen + the orphan: recorded as lost
    assert {a.channel_id for a in await store.in_flight()} == set(still_up)
    plan = await second.tick()
    assert not {d.number for d in plan.dials} & {n for c, n, _ in orig.calls if c in still_up}
    await run_until_done(second, orig, clock)

    per_contact = Counter(cid.rsplit("-", 1)[0] for cid, _, _ in orig.calls)
    assert max(per_contact.values()) <= 3
    rows = await store.attempts_of("notice")
    assert all(r["status"] == "ended" for r in rows)
    assert max(Counter(r["contact_id"] for r in rows).values()) <= 3
    assert Counter(r["outcome"] for r in rows)[Outcome.LOST] == 3
    assert len(rows) == len(orig.calls) + 1  # the orphan was written, never dialed


async def test_originate_rejected_is_failed_and_unknown_is_checked_later(store: OutboundStore) -> None:
    clock = FakeClock(START)
    await store.create_campaign(spec(), clock.now())
    await store.add_contacts("notice", PEOPLE[:2], clock.now())
    await store.change_state("notice", "start", clock.now())
    orig, events = FakeOriginator(SCRIPT), []
    orig.reject.add("13800000001")
    orig.hang.add("13800000002")
    dialer = make(store, clock, orig, events)
    await dialer.tick()
    rows = {r["number"]: r for r in await store.attempts_of("notice")}
    assert rows["13800000001"]["outcome"] == Outcome.FAILED
    assert rows["13800000002"]["status"] == "dialing"
    assert await dialer.reconcile(stale_only=True) == 0  # too early to judge
    orig.live.clear()
    clock.jump(CFG.dial.ring_timeout_s + 6)
    orig.down = True
    assert await dialer.reconcile(stale_only=True) == 0  # cannot ask: keep it in flight
    orig.down = False
    assert await dialer.reconcile(stale_only=True) == 1
    rows = {r["number"]: r for r in await store.attempts_of("notice")}
    assert rows["13800000002"]["outcome"] == Outcome.LOST


async def test_pause_resume_stop(store: OutboundStore) -> None:
    clock = FakeClock(START)
    await store.create_campaign(spec(), clock.now())
    await store.add_contacts("notice", PEOPLE, clock.now())
    orig, events = FakeOriginator(SCRIPT), []
    dialer = make(store, clock, orig, events)
    assert (await dialer.tick()).dials == []  # draft
    await store.change_state("notice", "start", clock.now())
    assert len((await dialer.tick()).dials) == 3
    await store.change_state("notice", "pause", clock.now())
    answer_all(dialer, orig)
    await dialer.process_results()  # results still land while paused
    clock.jump(10)
    assert (await dialer.tick()).dials == []
    with pytest.raises(CampaignStateError, match="cannot pause campaign 'notice': it is paused"):
        await store.change_state("notice", "pause", clock.now())
    await store.change_state("notice", "resume", clock.now())
    assert len((await dialer.tick()).dials) == 3
    await store.change_state("notice", "stop", clock.now())
    answer_all(dialer, orig)
    await dialer.process_results()
    status = await store.status("notice")
    assert status["state"] == State.STOPPED and status["pending"] == 0 and status["live"] == 0
    assert status["done"] + status["cancelled"] + status["not_reached"] == 6
    with pytest.raises(CampaignStateError):
        await store.change_state("notice", "resume", clock.now())


async def test_stale_plan_and_second_live_call_to_a_number_are_refused(store: OutboundStore) -> None:
    clock = FakeClock(START)
    a = await store.create_campaign(spec("a"), clock.now())
    b = await store.create_campaign(spec("b"), clock.now())
    for name in ("a", "b"):
        await store.add_contacts(name, [ContactIn("13900000000")], clock.now())
        await store.change_state(name, "start", clock.now())
    snap = await store.snapshot(clock.now())
    ca, cb = sorted(snap.contacts, key=lambda c: c.campaign)
    await store.begin_attempt(Dial("a", ca.id, ca.number, 1, f"ob-{a.uid}-{ca.id}-1"), clock.now())
    with pytest.raises(AttemptConflict):  # same attempt again (a replayed plan)
        await store.begin_attempt(Dial("a", ca.id, ca.number, 1, f"ob-{a.uid}-{ca.id}-1x"), clock.now())
    with pytest.raises(AttemptConflict, match="live attempt"):  # same number, other campaign
        await store.begin_attempt(Dial("b", cb.id, cb.number, 1, f"ob-{b.uid}-{cb.id}-1"), clock.now())
    await store.change_state("b", "pause", clock.now())
    await store.finish_attempt(f"ob-{a.uid}-{ca.id}-1", Outcome.BUSY, "", clock.now())
    with pytest.raises(AttemptConflict, match="not running"):
        await store.begin_attempt(Dial("b", cb.id, cb.number, 1, f"ob-{b.uid}-{cb.id}-1"), clock.now())
    assert [r["attempt_no"] for r in await store.attempts_of("b")] == []


async def test_outcome_upgrades_and_duplicates(store: OutboundStore) -> None:
    clock = FakeClock(START)
    await store.create_campaign(spec(), clock.now())
    await store.add_contacts("notice", PEOPLE[:1], clock.now())
    await store.change_state("notice", "start", clock.now())
    orig, events = FakeOriginator(SCRIPT), []
    dialer = make(store, clock, orig, events)
    await dialer.tick()
    cid = orig.calls[0][0]
    dialer.on_result(cid, Outcome.ANSWERED, "")  # Hangup first (ChannelState Up)
    dialer.on_result(cid, Outcome.ANSWERED, "1")  # then the dialplan's UserEvent
    dialer.on_result(cid, Outcome.ANSWERED, "1")  # and a duplicate
    dialer.on_result("ob-nothere-1-1", Outcome.BUSY, "")  # not ours
    dialer.on_result("1700000000.12", Outcome.BUSY, "")  # not outbound at all
    assert await dialer.process_results() == 2
    outs = [e.data["outcome"] for e in events if e.kind == Kind.OUT_RESULT]
    assert outs == [Outcome.ANSWERED, Outcome.CONFIRMED]
    r = await store.results("notice")
    assert (r["reached"], r["confirmed"], r["attempts"]) == (1, 1, 1)


async def test_a_machine_verdict_is_recorded_at_once_and_the_call_stays_live_until_it_hangs_up(
        store: OutboundStore) -> None:
    """Issue 12 item 20: the dialplan reports AMD's verdict before it plays anything; the machine then
    takes the message (or hangs up). The verdict is the attempt's one result; the line stays busy."""
    clock = FakeClock(START)
    await store.create_campaign(spec(pacing={"max_concurrent": 1, "calls_per_s": 10, "burst": 3},
                                     retry={"max_attempts": 2, "machine": {"delay_s": 0}}), clock.now())
    await store.add_contacts("notice", [PEOPLE[4], PEOPLE[1]], clock.now())  # the machine first (priority)
    await store.change_state("notice", "start", clock.now())
    orig, events = FakeOriginator(SCRIPT), []
    dialer = make(store, clock, orig, events)
    await dialer.tick()
    [(cid, number, _)] = orig.calls
    dialer.on_result(cid, Outcome.MACHINE, "", ended=False)  # UserEvent at AMD time
    await dialer.process_results()
    [attempt] = await store.attempts_of("notice")
    assert (attempt["outcome"], attempt["status"]) == ("machine", "dialing")
    assert (await store.status("notice"))["live"] == 1
    assert (await dialer.tick()).dials == []  # the one line is still taken: nobody else, no retry yet
    dialer.on_result(cid, Outcome.ANSWERED, "")  # the machine hangs up (Hangup, ChannelState Up)
    await dialer.process_results()
    [attempt] = await store.attempts_of("notice")
    assert (attempt["outcome"], attempt["status"]) == ("machine", "ended")
    assert [e.data["outcome"] for e in events if e.kind == Kind.OUT_RESULT] == ["machine"]  # one result
    assert [d.number for d in (await dialer.tick()).dials] == [number]  # the retry (it outranks 李四)
    assert (await store.results("notice"))["machine"] == 1


async def test_late_result_for_a_lost_attempt_is_kept(store: OutboundStore) -> None:
    clock = FakeClock(START)
    await store.create_campaign(spec(), clock.now())
    await store.add_contacts("notice", PEOPLE[:1], clock.now())
    await store.change_state("notice", "start", clock.now())
    orig, events = FakeOriginator(SCRIPT), []
    dialer = make(store, clock, orig, events)
    await dialer.tick()
    cid = orig.calls[0][0]
    orig.live.clear()
    assert await dialer.reconcile() == 1
    assert (await store.status("notice"))["pending"] == 1  # lost: will be retried
    dialer.on_result(cid, Outcome.ANSWERED, "1")  # the real outcome turns up after all
    await dialer.process_results()
    status = await store.status("notice")
    assert (status["pending"], status["done"]) == (0, 1)


async def test_survey_rating_recorded_against_call_agent_and_queue(store: OutboundStore) -> None:
    clock = FakeClock(START)
    await store.create_campaign(spec("sat", "survey", survey={"topic": "本次服务"}), clock.now())
    await store.add_contacts("sat", [
        ContactIn("13800000011",
                  variables={"call_id": "1700000000.5", "agent_id": "1001", "queue": "billing"}),
        ContactIn("13800000012")], clock.now())
    await store.change_state("sat", "start", clock.now())
    orig = FakeOriginator({"13800000011": [(Outcome.ANSWERED, "4")],
                           "13800000012": [(Outcome.ANSWERED, "9")]})
    events: list[Event] = []
    await run_until_done(make(store, clock, orig, events), orig, clock)
    [rating] = [e for e in events if e.kind == Kind.SURVEY_RATING]
    assert (rating.call_id, rating.agent_id, rating.queue, rating.data["rating"]) == (
        "1700000000.5", "1001", "billing", 4)
    r = await store.results("sat")
    assert (r["rated"], r["average_rating"], r["reached"]) == (1, 4.0, 2)


async def test_arrears_message_carries_amounts(store: OutboundStore) -> None:
    clock = FakeClock(START)
    await store.create_campaign(spec("arr", "arrears_reminder"), clock.now())
    await store.add_contacts("arr", [ContactIn("13800000021", account="0012345678", variables={
        "billing_month": "2026年10月", "arrears": "200.00", "due_date": "2026-11-13"})], clock.now())
    await store.change_state("arr", "start", clock.now())
    texts: list[str] = []

    async def prompt(text: str, lang: str) -> str:
        texts.append(text)
        return "cti/test"

    orig = FakeOriginator()
    dialer = Dialer(store, Scheduler(CFG), orig, clock, [].append, config=CFG, prompt=prompt)
    await dialer.tick()
    assert texts == ["2026年10月欠费200.00元，违约金2.00元，合计202.00元。"]  # 10 days x 1‰
    assert orig.calls[0][2]["MSG"] == "cti/test"


def test_safe_value_strips_header_injection() -> None:
    assert safe_value("vip\r\nAction: Originate") == "vip  Action: Originate"
    assert "," not in safe_value("a,b|c")


async def test_paging_reaches_contacts_behind_a_page_in_quiet_hours(store: OutboundStore) -> None:
    clock = FakeClock(datetime(2026, 11, 23, 12, 30, tzinfo=TZ).timestamp())
    cfg = CFG.model_copy(update={"quiet_hours": QuietHoursConfig(areas={"牧区": ["12:00-15:00"]})})
    await store.create_campaign(spec(), clock.now())
    quiet = [ContactIn(f"1380000000{i}", area="牧区", priority=50) for i in range(5)]
    await store.add_contacts("notice", [*quiet, ContactIn("13900000009", area="城东")], clock.now())
    await store.change_state("notice", "start", clock.now())
    orig = FakeOriginator()
    dialer = Dialer(store, Scheduler(cfg), orig, clock, [].append, config=cfg, page=2)
    plan = await dialer.tick()
    assert [d.number for d in plan.dials] == ["13900000009"]
    assert plan.blocked["outside_window"] == 5
    assert plan.next_deadline == datetime(2026, 11, 23, 15, 0, tzinfo=TZ).timestamp()


async def test_a_full_campaign_does_not_hold_back_a_lower_one(store: OutboundStore) -> None:
    clock = FakeClock(START)
    await store.create_campaign(spec("high", priority=90, pacing={"max_concurrent": 1, "calls_per_s": 10,
                                                                  "burst": 5}), clock.now())
    await store.create_campaign(spec("low", priority=10), clock.now())
    await store.add_contacts("high", [ContactIn(f"1380000000{i}") for i in range(4)], clock.now())
    await store.add_contacts("low", [ContactIn(f"1390000000{i}") for i in range(2)], clock.now())
    for name in ("high", "low"):
        await store.change_state(name, "start", clock.now())
    orig = FakeOriginator()
    dialer = Dialer(store, Scheduler(CFG), orig, clock, [].append, config=CFG, page=1)
    plan = await dialer.tick()
    assert [d.campaign for d in plan.dials] == ["high", "low", "low"]
    assert plan.blocked["campaign_max_concurrent"] == 1


async def test_specific_reports_replace_generic_failures(store: OutboundStore) -> None:
    clock = FakeClock(START)
    await store.create_campaign(spec(), clock.now())
    await store.add_contacts("notice", PEOPLE[:2], clock.now())
    await store.change_state("notice", "start", clock.now())
    orig = FakeOriginator()
    dialer = make(store, clock, orig, [])
    await dialer.tick()
    first, second = (cid for cid, _, _ in orig.calls)
    dialer.on_result(first, Outcome.FAILED, "")  # OriginateResponse Reason 0 ...
    dialer.on_result(first, Outcome.NO_ANSWER, "")  # ... then the Hangup of a ringing channel
    dialer.on_result(second, Outcome.BUSY, "")  # OriginateResponse Reason 5 ...
    dialer.on_result(second, Outcome.FAILED, "")  # ... then a Hangup with cause 0
    await dialer.process_results()
    rows = {r["channel_id"]: r for r in await store.attempts_of("notice")}
    assert (rows[first]["outcome"], rows[second]["outcome"]) == (Outcome.NO_ANSWER, Outcome.BUSY)
    snap = await store.snapshot(clock.now() + 10_000)
    due = {c.number: c.next_due for c in snap.contacts}
    assert due["13800000001"] == pytest.approx(START + 120)  # the no-answer delay, not the failed one


async def test_no_attempt_is_spent_while_the_originator_is_down(store: OutboundStore) -> None:
    clock = FakeClock(START)
    await store.create_campaign(spec(), clock.now())
    await store.add_contacts("notice", PEOPLE[:2], clock.now())
    await store.change_state("notice", "start", clock.now())
    orig = FakeOriginator()
    up = {"ok": False}
    orig.ready = lambda: up["ok"]  # type: ignore[attr-defined]
    dialer = make(store, clock, orig, [])
    plan = await dialer.tick()
    assert plan.dials == [] and plan.blocked["originator_down"] == 1
    assert plan.next_deadline == START + CFG.poll_s
    assert await store.attempts_of("notice") == []
    up["ok"] = True
    assert len((await dialer.tick()).dials) == 2


async def test_an_originate_that_never_went_out_costs_no_attempt(store: OutboundStore) -> None:
    clock = FakeClock(START)
    await store.create_campaign(spec(), clock.now())
    await store.add_contacts("notice", PEOPLE[:1], clock.now())
    await store.change_state("notice", "start", clock.now())
    orig, events = FakeOriginator(), []
    orig.not_sent.add(PEOPLE[0].number)
    dialer = make(store, clock, orig, events)
    await dialer.tick()
    assert await store.attempts_of("notice") == [] and events == []
    orig.not_sent.clear()
    clock.jump(1)
    [dial] = (await dialer.tick()).dials
    assert dial.attempt_no == 1  # the voided attempt left no trace
    assert [e.kind for e in events] == [Kind.OUT_ATTEMPT]


async def test_a_contact_whose_language_is_known_hears_their_message_in_it(store: OutboundStore) -> None:
    """The campaign is Mandarin; a contact whose list says `language: en` gets the English text, rendered
    by the English voice, and MSG_LANG tells the dialplan (and the ACD, if they press 0) which it is."""
    clock = FakeClock(START)
    outage = {"areas": ["城东"], "start": {"zh": "8时", "en": "8 am"}, "end": {"zh": "12时", "en": "noon"},
              "reason": {"zh": "线路检修", "en": "line maintenance"}}
    await store.create_campaign(spec(outage=outage), clock.now())
    await store.add_contacts("notice", [ContactIn("13800000001", name="张三", area="城东"),
                                        ContactIn("13800000002", name="Tom", area="城东",
                                                  variables={"language": "en"})], clock.now())
    await store.change_state("notice", "start", clock.now())
    heard: dict[str, tuple[str, str]] = {}

    async def prompt(text: str, lang: str) -> str:
        name = f"cti/{len(heard)}"
        heard[name] = (lang, text)
        return name

    orig = FakeOriginator()
    dialer = Dialer(store, Scheduler(CFG), orig, clock, [].append, config=CFG, prompt=prompt)
    await dialer.tick()
    by_number = {number: (v["MSG_LANG"], *heard[v["MSG"]]) for _, number, v in orig.calls}
    lang, voice, text = by_number["13800000002"]
    assert (lang, voice) == ("en", "en")
    assert text == "Hello Tom: power in 城东 is off from 8 am to noon (line maintenance)."
    lang, voice, text = by_number["13800000001"]
    assert (lang, voice) == ("zh", "zh") and "线路检修" in text and "张三" in text
