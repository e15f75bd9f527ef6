"""What a node does with FastAGI sessions and the event log as it leads or stands by (docs/ha.md).

    AGI session ─▶ gate:  leading ─────────────▶ resumed from the event log (CTI_RESUME and a waiting call)
                          │                      or the route's own handler (IVR, queue, transfer, ...)
                          standby, new call ───▶ ends at once (no CTI_DONE): the dialplan tries the next host
                          standby, CTI_RESUME ─▶ kept on music on hold until this node leads (then as above),
                                                 or until another node leads / nobody does in time (ends)

    a new term (the leader group's last feature):
        callers the log shows waiting and Asterisk still has ─▶ wait (a few s) for their sessions to come back,
        then resume them together in the engine's order (tier, then place); later ones are resumed one by one
        calls the log shows open but Asterisk no longer has ─▶ call.end (they ended while nobody led)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..acd.resume import QUEUED_VAR, RESUME_KINDS, AcdRecord, Waiting, from_mark, resume_order, waiting_callers
from ..agi.channel import get_variable, linked_id, resume_place
from ..events import Event, Kind
from ..lifecycle import TaskOwner
from ..lograte import LogBurst
from ..store.query import OPEN_CALLS_LOOKBACK_S, open_calls
from ..store.schema import events

log = logging.getLogger(__name__)

LOOKBACK_S = OPEN_CALLS_LOOKBACK_S  # how far back the log is read for waiting callers and open calls


class Chan(Protocol):
    headers: dict[str, str]

    @property
    def path(self) -> str: ...
    async def execute(self, command: str) -> Any: ...


Handler = Callable[[Any], Awaitable[None]]


class Role(Protocol):
    def status(self) -> dict[str, Any]: ...


async def read_waiting(engine: AsyncEngine, since: float, call_id: str | None = None) -> list[Waiting]:
    """The callers the event log shows waiting in the ACD (see ctiserver/acd/resume.py)."""
    e = events.c
    stmt = select(e.kind, e.ts, e.call_id, e.queue, e.tier, e.data).where(
        e.kind.in_(RESUME_KINDS), e.ts >= since, e.call_id.is_not(None))
    if call_id is not None:
        stmt = stmt.where(e.call_id == call_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(stmt.order_by(e.ts, e.id))).all()
    return waiting_callers(AcdRecord(str(r[0]), float(r[1]), str(r[2]), r[3], r[4],
                                     r[5] if isinstance(r[5], dict) else None) for r in rows)


class Takeover:
    """The HA gate on the AGI routes and the resume of a new term (see the module docstring)."""

    def __init__(self, leader: Role, leading: Callable[[], bool], acd: Any, engine: Callable[[], AsyncEngine],
                 now: Callable[[], float], emit: Callable[[Event], None], live_calls: Callable[[], set[str]],
                 resynced: Callable[[], Awaitable[None]], *, park_s: float = 8.0, window_s: float = 3.0) -> None:
        self.leader, self.leading, self.acd, self.engine = leader, leading, acd, engine
        self.now, self.emit, self.live_calls, self.resynced = now, emit, live_calls, resynced
        self.park_s, self.window_s = park_s, window_s
        self._parked: dict[str, asyncio.Future[bool]] = {}  # call id -> set when it may go on (True: leads)
        self._expected: dict[str, Waiting] = {}  # this term's waiting callers, not back yet
        self._released = True  # False while a new term waits for its callers to come back
        self._arrived = asyncio.Event()  # set when a session is parked (a new term waits for its callers)
        self._turns: dict[str, asyncio.Event] = {}  # a released caller's turn, over once it is queued again
        self.resumed_total = 0
        self._refused = LogBurst(log, "AGI session refused: this node is a standby; the dialplan tries the next")

    # --- the gate -------------------------------------------------------------------------------------------
    def gate(self, handler: Handler, *, resumable: bool) -> Handler:
        """`handler` behind the HA gate; `resumable`: a route a waiting caller comes back on (the IVR's)."""

        async def handle(chan: Any) -> None:
            resume = await resume_place(chan) if resumable else ""
            call_id = await linked_id(chan) or chan.headers.get("agi_uniqueid", "")
            # a resuming caller also waits while a new term gathers its callers: they go on in their order
            if not self.leading() or (resume and not self._released):
                if not resume:
                    self._refused.add(f"{chan.path} {call_id}")
                    return
                parked = await self._park(chan, call_id)
                turn = self._turns.pop(call_id, None)
                if turn is not None:  # the new term waits for this caller's enqueue before the next one's
                    turn.set()  # observed only once this session suspends: after serve() queued it
                if not parked:
                    return
            if resume and resumable:
                waiting = await self._waiting(call_id) or await self._marked(chan, call_id)
                if waiting is not None:
                    await self._resume(chan, waiting)
                    return
            await handler(chan)

        return handle

    async def _park(self, chan: Chan, call_id: str) -> bool:
        """Hold a resuming caller until this node leads (True) or another node does / nobody in time (False)."""
        seen = self.leader.status().get("leader")
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._parked[call_id] = fut
        self._arrived.set()
        with contextlib.suppress(Exception):
            await chan.execute("EXEC StartMusicOnHold default")
        log.info("HA: caller %s kept on hold until a node leads", call_id)
        try:
            deadline = self.now() + self.park_s
            while not fut.done():
                if self.leading() and self._released:
                    return True
                st = self.leader.status()
                if st.get("leader") not in (None, seen, st.get("node")):
                    log.info("HA: %s leads: caller %s goes on down the dialplan's list", st.get("leader"), call_id)
                    return False
                left = deadline - self.now()
                if left <= 0:
                    log.warning("HA: nobody led within %g s: caller %s goes on down the list", self.park_s, call_id)
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(fut), min(left, 0.5))
            return fut.result()
        finally:
            self._parked.pop(call_id, None)

    async def _waiting(self, call_id: str) -> Waiting | None:
        w = self._expected.pop(call_id, None)
        if w is not None:
            return w
        try:
            found = await read_waiting(self.engine(), self.now() - LOOKBACK_S, call_id)
        except Exception as exc:
            log.warning("HA: cannot read whether caller %s was waiting (%s): walking the IVR again", call_id, exc)
            return None
        return found[0] if found else None

    async def _marked(self, chan: Chan, call_id: str) -> Waiting | None:
        """The caller's place as the ACD wrote it on the channel (acd/resume.py queued_mark): a caller queued
        a moment before the old leader died, whose enqueue never reached the event store."""
        try:
            mark = await get_variable(chan, QUEUED_VAR)
        except Exception:
            return None
        cfg = self.acd.cfg
        w = from_mark(call_id, chan.headers.get("agi_callerid", ""), mark, cfg.skills, [t.name for t in cfg.tiers])
        if w is not None:
            log.info("HA: caller %s is not in the event log; its channel says it was queued (%s/%s)", call_id,
                     w.skill, w.tier)
        return w

    async def _resume(self, chan: Chan, w: Waiting) -> None:
        self.resumed_total += 1
        caller = chan.headers.get("agi_callerid", "") or w.caller
        served = await self.acd.serve(chan, w.call_id, w.skill, w.tier, caller, None, lang=w.lang, since=w.since)
        log.info("HA: resumed caller %s (%s/%s, queued %.1f s before): %s", w.call_id, w.skill, w.tier,
                 self.now() - w.since, served.outcome)

    # --- a new term -----------------------------------------------------------------------------------------
    async def _begin_term(self) -> None:
        began = self.now()
        try:  # Asterisk listed afresh and the log read at once: the log's rows do not depend on the listing
            since = began - LOOKBACK_S
            _, logged, still_open = await asyncio.gather(self.resynced(), read_waiting(self.engine(), since),
                                                         open_calls(self.engine(), since))
            live = self.live_calls()
            waiting = [w for w in logged if w.call_id in live]
            await self._close_ended(still_open, live)
        except Exception as exc:
            log.warning("HA: could not read the waiting callers from the event log (%s)", exc)
            waiting = []
        read = self.now()
        self._expected = {w.call_id: w for w in waiting}
        deadline = self.now() + self.window_s
        while set(self._expected) - set(self._parked) and self.now() < deadline:
            self._arrived.clear()  # sessions come back within a second or two of the takeover
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), max(0.0, deadline - self.now()))
        rank = {t.name: i for i, t in enumerate(self.acd.cfg.tiers)}
        back = [self._expected[c] for c in self._parked if c in self._expected]
        log.info("HA: %d caller(s) were waiting; %d came back in time, resumed in their order (Asterisk listed "
                 "and the log read in %.2f s, sessions back %.2f s later)", len(waiting), len(back), read - began,
                 self.now() - read)
        for w in resume_order(back, rank):  # one by one: each is queued before the next is released (the
            fut = self._parked.get(w.call_id)  # order sessions wake up in is not theirs to decide)
            if fut is not None and not fut.done():
                turn = self._turns[w.call_id] = asyncio.Event()
                fut.set_result(True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(turn.wait(), 2.0)
        self._released = True  # only now: a parked session polling on its own must not jump the order
        for fut in list(self._parked.values()):  # resuming callers the log did not show waiting
            if not fut.done():
                fut.set_result(True)

    async def _close_ended(self, open_calls: dict[str, str | None], live: Iterable[str]) -> None:
        gone = sorted(set(open_calls) - set(live))
        now = self.now()
        for call_id in gone:
            self.emit(Event(kind=Kind.CALL_END, ts=now, call_id=call_id, server=open_calls[call_id],
                            data={"reason": "ended while no CTI was leading", "resynced": True}))
        if gone:
            log.info("HA: %d call(s) ended while no CTI was leading: call.end recorded", len(gone))

    @asynccontextmanager
    async def term(self) -> AsyncIterator[Takeover]:
        """The feature (last of the leader group): resume this term's callers, close what ended meanwhile."""
        self._released = False
        async with TaskOwner("HA takeover") as tasks:
            tasks.spawn(self._begin_term(), name="ha-begin-term")
            try:
                yield self
            finally:
                self._released = True
                self._expected = {}
