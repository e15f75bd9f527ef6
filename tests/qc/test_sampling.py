"""Sampling plans on a fake clock: reproducible with a seed, every must-inspect call, spread over the month."""

from __future__ import annotations

import datetime as dt

from ctiserver.clock import FakeClock
from ctiserver.qc.sampling import CallFacts, sample
from ctiserver.qc.sheet import Sampling

START = dt.datetime(2026, 11, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
END = dt.datetime(2026, 12, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
PLAN = Sampling(per_agent=5, low_rating_max=2, long_call_s=900, transferred=True)


def month_of_calls(clock: FakeClock) -> list[CallFacts]:
    """Three agents, a call every 2 hours of the month each (a fake clock steps through it)."""
    calls = []
    n = 0
    while clock.now() < END:
        for agent in ("1001", "1002", "1003"):
            n += 1
            calls.append(CallFacts(f"{int(clock.now())}.{n}", agent, clock.now(), 120.0 + n % 300, "billing"))
        clock.jump(7200)
    return calls


def test_the_same_seed_gives_the_same_sample_and_another_seed_another() -> None:
    calls = month_of_calls(FakeClock(START))
    a = sample(calls, PLAN, month="2026-11", start=START, end=END, seed=7)
    b = sample(list(reversed(calls)), PLAN, month="2026-11", start=START, end=END, seed=7)
    assert [p.call.call_id for p in a] == [p.call.call_id for p in b]
    c = sample(calls, PLAN, month="2026-11", start=START, end=END, seed=8)
    assert [p.call.call_id for p in a] != [p.call.call_id for p in c]
    assert {agent: sum(p.call.agent_id == agent for p in a) for agent in ("1001", "1002", "1003")} == \
        {"1001": 5, "1002": 5, "1003": 5}


def test_random_picks_are_spread_over_the_month() -> None:
    calls = month_of_calls(FakeClock(START))
    picks = [p for p in sample(calls, PLAN, month="2026-11", start=START, end=END, seed=1) if p.call.agent_id == "1001"]
    stretch = (END - START) / 5
    assert sorted(int((p.call.start_ts - START) // stretch) for p in picks) == [0, 1, 2, 3, 4]


def test_every_call_that_must_be_inspected_is_and_one_agent_does_not_move_another() -> None:
    calls = month_of_calls(FakeClock(START))
    special = [
        CallFacts("c1", "1001", START + 1000, 100, categories=frozenset({"complaint"})),
        CallFacts("c2", "1001", START + 2000, 100, rating=1),
        CallFacts("c3", "1001", START + 3000, 1000),
        CallFacts("c4", "1001", START + 4000, 100, transferred=True),
        CallFacts("c5", "1001", START + 5000, 100, rating=4),
    ]
    picks = sample(calls + special, PLAN, month="2026-11", start=START, end=END, seed=3)
    reasons = {p.call.call_id: p.reason for p in picks}
    assert [reasons.get(c) for c in ("c1", "c2", "c3", "c4")] == ["complaint", "low_rating", "long", "transfer"]
    assert sum(r == "random" for c, r in reasons.items() if c.startswith("c") is False) >= 15
    others = [p.call.call_id for p in sample(calls, PLAN, month="2026-11", start=START, end=END, seed=3)
              if p.call.agent_id != "1001"]
    assert others == [p.call.call_id for p in picks if p.call.agent_id != "1001"]


def test_an_agent_with_few_calls_gets_them_all_and_calls_outside_the_month_none() -> None:
    calls = [CallFacts("x1", "1005", START + 10, 60), CallFacts("x2", "1005", START + 20, 60),
             CallFacts("x3", "1005", END + 10, 60)]
    picks = sample(calls, PLAN, month="2026-11", start=START, end=END, seed=0)
    assert [p.call.call_id for p in picks] == ["x1", "x2"]
    assert all(p.due_ts == p.call.start_ts + 3 * 86400 for p in picks)
