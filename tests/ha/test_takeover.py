"""The takeover gate on a real ACD runtime and a real event log: a standby refuses new callers, keeps
resuming ones on hold, and once it leads resumes them all in their old order (the VIP first)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ctiserver.clock import SystemClock
from ctiserver.events import Event, Kind
from ctiserver.ha.takeover import Takeover
from ctiserver.store.engine import make_engine, migrate
from ctiserver.store.writer import EventStore

from ..acd.test_runtime import Agent, FakeChannel, runtime


class Status:
    def __init__(self) -> None:
        self.value: dict[str, Any] = {"node": "b", "leader": "a", "role": "standby"}

    def status(self) -> dict[str, Any]:
        return self.value


async def test_a_standby_keeps_resuming_callers_and_resumes_them_in_order_once_it_leads(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'ev.db'}"
    await migrate(url)
    store = EventStore(url, journal_path=tmp_path / "journal.jsonl")
    await store.start()
    clock = SystemClock()
    t0 = clock.now() - 60
    for i, (call, tier) in enumerate((("n1", "normal"), ("n2", "normal"), ("v", "vip"), ("gone", "normal"))):
        store.append(Event(Kind.ACD_ENQUEUE, t0 + i, call_id=call, queue="billing", tier=tier,
                           data={"caller": f"1380000000{i}", "position": i + 1}))  # the old leader's log
    store.append(Event(Kind.CALL_NEW, t0, call_id="ended", server="pbx1", data={}))  # hung up in the gap
    await store.flush()
    engine = make_engine(url)
    acd, log = runtime({"1001": {"billing": 5}})
    await acd.start()  # its timer ends the agent's wrap-up
    leading = False
    takeover = Takeover(Status(), lambda: leading, acd, lambda: engine, clock.now, log.append,
                        live_calls=lambda: {"n1", "n2", "v"}, resynced=lambda: asyncio.sleep(0), park_s=30.0)
    handled: list[str] = []

    async def ivr(chan: Any) -> None:
        handled.append(chan.variables["CHANNEL(linkedid)"])

    gate = takeover.gate(ivr, resumable=True)
    agents = {"1001": Agent(talk_s=0.01)}

    def chan(call: str, resume: str = "2") -> FakeChannel:
        variables = {"CHANNEL(linkedid)": call, **({"CTI_RESUME": resume} if resume else {})}
        return FakeChannel(agents=agents, variables=variables)

    try:
        new = chan("new", resume="")
        await gate(new)  # a new caller at a standby: refused at once, the dialplan tries the next host
        assert handled == [] and "CTI_DONE" not in new.variables
        channels = {c: chan(c) for c in ("n2", "v", "n1")}  # they come back in any order
        sessions = [asyncio.ensure_future(gate(ch)) for ch in channels.values()]
        while len(takeover._parked) < 3:  # each session asks for its variables, then is parked
            await asyncio.wait_for(takeover._arrived.wait(), 10)
            takeover._arrived.clear()
        assert all("EXEC StartMusicOnHold default" in ch.commands for ch in channels.values())
        acd.login("1001", ready=True)  # restored with the agents after the takeover
        leading = True
        async with takeover.term():
            await asyncio.gather(*sessions)
        resumed = [e for e in log if e.kind == Kind.ACD_ENQUEUE]
        assert [e.call_id for e in resumed] == ["v", "n1", "n2"]  # VIP first, then by their old places
        assert all(e.data["resumed"] for e in resumed)
        answered = [e.call_id for e in log if e.kind == Kind.ACD_ANSWER]
        assert answered == ["v", "n1", "n2"]
        ans = {e.call_id: e.data["wait_s"] for e in log if e.kind == Kind.ACD_ANSWER}
        assert ans["n1"] > 59  # the wait counts from the first enqueue, on the old leader
        assert all(ch.variables.get("CTI_DONE") == "1" for ch in channels.values())
        ended = [e for e in log if e.kind == Kind.CALL_END]
        assert [(e.call_id, e.data["reason"]) for e in ended] == [("ended", "ended while no CTI was leading")]
        other = chan("ivr-caller")  # resuming, but it was never queued: the IVR again
        await gate(other)
        assert handled == ["ivr-caller"]
    finally:
        await acd.stop()
        await engine.dispose()
        await store.close()


async def test_a_caller_queued_a_moment_before_the_kill_is_resumed_from_its_channel(tmp_path: Path) -> None:
    """The old leader queued the caller and died before its enqueue reached the event store: the ACD's mark
    on the channel (CTI_QUEUED) gives the new leader the caller's queue, tier and place."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'ev.db'}"
    await migrate(url)
    engine = make_engine(url)
    clock = SystemClock()
    old, old_log = runtime({"1001": {"billing": 5}})
    first = FakeChannel(hangup_after_s=0.3)  # the old leader's session: dies (as the kill ends it)
    old.login("1001", ready=False)  # staffed, on a break: the caller waits
    await old.serve_caller(first, "lost", "billing", "vip", "13800000009", None)
    mark = first.variables["CTI_QUEUED"]
    queued = next(e for e in old_log if e.kind == Kind.ACD_ENQUEUE)
    assert mark == f"billing|vip|{queued.ts:.3f}|{old.cfg.default_language}"

    acd, log = runtime({"1001": {"billing": 5}})
    await acd.start()
    takeover = Takeover(Status(), lambda: True, acd, lambda: engine, clock.now, log.append,
                        live_calls=lambda: {"lost"}, resynced=lambda: asyncio.sleep(0), park_s=30.0)
    handled: list[str] = []

    async def ivr(chan: Any) -> None:
        handled.append(chan.variables["CHANNEL(linkedid)"])

    agents = {"1001": Agent(talk_s=0.01)}
    back = FakeChannel(agents=agents, variables={"CHANNEL(linkedid)": "lost", "CTI_RESUME": "2",
                                                 "CTI_QUEUED": mark})
    try:
        acd.login("1001", ready=True)
        await asyncio.wait_for(takeover.gate(ivr, resumable=True)(back), 10)
    finally:
        await acd.stop()
        await engine.dispose()
    assert handled == []  # not walked through the IVR again
    (resumed,) = [e for e in log if e.kind == Kind.ACD_ENQUEUE]
    assert (resumed.tier, resumed.queue, resumed.data["resumed"]) == ("vip", "billing", True)
    (answered,) = [e for e in log if e.kind == Kind.ACD_ANSWER]
    assert answered.data["wait_s"] >= 0.3  # the wait counts from the old leader's enqueue
    assert back.variables["CTI_DONE"] == "1" and back.variables["CTI_QUEUED"] == ""  # done: no place left


