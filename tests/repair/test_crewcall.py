"""A repair order read to its crew by a real call on the sandbox Asterisk (AMI Originate into [crew-call]).

The sandbox's `outbound-dest` plays the crew's phone by the number's last digit: 1 answers and presses 1,
2 answers and presses 0, 4 never answers. A crew that presses 1 has the order acknowledged (step ack by
crew-call); one that presses another key or never answers is called again after retry_s, up to
max_attempts, and then no more (`given_up`), the order still waiting for the watch's escalation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.ami.client import AmiClient
from ctiserver.calendar import load_calendar
from ctiserver.clock import SystemClock
from ctiserver.events import Event, Kind
from ctiserver.repair.crewcall import CallPlan, CrewNotifier, next_call
from ctiserver.repair.engine import ACKNOWLEDGED, DISPATCHED
from ctiserver.repair.model import CrewsConfig
from ctiserver.repair.service import RepairService
from ctiserver.repair.store import RepairStore
from ctiserver.store.engine import make_engine, migrate
from ctiserver.workorders.deadlines import CrewDeadlines
from tests.asterisk_fixture import ami_server_config

REPO = Path(__file__).resolve().parents[2]
CAL = load_calendar(REPO / "config")


class Watch:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.changed.set()

    def calls(self, order_id: int) -> list[str]:
        return [e.data["outcome"] for e in self.events if e.kind == Kind.REPAIR_CALL and e.data["id"] == order_id]

    async def until(self, pred: Any, timeout: float = 120.0) -> None:
        async def wait() -> None:
            while not pred():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), timeout)


def test_next_call_retries_until_attempts_or_the_acknowledge_deadline_run_out() -> None:
    rule = {"retry_s": 60.0, "max_attempts": 3, "ack_due_ts": 1000.0}
    assert next_call(CallPlan(1, attempts=1), "no_answer", 100.0, **rule).next_ts == 160.0
    assert next_call(CallPlan(1, attempts=1), "accepted", 100.0, **rule).next_ts is None
    assert next_call(CallPlan(1, attempts=3), "busy", 100.0, **rule).next_ts is None
    assert next_call(CallPlan(1, attempts=1), "no_key", 950.0, **rule).next_ts is None  # past the deadline
    assert next_call(CallPlan(1, attempts=2), "no_key", 100.0, **rule) == CallPlan(1, 2, "no_key", 160.0)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cti.db'}"
    await migrate(url)
    eng = make_engine(url)
    yield eng
    await eng.dispose()


@pytest.mark.asterisk
async def test_crews_called_press_1_accepts_others_are_called_again_then_given_up(
        asterisk_sandbox: Any, engine: AsyncEngine) -> None:
    crews = CrewsConfig.model_validate({
        "crews": [{"id": "P1", "team": "一班", "areas": ["甲区"], "phone": "13700000021"},
                  {"id": "P0", "team": "二班", "areas": ["乙区"], "phone": "13700000022"},
                  {"id": "NA", "team": "三班", "areas": ["丙区"], "phone": "13700000024"}],
        "call": {"ring_s": 4, "retry_s": 1, "max_attempts": 2}, "poll_s": 1})
    crews = crews.model_copy(update={"calendar": CAL})
    table = CrewDeadlines()
    watch = Watch()
    clock = SystemClock()
    async def crew_dispatched(order: Any, row: dict[str, Any]) -> None:
        await holder["n"].on_dispatch(order, row)  # built below: it acts on the service it is a hook of

    holder: dict[str, CrewNotifier] = {}
    repair = RepairService(RepairStore(engine), crews, table, clock, watch, on_dispatch=crew_dispatched)
    spoken: list[str] = []

    async def prompt(text: str, lang: str) -> str:
        spoken.append(text)
        return "beep"  # a sound every Asterisk has; the TTS pipeline is tested on its own

    client = AmiClient(ami_server_config(asterisk_sandbox),
                       on_event=lambda m: holder["n"].on_ami("pbx1", m) if holder else None)
    await client.start()
    await client.wait_connected(15)
    notifier = CrewNotifier(repair, crews, table, clock, watch, sms=None, ami=client, prompt=prompt,
                            channel="Local/{number}@outbound-dest", caller_id="95598")
    holder["n"] = notifier
    try:
        async with notifier.running():
            yes, _ = await repair.dispatch("甲区")
            zero, _ = await repair.dispatch("乙区")
            none, _ = await repair.dispatch("丙区")
            await watch.until(lambda: "accepted" in watch.calls(yes.id)
                              and "given_up" in watch.calls(zero.id) and "given_up" in watch.calls(none.id))
    finally:
        await client.close()

    assert watch.calls(yes.id) == ["dialing", "accepted"]
    assert (await repair.store.get(yes.id))[0].stage == ACKNOWLEDGED
    acks = [e.data for e in watch.events if e.kind == Kind.REPAIR and e.data["step"] == "ack"]
    assert [(a["id"], a["user"]) for a in acks] == [(yes.id, "crew-call")]
    assert watch.calls(zero.id) == ["dialing", "no_key", "dialing", "no_key", "given_up"]
    digits = [e.data.get("digit") for e in watch.events
              if e.kind == Kind.REPAIR_CALL and e.data["id"] == zero.id and e.data["outcome"] == "no_key"]
    assert digits == ["0", "0"]
    calls = watch.calls(none.id)
    assert calls[0::2][:2] == ["dialing", "dialing"] and calls[-1] == "given_up", calls
    assert all(c in ("no_answer", "failed") for c in calls[1:-1:2]), calls
    for order in (zero, none):
        assert (await repair.store.get(order.id))[0].stage == DISPATCHED  # the watch escalates it
    assert any(t.startswith(f"一班，抢修工单{yes.id}，甲区停电，请于") and t.endswith("接单请按1。") for t in spoken)
