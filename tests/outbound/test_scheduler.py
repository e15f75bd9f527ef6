"""The pure scheduler on a fake clock: pacing, windows, holidays, caps, priority, one live call per number."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctiserver.calendar import Calendar
from ctiserver.clock import FakeClock
from ctiserver.outbound.model import (
    CampaignSpec,
    FrequencyCap,
    OutboundConfig,
    PacingConfig,
    QuietHoursConfig,
    State,
)
from ctiserver.outbound.rules import Delivery
from ctiserver.outbound.scheduler import (
    CampaignView,
    ContactView,
    LiveAttempt,
    Scheduler,
    Snapshot,
    channel_id,
)

TZ = ZoneInfo("Asia/Shanghai")


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: float = 0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=TZ).timestamp() + s


def campaign(name: str = "c1", *, kind: str = "survey", priority: int = 50, windows: list[str] | None = None,
             days: str = "any", concurrent: int = 100, cps: float = 100.0, burst: int = 100,
             max_attempts: int = 3, state: str = State.RUNNING) -> CampaignView:
    spec = CampaignSpec.model_validate({
        "name": name, "kind": kind, "priority": priority, "windows": windows or ["00:00-24:00"], "days": days,
        "pacing": {"max_concurrent": concurrent, "calls_per_s": cps, "burst": burst},
        "retry": {"max_attempts": max_attempts}})
    return CampaignView.from_spec(spec, uid=name.upper(), state=state)


def contacts(n: int, camp: str = "c1", start: int = 1, **kw: object) -> list[ContactView]:
    return [ContactView(i, camp, f"1380000{i:04d}", **kw) for i in range(start, start + n)]  # type: ignore[arg-type]


def sched(**kw: object) -> Scheduler:
    base: dict[str, object] = {"pacing": PacingConfig(max_concurrent=1000, calls_per_s=1000, burst=1000)}
    base.update(kw)
    return Scheduler(OutboundConfig.model_validate(base))


NOON = at(2026, 11, 23, 12)  # a Monday


def test_dials_carry_attempt_number_and_deterministic_channel_id() -> None:
    plan = sched().plan(NOON, Snapshot([campaign()], [ContactView(7, "c1", "13800000007", attempts=1)]))
    [d] = plan.dials
    assert (d.campaign, d.contact, d.number, d.attempt_no) == ("c1", 7, "13800000007", 2)
    assert d.channel_id == channel_id("C1", 7, 2) == "ob-C1-7-2"
    assert plan.next_deadline is None


def test_campaign_calls_per_second_never_exceeded_over_a_run() -> None:
    clock = FakeClock(NOON)
    s = sched()
    camp = campaign(cps=2.0, burst=1)
    pending = contacts(40)
    started: list[float] = []
    while pending and clock.now() < NOON + 60:
        plan = s.plan(clock.now(), Snapshot([camp], pending))
        started += [clock.now()] * len(plan.dials)
        dialed = {d.contact for d in plan.dials}
        pending = [c for c in pending if c.id not in dialed]
        assert plan.next_deadline is not None or not pending
        clock.set(plan.next_deadline if plan.next_deadline else clock.now() + 1)
    assert len(started) == 40
    for i in range(len(started)):
        in_one_second = [t for t in started if started[i] <= t < started[i] + 1.0]
        assert len(in_one_second) <= 2
    assert started[-1] - started[0] == pytest.approx(19.5)


def test_overall_rate_limits_across_campaigns() -> None:
    s = sched(pacing=PacingConfig(max_concurrent=1000, calls_per_s=1, burst=1))
    snap = Snapshot([campaign("a"), campaign("b")], contacts(5, "a") + contacts(5, "b", start=100))
    plan = s.plan(NOON, snap)
    assert len(plan.dials) == 1
    assert plan.next_deadline == pytest.approx(NOON + 1)
    assert plan.blocked["overall_calls_per_s"] == 9 and plan.overall_full


def test_max_concurrent_per_campaign_and_overall_count_live_attempts() -> None:
    s = sched(pacing=PacingConfig(max_concurrent=5, calls_per_s=1000, burst=1000))
    camp = campaign(concurrent=3)
    live = [LiveAttempt("c1", 900, "13900000900")]
    plan = s.plan(NOON, Snapshot([camp], contacts(10), live=live))
    assert len(plan.dials) == 2  # 3 per campaign, one already live
    other = [LiveAttempt("x", 901 + i, f"1390000091{i}") for i in range(4)]
    plan = s.plan(NOON + 10, Snapshot([campaign()], contacts(10), live=other))
    assert len(plan.dials) == 1  # 5 overall, four live elsewhere
    assert plan.next_deadline is None  # nothing changes until a call ends


def test_the_servers_room_bounds_the_plan_and_spends_no_token_beyond_it() -> None:
    s = sched(pacing=PacingConfig(max_concurrent=50, calls_per_s=1, burst=3))
    plan = s.plan(NOON, Snapshot([campaign()], contacts(10)), room=1)
    assert len(plan.dials) == 1 and plan.blocked["servers_full"] == 9
    plan = s.plan(NOON, Snapshot([campaign()], contacts(10)[1:]), room=5)
    assert len(plan.dials) == 2  # the burst's two tokens left: none went to the call that had no room


def test_priority_campaign_then_important_contacts_then_longest_waiting() -> None:
    s = sched(pacing=PacingConfig(max_concurrent=4, calls_per_s=1000, burst=1000))
    low, high = campaign("low", priority=10), campaign("high", priority=90)
    people = [
        ContactView(1, "low", "13800000001", priority=100),
        ContactView(2, "high", "13800000002", priority=0, next_due=NOON - 10),
        ContactView(3, "high", "13800000003", priority=0, next_due=NOON - 99),
        ContactView(4, "high", "13800000004", priority=10),
        ContactView(5, "low", "13800000005", priority=0),
    ]
    plan = s.plan(NOON, Snapshot([low, high], people))
    assert [d.contact for d in plan.dials] == [4, 3, 2, 1]


def test_one_live_attempt_per_number_across_campaigns() -> None:
    s = sched()
    same = "13812345678"
    snap = Snapshot([campaign("a"), campaign("b")],
                    [ContactView(1, "a", same), ContactView(2, "b", same),
                     ContactView(3, "b", "13800000003")])
    plan = s.plan(NOON, snap)
    assert sorted(d.contact for d in plan.dials) == [1, 3]
    live = [LiveAttempt("a", 1, same)]
    plan = s.plan(NOON + 1, Snapshot(snap.campaigns, [ContactView(2, "b", same)], live=live))
    assert plan.dials == []
    assert plan.blocked["number_busy"] == 1


def test_window_across_midnight() -> None:
    s = sched()
    night = campaign(windows=["22:00-02:00"])
    c = contacts(1)
    plan = s.plan(at(2026, 11, 23, 21, 30), Snapshot([night], c))
    assert plan.dials == [] and plan.next_deadline == at(2026, 11, 23, 22)
    assert len(s.plan(at(2026, 11, 23, 23, 59), Snapshot([night], c)).dials) == 1
    assert len(sched().plan(at(2026, 11, 24, 1, 59), Snapshot([night], c)).dials) == 1
    plan = sched().plan(at(2026, 11, 24, 2, 0), Snapshot([night], c))
    assert plan.dials == [] and plan.next_deadline == at(2026, 11, 24, 22)


def test_no_calls_on_holidays_and_window_rolls_to_next_allowed_day() -> None:
    cal = Calendar(holidays=[date(2026, 10, d) for d in range(1, 8)], workdays=[date(2026, 10, 10)])
    s = sched(calendar=cal)
    arrears = campaign(kind="arrears_reminder", windows=["08:00-21:00"], days="no_holidays")
    plan = s.plan(at(2026, 9, 30, 21, 5), Snapshot([arrears], contacts(1)))
    assert plan.dials == [] and plan.next_deadline == at(2026, 10, 8, 8)
    working = campaign(kind="arrears_reminder", windows=["08:00-21:00"], days="working")
    plan = s.plan(at(2026, 10, 9, 21, 0), Snapshot([working], contacts(1)))  # Friday evening
    assert plan.next_deadline == at(2026, 10, 10, 8)  # Saturday, a make-up workday (调休)
    plan = s.plan(at(2026, 10, 10, 21, 0), Snapshot([working], contacts(1)))
    assert plan.next_deadline == at(2026, 10, 12, 8)  # Sunday skipped


def test_across_midnight_window_belongs_to_the_day_it_starts() -> None:
    cal = Calendar(holidays=[date(2026, 10, 1)])
    s = sched(calendar=cal)
    night = campaign(windows=["22:00-02:00"], days="no_holidays")
    assert s.plan(at(2026, 10, 1, 0, 30), Snapshot([night], contacts(1))).dials  # Sept 30 window
    plan = sched(calendar=cal).plan(at(2026, 10, 1, 22, 30), Snapshot([night], contacts(1)))
    assert plan.dials == [] and plan.next_deadline == at(2026, 10, 2, 22)


def test_quiet_hours_per_area_and_per_customer() -> None:
    s = sched(quiet_hours=QuietHoursConfig(default=["12:00-13:00"], areas={"rural": ["12:00-14:30"]}))
    camp = campaign(windows=["08:00-21:00"])
    people = [ContactView(1, "c1", "13800000001", area="city"),
              ContactView(2, "c1", "13800000002", area="rural"),
              ContactView(3, "c1", "13800000003", area="city", quiet=contact_quiet("18:00-08:00"))]
    plan = s.plan(at(2026, 11, 23, 12, 30), Snapshot([camp], people))
    assert plan.dials == [] and plan.next_deadline == at(2026, 11, 23, 13)
    plan = s.plan(at(2026, 11, 23, 13), Snapshot([camp], people))
    assert [d.contact for d in plan.dials] == [1, 3]
    assert plan.next_deadline == at(2026, 11, 23, 14, 30)
    plan = s.plan(at(2026, 11, 23, 19), Snapshot([camp], people[2:]))
    assert plan.dials == [] and plan.next_deadline == at(2026, 11, 24, 8)


def contact_quiet(text: str) -> tuple:  # type: ignore[type-arg]
    from ctiserver.outbound.model import parse_ranges

    return parse_ranges(text)


def test_retry_not_before_due_and_never_past_max_attempts() -> None:
    s = sched()
    camp = campaign(max_attempts=3)
    waiting = ContactView(1, "c1", "13800000001", attempts=1, next_due=NOON + 300)
    plan = s.plan(NOON, Snapshot([camp], [waiting]))
    assert plan.dials == [] and plan.next_deadline == NOON + 300
    assert s.plan(NOON + 300, Snapshot([camp], [waiting])).dials[0].attempt_no == 2
    spent = ContactView(2, "c1", "13800000002", attempts=3)
    plan = s.plan(NOON + 400, Snapshot([camp], [spent]))
    assert plan.dials == [] and plan.blocked["max_attempts"] == 1


def test_listed_numbers_are_never_dialled_first_try_or_retry() -> None:
    """Issue 12 item 16: the do-not-call list and blacklist are checked at every dial decision."""
    s = sched()
    camp = campaign()
    first = ContactView(1, "c1", "13800000001")
    retry = ContactView(2, "c1", "13800000002", attempts=1, next_due=NOON - 60)
    other = ContactView(3, "c1", "13800000003")
    listed = {"13800000001": "dnc", "13800000002": "blacklist"}
    plan = s.plan(NOON, Snapshot([camp], [first, retry, other], listed=listed))
    assert [d.contact for d in plan.dials] == [3]
    assert [(x.contact, x.number, x.list) for x in plan.excluded] == [
        (1, "13800000001", "dnc"), (2, "13800000002", "blacklist")]
    assert (plan.blocked["dnc"], plan.blocked["blacklist"]) == (1, 1)
    live = [LiveAttempt("c1", 1, "13800000001")]  # a call already up is left to finish, not excluded
    plan = s.plan(NOON, Snapshot([camp], [first], live=live, listed=listed))
    assert plan.dials == [] and plan.excluded == []


def test_frequency_cap_per_account_across_campaigns() -> None:
    s = sched(caps=[FrequencyCap(kind="arrears_reminder", max=1, per_days=7)])
    a = campaign("a", kind="arrears_reminder")
    b = campaign("b", kind="arrears_reminder")
    people = [ContactView(1, "a", "13800000001", account="ACC1"),
              ContactView(2, "b", "13800000002", account="ACC1"),
              ContactView(3, "b", "13800000003", account="ACC2")]
    plan = s.plan(NOON, Snapshot([a, b], people))
    assert sorted(d.contact for d in plan.dials) == [1, 3]  # one per account even in one round
    delivered = [Delivery("ACC1", "arrears_reminder", NOON - 86400)]
    plan = s.plan(NOON + 5, Snapshot([b], [people[1]], deliveries=delivered))
    assert plan.dials == [] and plan.next_deadline == NOON + 6 * 86400
    survey = campaign("s", kind="survey")
    plan = s.plan(NOON + 6, Snapshot([survey], [ContactView(9, "s", "13800000009", account="ACC1")],
                                     deliveries=delivered))
    assert len(plan.dials) == 1  # the cap is per kind


def test_paused_and_stopped_campaigns_dial_nothing() -> None:
    s = sched()
    for state in (State.PAUSED, State.STOPPED, State.DRAFT, State.FINISHED):
        plan = s.plan(NOON, Snapshot([campaign(state=state)], contacts(3)))
        assert plan.dials == [] and plan.next_deadline is None


def test_snapshot_later_hint_becomes_the_deadline() -> None:
    plan = sched().plan(NOON, Snapshot([campaign()], [], later=NOON + 42))
    assert plan.next_deadline == NOON + 42


@settings(max_examples=60, deadline=None)
@given(cps=st.floats(0.2, 20), burst=st.integers(1, 5), gaps=st.lists(st.floats(0.0, 3.0), min_size=5,
                                                                     max_size=60))
def test_token_bucket_bound_holds_for_any_polling_pattern(cps: float, burst: int, gaps: list[float]) -> None:
    s = sched()
    camp = campaign(cps=cps, burst=burst)
    pending = contacts(200)
    now = NOON
    starts: list[float] = []
    for gap in gaps:
        now += gap
        plan = s.plan(now, Snapshot([camp], pending))
        starts += [now] * len(plan.dials)
        dialed = {d.contact for d in plan.dials}
        pending = [c for c in pending if c.id not in dialed]
    for i, t0 in enumerate(starts):
        for t1 in starts[i:]:
            n = sum(1 for t in starts if t0 <= t <= t1)
            assert n <= burst + (t1 - t0) * cps + 1e-6