async def test_callers_back_while_a_new_term_gathers_them_wait_and_go_on_in_their_order(tmp_path: Path) -> None:
    """With the takeover at once, the node can lead before the callers' sessions are back: a session that
    comes back while the term is still listing Asterisk and reading the log is parked, not resumed in the
    order it happened to arrive in."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'ev.db'}"
    await migrate(url)
    store = EventStore(url, journal_path=tmp_path / "journal.jsonl")
    await store.start()
    clock = SystemClock()
    t0 = clock.now() - 60
    for i, (call, tier) in enumerate((("n1", "normal"), ("n2", "normal"), ("v", "vip"))):
        store.append(Event(Kind.ACD_ENQUEUE, t0 + i, call_id=call, queue="billing", tier=tier,
                           data={"caller": f"1380000000{i}", "position": i + 1}))
    await store.flush()
    engine = make_engine(url)
    acd, log = runtime({"1001": {"billing": 5}})
    await acd.start()
    listed = asyncio.Event()  # Asterisk's listing of the new term: held until the sessions are back

    async def resynced() -> None:
        await listed.wait()

    takeover = Takeover(Status(), lambda: True, acd, lambda: engine, clock.now, log.append,
                        live_calls=lambda: {"n1", "n2", "v"}, resynced=resynced, park_s=30.0)

    async def ivr(chan: Any) -> None:
        raise AssertionError("a waiting caller walked the IVR again")

    gate = takeover.gate(ivr, resumable=True)
    agents = {"1001": Agent(talk_s=0.01)}
    try:
        acd.login("1001", ready=True)
        async with takeover.term():  # leading, the term begun: Asterisk not listed yet
            channels = [FakeChannel(agents=agents, variables={"CHANNEL(linkedid)": c, "CTI_RESUME": "2"})
                        for c in ("n2", "v", "n1")]
            sessions = [asyncio.ensure_future(gate(ch)) for ch in channels]
            while len(takeover._parked) < 3:
                await asyncio.wait_for(takeover._arrived.wait(), 10)
                takeover._arrived.clear()
            listed.set()
            await asyncio.wait_for(asyncio.gather(*sessions), 30)
        assert [e.call_id for e in log if e.kind == Kind.ACD_ENQUEUE] == ["v", "n1", "n2"]
    finally:
        await acd.stop()
        await engine.dispose()
        await store.close()
