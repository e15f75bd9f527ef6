"""Fencing in the features: two dialers that both believe they lead dial each contact once, by the real
leader; the ACD's ring is claimed before Dial and a fenced ring ends the caller's session."""

from __future__ import annotations

import asyncio
from functools import partial

from sqlalchemy import text

from ctiserver.clock import FakeClock
from ctiserver.events import Event
from ctiserver.fencing import NoClaims
from ctiserver.ha.pg import PgLease, claim
from ctiserver.outbound.dialer import Dialer
from ctiserver.outbound.scheduler import Scheduler
from ctiserver.outbound.store import OutboundStore
from ctiserver.store.engine import make_engine

from ..outbound.test_dialer import CFG, PEOPLE, START, FakeOriginator, answer_all, spec


async def test_two_dialers_that_both_believe_they_lead_dial_each_contact_once(ha_db: str) -> None:
    old_engine, new_engine = make_engine(ha_db), make_engine(ha_db)
    try:
        await PgLease(old_engine, "a", "", 3.0).attempt(None)  # a leads under epoch 1 ...
        async with old_engine.begin() as conn:  # ... its lease runs out (it was cut off) ...
            await conn.execute(text("UPDATE ha_lease SET expires_ts = 0"))
        await PgLease(new_engine, "b", "", 3.0).attempt(None)  # ... and b leads under epoch 2; a still believes
        clock = FakeClock(START)
        old_store, new_store = OutboundStore(old_engine), OutboundStore(new_engine)
        await new_store.create_campaign(spec(), clock.now())
        await new_store.add_contacts("notice", PEOPLE, clock.now())
        await new_store.change_state("notice", "start", clock.now())
        old_orig, new_orig = FakeOriginator(), FakeOriginator()
        events: list[Event] = []
        old = Dialer(old_store, Scheduler(CFG), old_orig, clock, events.append, config=CFG,
                     claim=partial(claim, node="a", epoch=1))
        new = Dialer(new_store, Scheduler(CFG), new_orig, clock, events.append, config=CFG,
                     claim=partial(claim, node="b", epoch=2))
        for _ in range(20):
            if len(new_orig.calls) >= len(PEOPLE):
                break
            await asyncio.gather(old.tick(), new.tick())
            for dialer, orig in ((old, old_orig), (new, new_orig)):
                answer_all(dialer, orig)
                await dialer.process_results()
            clock.jump(120)
        assert old_orig.calls == []  # the deposed leader dialled nobody
        numbers = [number for _, number, _ in new_orig.calls]
        assert sorted(numbers) == sorted(p.number for p in PEOPLE)  # each contact once (all answer at once)
        async with new_engine.connect() as conn:
            claimed = (await conn.execute(text("SELECT key, epoch, holder FROM ha_claims ORDER BY key"))).all()
        assert sorted(k for k, _, _ in claimed) == sorted(cid for cid, _, _ in new_orig.calls)
        assert {(e, h) for _, e, h in claimed} == {(2, "b")}
    finally:
        await old_engine.dispose()
        await new_engine.dispose()


async def test_a_dialer_starts_while_the_database_is_away_and_checks_its_attempts_once_it_is_back() -> None:
    from ..store.tcpproxy import TcpProxy

    async with TcpProxy("127.0.0.1", 5432) as proxy:
        await proxy.cut("refuse")
        engine = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{proxy.port}/postgres", connect_timeout_s=1.0)
        clock = FakeClock(START)
        dialer = Dialer(OutboundStore(engine), Scheduler(CFG), FakeOriginator(), clock, [].append, config=CFG)
        try:
            await dialer.start()  # used to raise: the server refused to start while PostgreSQL was away
            assert dialer._reconcile_all  # the loop checks the attempts in flight once it can
        finally:
            await dialer.stop()
            await engine.dispose()


async def test_a_fenced_ring_rings_nobody_and_the_caller_goes_to_the_next_node() -> None:
    from ctiserver.acd.resume import AcdRecord, waiting_callers
    from ctiserver.acd.session import Released
    from ctiserver.events import Kind
    from ctiserver.ha.pg import Fenced

    from ..acd.test_runtime import Agent, FakeChannel, runtime

    claims: list[tuple[str, str]] = []

    class Deposed(NoClaims):  # b no longer leads: every claim is refused
        async def this_term(self, kind: str, key: str) -> None:
            claims.append((kind, key))
            raise Fenced(f"{kind} {key}: not claimed, b does not hold the lease under epoch 1")

    acd, log = runtime({"1001": {"billing": 5}}, claims=Deposed())
    acd.login("1001", ready=True)
    chan = FakeChannel(agents={"1001": Agent()})
    try:
        await acd.serve(chan, "c1", "billing", "normal", "13800000001")
        raise AssertionError("a fenced ring must end the session")
    except Fenced:
        pass
    assert claims == [("ring", "c1/1001/1")]
    assert not [c for c in chan.commands if c.startswith("EXEC Dial")] and "CTI_DONE" not in chan.variables

    # a leader that stops leading hands its waiting callers on: still waiting, as the next node reads the log
    acd, log = runtime({"1001": {"billing": 5}}, release_on_stop=True)
    acd.login("1001", ready=False)  # staffed, nobody free: the caller waits
    await acd.start()
    chan = FakeChannel(agents={})
    session = asyncio.ensure_future(acd.serve(chan, "c2", "billing", "vip", "13800000002"))
    await asyncio.sleep(0)  # serve() queues the caller before it awaits anything
    assert acd.engine.call_state("c2") == "waiting"
    await acd.stop()
    try:
        await session
        raise AssertionError("a released caller's session must end without CTI_DONE")
    except Released:
        pass
    assert "CTI_DONE" not in chan.variables
    overflow = [e for e in log if e.kind == Kind.ACD_OVERFLOW]
    assert [(e.data["reason"], e.data["target"]) for e in overflow] == [("ha_released", "cti")]
    records = [AcdRecord(e.kind, e.ts, e.call_id or "", e.queue, e.tier, e.data) for e in log
               if e.kind in (Kind.ACD_ENQUEUE, Kind.ACD_OVERFLOW)]
    assert [w.call_id for w in waiting_callers(records)] == ["c2"]
