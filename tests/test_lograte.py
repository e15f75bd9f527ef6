"""LogBurst: the first of a burst is logged at once, the rest as one summary with a count."""

from __future__ import annotations

import asyncio
import logging

from ctiserver.clock import FakeClock
from ctiserver.lograte import LogBurst

log = logging.getLogger("tests.lograte")


def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == log.name]


def test_a_burst_is_one_line_and_one_summary(caplog) -> None:
    clock = FakeClock(100.0)
    burst = LogBurst(log, "stale calls closed", interval_s=10.0, clock=clock.now)
    caplog.set_level(logging.WARNING)
    for i in range(40_000):
        burst.add(f"call {i}")
    assert messages(caplog) == ["stale calls closed: call 0"]
    clock.jump(10.0)
    burst.add("call 40000")  # the next window: the summary of the last one, then this one
    assert messages(caplog) == ["stale calls closed: call 0",
                                "stale calls closed: 39999 more in 10.0 s (last: call 39999)",
                                "stale calls closed: call 40000"]
    burst.flush()
    burst.flush()
    assert len(messages(caplog)) == 3 and burst.total == 40_001  # nothing pending: no empty summary


def test_counts_added_at_once_and_nothing_for_zero(caplog) -> None:
    clock = FakeClock(0.0)
    burst = LogBurst(log, "bad lines", clock=clock.now)
    caplog.set_level(logging.WARNING)
    burst.add("'x'", count=0)
    assert messages(caplog) == []
    burst.add("'x'", count=5000)
    burst.add("'y'", count=7)
    clock.jump(3.5)
    burst.flush()
    assert messages(caplog) == ["bad lines: 'x' (5000 at once)", "bad lines: 7 more in 3.5 s (last: 'y')"]


async def test_the_summary_comes_on_time_without_a_further_occurrence(caplog) -> None:
    """On the event loop a timer writes the summary when the window ends, even if the burst stopped."""
    burst = LogBurst(log, "port scan connections closed", interval_s=0.05)
    caplog.set_level(logging.WARNING)
    for _ in range(100):
        burst.add("('10.0.0.9', 4242)")
    assert len(messages(caplog)) == 1
    async with asyncio.timeout(5):
        while len(messages(caplog)) < 2:  # noqa: ASYNC110  (the timer is the thing under test)
            await asyncio.sleep(0.01)
    assert messages(caplog)[1].startswith("port scan connections closed: 99 more in ")
