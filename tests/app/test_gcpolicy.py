"""The collector policy: refreeze on its timer, sweep once per sweep period, stop with its context."""

from __future__ import annotations

import asyncio
import gc

import pytest

from ctiserver.app.gcpolicy import CollectorPolicy


class FakeCollector:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def collect(self, generation: int = 2) -> int:
        self.calls.append(f"collect{generation}")
        return 0

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")


async def test_refreezes_on_its_timer_and_sweeps_once_a_period() -> None:
    ticks: asyncio.Queue[float] = asyncio.Queue()
    go = asyncio.Event()

    async def sleep(s: float) -> None:  # each timer tick is given by the test
        await ticks.put(s)
        await go.wait()
        go.clear()

    fake = FakeCollector()
    async with CollectorPolicy(60.0, 180.0, collector=fake, sleep=sleep) as policy:
        for _ in range(3):
            assert await ticks.get() == 60.0
            go.set()
        assert await ticks.get() == 60.0  # the fourth timer started: three ticks handled
        assert policy.refreezes == 2 and policy.sweeps == 1
    assert fake.calls == ["collect1", "freeze", "collect1", "freeze", "unfreeze", "collect2", "freeze"]


async def test_the_real_collector_keeps_working_after_a_refreeze_and_a_sweep() -> None:
    policy = CollectorPolicy()
    before = gc.get_freeze_count()
    junk: dict[str, object] = {}
    junk["self"] = junk  # a cycle, young: the refreeze's young collection frees it once unreferenced
    del junk
    policy.refreeze()
    assert gc.get_freeze_count() >= before
    policy.sweep()
    assert policy.refreezes == 1 and policy.sweeps == 1 and policy.worst_ms >= 0.0
    gc.unfreeze()  # leave the test process as pytest had it


def test_bad_periods_are_refused() -> None:
    with pytest.raises(ValueError):
        CollectorPolicy(0.0)
    with pytest.raises(ValueError):
        CollectorPolicy(60.0, 30.0)
