"""ACD callbacks on the live server: the ACD's hooks in, AMI Originate and FastAGI out.

    ACD ScheduleCallback ──▶ row (pending; a kept place: queued, already in the ACD)
    plan (windows, room)  ──▶ engine.enqueue_callback: waits for an agent with its place
    ACD Offer(callback)   ──▶ Originate the agent's phone ─answer─▶ dialplan [acd-callback]
                              ─AGI /callback─▶ whisper, Dial the customer, report
    OriginateResponse failure (agent did not answer) ──▶ RONA; the callback keeps its place
    the customer redialled (ACD CancelCallback) ──▶ cancelled

Everything is handled in order by one task (the hooks only post to its inbox), so
the durable row and the engine never disagree for long; every change of a row is a
compare-and-set on its status. The rules (windows, retries) are in `callbacks.py`.
If the CTI dies, the dialplan still dials the customer for an agent who answered;
on restart, rows that were queued are queued again with their place, and a try
that was under way counts as `lost` (one try spent, never a second call at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from ..acd.model import AcdError, CancelCallback, Offer, QueueClosed, ScheduleCallback, UnknownSkill, UnknownTier
from ..agi.channel import AgiChannel, AgiError, AgiHangup
from ..clock import Clock
from ..events import Event, Kind
from ..fencing import NO_CLAIMS, Claims
from ..lifecycle import TaskOwner
from ..numbers import NumberError, normalise_number
from ..outbound.model import OutboundConfig, TimeRange
from .agentleg import Say, dial_customer, originate_agent_leg, set_done
from .rules import (
    AGENT_RING_REASONS,
    CallbackRules,
    CallbackStatus,
    gives_way_to_lists,
)
from .satisfaction import add_workorder_callback
from .store import CallbackRow, CallbackStore

log = logging.getLogger(__name__)

CAMPAIGN = "acd-callback"  # the name callbacks carry in outbound events (and so in the outbound KPIs)
OFFERED = "offered"


class _Ami(Protocol):
    async def action(self, name: str, fields: Mapping[str, Any] | None = None, /) -> Any: ...


class AcdLike(Protocol):
    """What we need of `AcdRuntime`."""

    @property
    def engine(self) -> Any: ...
    @property
    def cfg(self) -> Any: ...
    def apply(self, fn: Callable[[float], list[Any]]) -> list[Any]: ...
    def callback_answered(self, call_id: str) -> list[Any]: ...
    def callback_failed(self, call_id: str, reason: str = "noanswer") -> list[Any]: ...
    def callback_ended(self, call_id: str, outcome: str | None = None) -> list[Any]: ...




@dataclass(frozen=True, slots=True)
class _Ring:
    call_id: str  # the engine's id of the callback
    agent_id: str
    row_id: int
    number: str = ""
    skill: str = ""
    tier: str = ""


class AcdCallbackService:
    def __init__(self, cfg: OutboundConfig, store: CallbackStore, acd: AcdLike, client: _Ami, clock: Clock,
                 emit: Callable[[Event], None], *, server_name: str, say: Say | None = None,
                 listed: Callable[[Sequence[str]], Awaitable[Mapping[str, str]]] | None = None,
                 agi: str | None = None, claims: Claims = NO_CLAIMS,
                 agent_servers: Mapping[str, _Ami] | None = None) -> None:
        """`client` (server `server_name`) rings the agents; with `agent_servers` (server name -> its AMI) an
        agent whose phone is on one of them is rung there (its own server: no trunk in the agent's leg, and
        callbacks spread over the servers as the agents do; a server that is down has its agents not ready,
        so none of them is offered a callback)."""
        self.cfg = cfg
        self.policy = cfg.acd_callbacks
        self.rules = CallbackRules(self.policy, calendar=cfg.calendar,
                                   quiet=tuple(TimeRange.parse(r) for r in cfg.quiet_hours.default))
        self.store = store
        self.acd = acd
        self.client = client
        self.clock = clock
        self.emit = emit
        self.server_name = server_name
        self.agent_servers = dict(agent_servers or {})
        self.say = say
        self.listed = listed  # which of these numbers are on the do-not-call list or blacklist now
        self.agi = agi  # "host:port" of our FastAGI, so the agent's leg comes back to us (else the global)
        self.prefix = f"cb-{secrets.token_hex(3)}-"  # our agent-leg ChannelIds (unique per process)
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._by_call: dict[str, tuple[int, float]] = {}  # engine call id -> (row id, due), queued or dialing
        self._rings: dict[str, _Ring] = {}  # agent-leg channel id -> ring, until answered or failed
        self._by_action: dict[str, str] = {}  # "<server>:<Originate ActionID>" -> channel id
        self._answered: set[str] = set()  # agent legs whose customer answered (AMI DialEnd)
        self._seq = 0
        self._deferred: list[tuple[str, Any]] = []  # schedule/cancel that met a database outage
        self._retry_at = 0.0
        self._tasks = TaskOwner("ACD callbacks")
        self._wake = asyncio.Event()
        self._planning = asyncio.Lock()  # one plan_round at a time
        self.last_plan: Any = None
        self._recovered = False  # recover() went through (it waits for the database at start)
        # HA fencing (ctiserver/fencing.py): each agent leg's Originate claimed under the leader's epoch first
        self.claims = claims

    # --- the ACD's hooks and the AMI listener: plain, never block ------------------------------

    def on_callback(self, cmd: ScheduleCallback) -> None:
        self._post("schedule", cmd)

    def on_callback_offer(self, offer: Offer) -> None:
        self._post("offer", offer)

    def on_callback_cancel(self, cmd: CancelCallback) -> None:
        self._post("cancel", cmd)

    def on_ami_event(self, server: str, msg: Any) -> None:
        if server != self.server_name and server not in self.agent_servers:
            return
        event = msg.get("Event")
        if event == "OriginateResponse":
            channel = str(msg.get("Uniqueid") or msg.get("ChannelId") or "")
            if not channel.startswith(self.prefix):
                channel = self._by_action.get(f"{server}:{msg.get('ActionID') or ''}", "")
            if channel and str(msg.get("Response") or "").lower() != "success":
                self._post("ring_failed", (channel, AGENT_RING_REASONS.get(str(msg.get("Reason") or ""),
                                                                           "chanunavail")))
        elif event == "DialEnd" and str(msg.get("DialStatus") or "").upper() == "ANSWER":
            channel = str(msg.get("Uniqueid") or "")
            if channel.startswith(self.prefix):
                self._answered.add(channel)

    def _post(self, what: str, item: Any) -> None:
        self._inbox.put_nowait((what, item))
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Recover what a previous run left, then run. With the database away the recovery is left to the
        loop, which retries it before anything else: the server starts and waits for the database."""
        try:
            await self.recover()
            self._recovered = True
        except (SQLAlchemyError, OSError) as exc:
            log.warning("ACD callbacks: cannot recover the callbacks under way yet (%s); retrying", exc)
        self._tasks.spawn(self._run(), name="acd-callbacks")

    async def stop(self) -> None:
        """The round under way, and what was posted before the stop, are handled first (up to 5 s)."""
        await self._tasks.aclose(grace_s=5.0)

    async def recover(self) -> None:
        """After a (re)start: a try under way is `lost` (one try spent); queued rows queue again."""
        now = self.clock.now()
        for row in await self.store.with_status(CallbackStatus.DIALING):
            await self._close_try(row, "lost", row.channel_id or f"{self.prefix}lost-{row.id}", now)
        for row in await self.store.with_status(CallbackStatus.QUEUED):
            await self.store.requeue(row.id, now)

    async def _run(self) -> None:
        deadline: float | None = None
        while True:
            try:
                if not self._recovered:
                    await self.recover()
                    self._recovered = True
                self._take_back_deferred()
                while not self._inbox.empty():
                    await self._handle(*self._inbox.get_nowait())
                deadline = await self.plan_round()
                if self._deferred:
                    deadline = min(deadline or math.inf, self._retry_at)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ACD callback round failed; retrying")
                deadline = self.clock.now() + self.cfg.poll_s
            now = self.clock.now()
            wait = self.cfg.poll_s * 5 if deadline is None else max(0.01, min(deadline - now, self.cfg.poll_s * 5))
            if self._inbox.empty() and not await self._tasks.idle(wait, self._wake):
                return  # stopping, with everything posted so far handled
            self._wake.clear()

    async def drain(self) -> None:
        """Handle everything posted so far and plan once (tests; the loop does this by itself)."""
        self._take_back_deferred()
        while True:
            while not self._inbox.empty():
                await self._handle(*self._inbox.get_nowait())
            try:
                await self.plan_round()
            except (SQLAlchemyError, OSError) as exc:  # as the loop does: plan again next round
                log.warning("ACD callback round failed: %s", exc)
            if self._inbox.empty():
                return

    async def _handle(self, what: str, item: Any) -> None:
        try:
            if what == "schedule":
                await self._schedule(item)
            elif what == "offer":
                await self._offer(item)
            elif what == "cancel":
                await self._cancel(item)
            elif what == "ring_failed":
                self._ring_failed(*item)
        except (SQLAlchemyError, OSError) as exc:
            if what in ("schedule", "cancel"):  # the database is away: keep it and try again, lose nothing
                log.warning("ACD callback: %s for call %s deferred: %s", what, item.call_id, exc)
                self._deferred.append((what, item))
                self._retry_at = self.clock.now() + 2.0
            else:
                log.exception("ACD callback: %s %r failed", what, item)
        except Exception:
            log.exception("ACD callback: %s %r failed", what, item)

    def _take_back_deferred(self) -> None:
        """Items deferred while the database was away go first again, in their order, once it is time."""
        if self._deferred and self.clock.now() >= self._retry_at:
            later = [self._inbox.get_nowait() for _ in range(self._inbox.qsize())]
            for entry in [*self._deferred, *later]:
                self._inbox.put_nowait(entry)
            self._deferred.clear()

    # --- scheduling -----------------------------------------------------------------------------

    async def _schedule(self, cmd: ScheduleCallback) -> None:
        now = self.clock.now()
        in_place = cmd.reason == "in_place"
        try:
            number = normalise_number(cmd.number)
        except NumberError as exc:
            log.warning("call %s: no callback: %s", cmd.call_id, exc)
            if in_place:
                self._withdraw(cmd.call_id, "callback_bad_number")
            return
        if not self.policy.enabled and not in_place:
            log.info("call %s: automatic callbacks are off (acd_callbacks.enabled)", cmd.call_id)
            return
        if gives_way_to_lists(cmd.reason, self.policy.skip_dnc) and self.listed is not None \
                and number in await self.listed([number]):
            log.info("call %s: no automatic callback to a do-not-call number", cmd.call_id)
            return
        status = CallbackStatus.QUEUED if in_place else CallbackStatus.PENDING
        kw: dict[str, Any] = {"origin_call": cmd.call_id, "number": number, "skill": cmd.skill, "tier": cmd.tier,
                              "reason": cmd.reason[:24], "customer": cmd.customer, "status": status, "now": now,
                              "due_ts": cmd.due_ts, "place_ts": cmd.place_ts,
                              "engine_call": cmd.call_id if in_place else None,
                              "recording": cmd.recording[:200]}
        row_id = await self.store.add(**kw)
        if row_id is None:
            existing = await self.store.open_for(number)
            if in_place and existing is not None and existing.status != CallbackStatus.DIALING:
                # the customer asked again, waiting in the queue: the newer request (with its place) wins
                await self._cancel_row(existing, "superseded", now)
                row_id = await self.store.add(**kw)
            if row_id is None:
                log.info("call %s: %s already has an open callback", cmd.call_id, number)
                if in_place:
                    self._withdraw(cmd.call_id, "callback_duplicate")
                return
        if in_place:
            self._by_call[cmd.call_id] = (row_id, cmd.due_ts)
        self._wake.set()

    async def add_workorder(self, *, workorder_id: int, number: str, category: str, account: str | None,
                            customer_class: str) -> bool:
        """A satisfaction callback (回访) after a closed work order (see satisfaction.py `add_workorder_callback`)."""
        added = await add_workorder_callback(self.store, self.cfg, self.clock, self.emit, workorder_id=workorder_id,
                                             number=number, category=category, account=account,
                                             customer_class=customer_class)
        if added:
            self._wake.set()
        return added

    async def plan_round(self) -> float | None:
        """Hand due callbacks to the ACD; expire the ones past due. Returns the next deadline.

        One round at a time: two at once (the loop's and a drain's) both read a row as pending and both
        queued it in the ACD, which refused the second as a duplicate call."""
        async with self._planning:
            return await self._plan_round()

    async def _plan_round(self) -> float | None:
        now = self.clock.now()
        pending = await self.store.with_status(CallbackStatus.PENDING)
        rows = {r.id: r for r in pending}
        engine = self.acd.engine
        in_acd = sum(1 for call in self._by_call if engine.call_state(call) in ("waiting", OFFERED))

        def queue_open(skill: str) -> bool:
            try:
                return bool(engine.queue_open(skill, now))
            except UnknownSkill:
                return True  # let the enqueue below close it with a clear reason

        listed = await self.listed(sorted({r.number for r in pending if r.reason != "in_place"})) \
            if self.listed is not None else {}
        plan = self.rules.plan(now, [r.view() for r in pending], in_acd, queue_open, listed)
        self.last_plan = plan
        for cb_id, on_list in plan.exclude:
            row = rows[cb_id]
            if await self.store.close(cb_id, CallbackStatus.CANCELLED, now, outcome=on_list,
                                      expect=(CallbackStatus.PENDING,)):
                log.info("callback %s to %s given up: the number is on the %s", cb_id, row.number,
                         "do-not-call list" if on_list == "dnc" else on_list)
                self._ended(row, CallbackStatus.CANCELLED, on_list, now)
        for cb_id in plan.expire:
            row = rows[cb_id]
            if await self.store.close(cb_id, CallbackStatus.EXPIRED, now, expect=(CallbackStatus.PENDING,)):
                self._ended(row, CallbackStatus.EXPIRED, row.last_outcome, now)
        for view in plan.queue:
            await self._enqueue(rows[view.id], now)
        # a callback still waiting for an agent when it falls due is given up as well
        for call_id, (cb_id, due) in list(self._by_call.items()):
            if now < due or engine.call_state(call_id) != "waiting":
                continue
            held = await self.store.get(cb_id)
            if held is not None and held.status == CallbackStatus.QUEUED \
                    and await self.store.close(cb_id, CallbackStatus.EXPIRED, now, expect=(CallbackStatus.QUEUED,)):
                self._by_call.pop(call_id, None)
                self._withdraw(call_id, "callback_expired")
                self._ended(held, CallbackStatus.EXPIRED, held.last_outcome, now)
        deadlines = [d for d in (plan.next_deadline, *(due for _, due in self._by_call.values()))
                     if d is not None and d > now]
        return min(deadlines) if deadlines else None

    async def _enqueue(self, row: CallbackRow, now: float) -> None:
        call_id = f"cb-{row.id}-{row.attempts + 1}"
        if not await self.store.mark_queued(row.id, call_id, now):
            return  # cancelled meanwhile
        self._by_call[call_id] = (row.id, row.due_ts)
        try:
            self.acd.apply(lambda t: self.acd.engine.enqueue_callback(
                call_id, row.skill, row.tier, row.number, t, place_ts=row.place_ts, customer=row.customer,
                reason=row.reason))
        except QueueClosed:
            self._by_call.pop(call_id, None)
            await self.store.requeue(row.id, now)
        except (UnknownSkill, UnknownTier) as exc:  # the config changed since it was scheduled
            self._by_call.pop(call_id, None)
            log.warning("callback %s cannot be queued: %s", row.id, exc)
            if await self.store.close(row.id, CallbackStatus.NOT_REACHED, now, outcome="config",
                                      expect=(CallbackStatus.QUEUED,)):
                self._ended(row, CallbackStatus.NOT_REACHED, "config", now)

    async def _cancel(self, cmd: CancelCallback) -> None:
        """The customer called again: the callback asked for by `cmd.call_id` (the call that gave up, or
        the callback's own id in the ACD) stands down."""
        now = self.clock.now()
        rows = await self.store.by_origin(cmd.call_id)
        held = self._by_call.get(cmd.call_id)
        if held is not None and all(r.id != held[0] for r in rows):
            row = await self.store.get(held[0])
            rows += [row] if row is not None else []
        for row in rows:
            if row.status in (CallbackStatus.PENDING, CallbackStatus.QUEUED):
                await self._cancel_row(row, cmd.reason, now)

    async def cancel(self, cb_id: int, reason: str = "supervisor") -> bool:
        """A supervisor withdraws a callback that is not being dialled yet."""
        row = await self.store.get(cb_id)
        if row is None or row.status not in (CallbackStatus.PENDING, CallbackStatus.QUEUED):
            return False
        return await self._cancel_row(row, reason, self.clock.now())

    async def _cancel_row(self, row: CallbackRow, reason: str, now: float) -> bool:
        if not await self.store.close(row.id, CallbackStatus.CANCELLED, now, outcome=reason[:16]):
            return False
        if row.engine_call is not None and self._by_call.pop(row.engine_call, None) is not None:
            self._withdraw(row.engine_call, f"callback_{reason}")
        self._ended(row, CallbackStatus.CANCELLED, reason, now)
        self._wake.set()
        return True

    def _withdraw(self, call_id: str, reason: str) -> None:
        if self.acd.engine.call_state(call_id) in ("waiting", OFFERED):
            with contextlib.suppress(AcdError):
                self.acd.apply(lambda t: self.acd.engine.withdraw(call_id, t, reason, target="none"))

    # --- ringing the agent ----------------------------------------------------------------------

    async def _on_list(self, row: CallbackRow) -> str | None:
        """The list (dnc / blacklist) this callback's number is on now, if that stops the callback."""
        if self.listed is None or not gives_way_to_lists(row.reason, self.policy.skip_dnc):
            return None
        return (await self.listed([row.number])).get(row.number)

    def _still_offered(self, call_id: str, agent_id: str) -> bool:
        engine = self.acd.engine
        return bool(engine.call_state(call_id) == OFFERED and engine.call_agent(call_id) == agent_id)

    async def _offer(self, offer: Offer) -> None:
        held = self._by_call.get(offer.call_id)
        if held is None:
            log.warning("ACD offered callback %s that we do not hold; withdrawing it", offer.call_id)
            self._withdraw(offer.call_id, "callback_unknown")
            return
        row_id = held[0]
        if not self._still_offered(offer.call_id, offer.agent_id):
            return  # stale: the ACD moved on while this waited in the inbox
        with contextlib.suppress(SQLAlchemyError, OSError):  # the database away: ring anyway, it is ours
            row = await self.store.get(row_id)
            if row is None or row.status != CallbackStatus.QUEUED:  # closed elsewhere (another process, a tool)
                self._by_call.pop(offer.call_id, None)
                self._withdraw(offer.call_id, "callback_closed")
                return
            on_list = await self._on_list(row)
            if on_list is not None:  # listed while it waited for an agent: no agent is rung for it
                self._by_call.pop(offer.call_id, None)
                self._withdraw(offer.call_id, f"callback_{on_list}")
                now = self.clock.now()
                if await self.store.close(row.id, CallbackStatus.CANCELLED, now, outcome=on_list,
                                          expect=(CallbackStatus.QUEUED,)):
                    self._ended(row, CallbackStatus.CANCELLED, on_list, now)
                return
        self._seq += 1
        channel = f"{self.prefix}{row_id}-{self._seq}"
        self._rings[channel] = _Ring(offer.call_id, offer.agent_id, row_id, offer.number or offer.caller,
                                     offer.skill, offer.tier)
        try:
            await self.claims.action("originate", channel)
        except Exception as exc:  # not the leader any more (or the database away): nobody is rung
            log.warning("callback %s: agent %s not rung: %s", row_id, offer.agent_id, exc)
            self._ring_failed(channel, "chanunavail")
            return
        self.acd.apply(lambda t: self.acd.engine.ring_started(offer.call_id, t))
        # marks the agent leg as an outbound call (KPIs count inbound calls only); not a try on the customer
        self.emit(Event(Kind.OUT_ATTEMPT, ts=self.clock.now(), call_id=channel, agent_id=offer.agent_id,
                        queue=offer.skill, tier=offer.tier,
                        data={"leg": "agent", "callback": row_id, "callback_of": offer.call_id}))
        fields = originate_agent_leg(self.cfg, self.policy, offer, self.acd.cfg.dial_string(offer.agent_id), row_id,
                                     channel, self.agi)
        server = self.acd.cfg.agent_servers.get(offer.agent_id, "")
        if server not in self.agent_servers:
            server = self.server_name
        client = self.agent_servers.get(server, self.client)
        try:
            reply = await asyncio.wait_for(client.action("Originate", fields), 10.0)
        except Exception as exc:
            log.warning("callback %s: Originate to agent %s failed: %s", row_id, offer.agent_id, exc)
            self._ring_failed(channel, "chanunavail")
            return
        action_id = reply.response.get("ActionID") if getattr(reply, "response", None) is not None else None
        if action_id:
            self._by_action[f"{server}:{action_id}"] = channel
            while len(self._by_action) > 4096:
                self._by_action.pop(next(iter(self._by_action)))
        if not reply.success:
            log.warning("callback %s: Originate to agent %s refused: %s", row_id, offer.agent_id, reply.message)
            self._ring_failed(channel, "chanunavail")

    def _ring_failed(self, channel: str, reason: str) -> None:
        ring = self._rings.pop(channel, None)
        if ring is not None and self._still_offered(ring.call_id, ring.agent_id):
            self.acd.callback_failed(ring.call_id, reason)

    # --- the agent answered: FastAGI /callback ----------------------------------------------------

    async def handle_agi(self, chan: AgiChannel) -> None:
        channel = chan.headers.get("agi_uniqueid", "")
        try:
            await self._talk(chan, channel)
        except (AgiHangup, AgiError) as exc:
            log.info("callback session %s ended: %s", channel, exc)

    async def _talk(self, chan: AgiChannel, channel: str) -> None:
        ring = self._rings.pop(channel, None)
        if ring is None or not self._still_offered(ring.call_id, ring.agent_id):
            # the ACD gave up on this ring (guard) or we restarted: the agent hears nothing and is released
            log.info("callback leg %s answered too late; hanging up", channel)
            await set_done(chan)
            return
        self.acd.callback_answered(ring.call_id)
        outcome = "agent_hangup"
        row: CallbackRow | None = None
        try:
            try:
                row = await self.store.get(ring.row_id)
                if row is None or not await self.store.mark_dialing(row.id, channel, ring.agent_id,
                                                                    self.clock.now()):
                    outcome = "cancelled"  # withdrawn while the agent's phone rang
                    await set_done(chan)
                    return
            except (SQLAlchemyError, OSError) as exc:
                # the agent is on the line: call the customer anyway; the try is written when we can
                log.warning("callback %s: the database is away (%s); dialling anyway", ring.row_id, exc)
            number = row.number if row is not None else ring.number
            self.emit(Event(Kind.OUT_ATTEMPT, ts=self.clock.now(), call_id=channel, agent_id=ring.agent_id,
                            queue=ring.skill, tier=ring.tier,
                            data={"campaign": CAMPAIGN, "contact": ring.row_id, "number": number,
                                  "attempt": (row.attempts + 1) if row is not None else None,
                                  "callback_of": ring.call_id, "reason": row.reason if row else None}))
            outcome = await dial_customer(chan, self.cfg, self.policy, self.say, self.clock, number,
                                          row.reason if row else "", row.recording if row else "", ring.skill,
                                          agent_id=ring.agent_id, answered=lambda: channel in self._answered)
        finally:
            self._answered.discard(channel)
            self._by_call.pop(ring.call_id, None)
            if self.acd.engine.call_state(ring.call_id) == "talking":
                self.acd.callback_ended(ring.call_id, outcome)
            if outcome != "cancelled":
                with contextlib.suppress(SQLAlchemyError, OSError):
                    fresh = await self.store.get(ring.row_id)
                    if fresh is not None:
                        await self._close_try(fresh, outcome, channel, self.clock.now())
            self._wake.set()
        await set_done(chan)

    async def _close_try(self, row: CallbackRow, outcome: str, channel: str, now: float) -> None:
        after = self.rules.after_try(row.attempts, outcome, now, row.due_ts)
        if not await self.store.finish_try(row.id, after.status, after.next_ts, outcome, now):
            return
        self.emit(Event(Kind.OUT_RESULT, ts=now, call_id=channel, agent_id=row.agent_id, queue=row.skill,
                        tier=row.tier, data={"campaign": CAMPAIGN, "contact": row.id, "outcome": outcome,
                                             "attempt": row.attempts, "status": after.status, "dtmf": ""}))
        if after.status != CallbackStatus.PENDING:
            self._ended(row, after.status, outcome, now)

    def _ended(self, row: CallbackRow, status: str, outcome: str | None, now: float) -> None:
        self.emit(Event(Kind.ACD_CALLBACK_END, ts=now, call_id=row.origin_call, queue=row.skill, tier=row.tier,
                        data={"status": status, "attempts": row.attempts, "outcome": outcome, "callback": row.id,
                              "number": row.number, "reason": row.reason}))
        if row.reason == "workorder" and row.origin_call.startswith("wo-"):  # a satisfaction callback (回访)
            self.emit(Event(Kind.WORKORDER_CALLBACK, ts=now,
                            data={"id": row.origin_call[3:], "action": "done" if status == CallbackStatus.DONE
                                  else "not_reached", "status": status, "mode": "agent", "callback": row.id}))
