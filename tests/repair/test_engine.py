"""Crew steps on a fake clock: each deadline (acknowledge, arrival by area class, the 30-minute report,
the reported restoration), its reminder before it and its escalation after it, each once; illegal steps."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ctiserver.clock import FakeClock
from ctiserver.repair import engine
from ctiserver.repair.engine import IllegalStep, Order
from ctiserver.workorders.deadlines import load_workorder_table

REPO = Path(__file__).resolve().parents[2]
TABLE = load_workorder_table(REPO / "config").crews
T0 = 1_800_000_000.0
MIN = 60.0


def order(area_class: str = "city", **kw: object) -> Order:
    return replace(Order(id=1, crew="CD1", area="城东区", area_class=area_class, stage=engine.DISPATCHED,
                         dispatched_ts=T0), **kw)  # type: ignore[arg-type]


def run(o: Order, clock: FakeClock) -> tuple[Order, list[str]]:
    """One watch round: the alerts due now, marked sent."""
    due, _ = engine.alerts([o], clock.now(), TABLE)
    return replace(o, alerted=o.alerted | {a.key for a in due}), [a.key for a in due]


@pytest.mark.parametrize(("area_class", "warn", "due"), [("city", 35, 45), ("suburb", 75, 90), ("remote", 100, 120)])
def test_arrival_deadline_by_area_class_with_reminder_and_escalation(area_class: str, warn: int, due: int) -> None:
    clock = FakeClock(T0)
    o = replace(order(area_class), stage=engine.ACKNOWLEDGED, ack_ts=T0 + 60)
    _, nxt = engine.alerts([o], clock.now(), TABLE)
    assert nxt == T0 + warn * MIN
    clock.set(T0 + warn * MIN - 1)
    o, sent = run(o, clock)
    assert sent == []
    clock.set(T0 + warn * MIN)
    o, sent = run(o, clock)
    assert sent == ["arrive.reminder"]
    o, sent = run(o, clock)
    assert sent == []  # once
    _, nxt = engine.alerts([o], clock.now(), TABLE)
    assert nxt == T0 + due * MIN
    clock.set(T0 + due * MIN)
    assert run(o, clock)[1] == []  # at the deadline itself: still on time
    clock.jump(1)
    o, sent = run(o, clock)
    assert sent == ["arrive.escalation"]
    assert run(o, clock)[1] == []


def test_acknowledge_then_arrive_then_the_thirty_minute_report() -> None:
    clock = FakeClock(T0)
    o = order()
    clock.set(T0 + 3 * MIN)
    o, sent = run(o, clock)
    assert sent == ["acknowledge.reminder"]
    clock.set(T0 + 5 * MIN + 1)
    o, sent = run(o, clock)
    assert sent == ["acknowledge.escalation"]
    o = engine.step(o, "ack", clock.now())
    clock.set(T0 + 40 * MIN)
    o = engine.step(o, "arrive", clock.now())
    assert engine.on_time(o, TABLE)["arrive"] is True
    arrived = clock.now()
    clock.set(arrived + 20 * MIN)
    o, sent = run(o, clock)
    assert sent == ["report.reminder"]
    clock.set(arrived + 30 * MIN + 1)
    o, sent = run(o, clock)
    assert sent == ["report.escalation"]
    o = engine.step(o, "report", clock.now(), cause="树障", location="城东12号杆", expected_ts=clock.now() + 3600)
    assert engine.on_time(o, TABLE) == {"arrive": True, "report": False}
    clock.set(o.expected_ts - 15 * MIN)  # type: ignore[operator]
    o, sent = run(o, clock)
    assert sent == ["restore.reminder"]
    o = engine.step(o, "restore", clock.now())
    assert o.stage == engine.RESTORED and o.cause == "树障"
    assert engine.alerts([o], clock.now() + 10 * 3600, TABLE) == ([], None)


def test_illegal_steps_and_incomplete_reports_are_refused() -> None:
    with pytest.raises(IllegalStep, match="dispatched cannot take step 'report'"):
        engine.step(order(), "report", T0, cause="x", location="y", expected_ts=T0 + 1)
    arrived = engine.step(order(), "arrive", T0 + 60)
    assert arrived.ack_ts == T0 + 60  # arriving acknowledges
    with pytest.raises(ValueError, match="cause, the location and the expected"):
        engine.step(arrived, "report", T0 + 120, cause="x")
    with pytest.raises(ValueError, match="needs the cause"):
        engine.step(arrived, "restore", T0 + 120)
    done = engine.step(arrived, "restore", T0 + 120, cause="保险丝熔断")
    with pytest.raises(IllegalStep):
        engine.step(done, "cancel", T0 + 180)
