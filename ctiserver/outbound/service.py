"""Outbound inside the running server: one object the wiring attaches, with its lifetime.

`Outbound` is the feature the wiring adds: at start it builds the store on the event
store's engine, the AMI originator on the configured Asterisk, the outcome reader and
the dialer (and the ACD callbacks); AMI events feed outcomes, an `ami.connected` event
triggers a full reconcile, and its stop stops the dialer and the callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..acd.model import CancelCallback, Offer, ScheduleCallback
from ..agi.channel import AgiChannel
from ..callbacks.satisfaction import add_workorder_callback, record_satisfaction_callback
from ..callbacks.service import AcdCallbackService, AcdLike, Say
from ..callbacks.store import CallbackStore
from ..clock import Clock
from ..events import Event, Kind
from ..fencing import NO_CLAIMS, Claims
from ..lifecycle import TaskOwner, started
from ..lograte import LogBurst
from .ami_originator import AmiActions, AmiOriginator
from .amimap import OutcomeReader
from .dialer import Dialer, Emit, PromptFn
from .model import OutboundConfig
from .pool import OriginatorPool, PoolMember
from .scheduler import Scheduler
from .store import Claim, OutboundStore

log = logging.getLogger(__name__)


class OutboundService:
    def __init__(self, cfg: OutboundConfig, engine: AsyncEngine, client: AmiActions, server_name: str,
                 clock: Clock, emit: Emit, *, prompt: PromptFn | None = None, store: OutboundStore | None = None,
                 agent_callbacks: AcdCallbackService | None = None, claim: Claim | None = None,
                 more_servers: Sequence[tuple[str, AmiActions]] = (),
                 max_channels: Mapping[str, int | None] | None = None) -> None:
        """Calls go out through `client` (server `server_name`); with `more_servers` they are spread over all
        of them within each one's `max_channels` (ctiserver/outbound/pool.py)."""
        self.cfg = cfg
        self.server_name = server_name
        self.store = store or OutboundStore(engine)
        self.originator = AmiOriginator(client, channel=cfg.dial.channel, caller_id=cfg.dial.caller_id)
        self.reader = OutcomeReader(self.originator.channel_for_action)
        self.readers = {server_name: self.reader}
        self.pool: OriginatorPool | None = None
        dialing: Any = self.originator
        if more_servers or max_channels:
            limits = max_channels or {}
            members = [PoolMember(server_name, self.originator, limits.get(server_name))]
            members += [PoolMember(name, AmiOriginator(c, channel=cfg.dial.channel, caller_id=cfg.dial.caller_id),
                                   limits.get(name)) for name, c in more_servers]
            self.pool = dialing = OriginatorPool(members)
            for m in members[1:]:
                self.readers[m.name] = OutcomeReader(m.originator.channel_for_action)
        self.dialer = Dialer(self.store, Scheduler(cfg), dialing, clock, emit, config=cfg,
                             prompt=prompt, claim=claim)
        self._tasks = TaskOwner("satisfaction callbacks")  # work orders being added as callbacks
        self._settle: asyncio.TimerHandle | None = None
        self.agent_callbacks = agent_callbacks  # work-order callbacks by agents (mode agent)

    def on_ami_event(self, server: str, msg: Any) -> None:
        """Plain function for the server's AMI listeners: cheap, never blocks."""
        reader = self.readers.get(server)
        if reader is None:
            return
        if self.pool is not None:
            self.pool.on_ami_event(server, msg)  # a call of ours ended there: room for the next
        now = self.dialer.clock.now()
        for r in [*reader.feed(msg, now), *reader.due(now)]:
            self.dialer.on_result(r.channel_id, r.outcome, r.dtmf, r.ended)
        self._arm_settle()

    def _arm_settle(self) -> None:
        """A pre-answer report waits for its partner (see amimap); release it if none comes in time."""
        deadlines = [d for d in (r.next_deadline() for r in self.readers.values()) if d is not None]
        if not deadlines or self._settle is not None:
            return
        delay = max(0.0, min(deadlines) - self.dialer.clock.now())
        self._settle = asyncio.get_running_loop().call_later(delay, self._release_due)

    def _release_due(self) -> None:
        self._settle = None
        for reader in self.readers.values():
            for r in reader.due(self.dialer.clock.now()):
                self.dialer.on_result(r.channel_id, r.outcome, r.dtmf, r.ended)
        self._arm_settle()

    def on_event(self, event: Event) -> None:
        reader = self.readers.get(event.server or "")
        if event.kind == Kind.AMI_CONNECTED and reader is not None:
            for r in reader.release_all():  # partners lost with the link
                self.dialer.on_result(r.channel_id, r.outcome, r.dtmf, r.ended)
            if self.pool is not None:  # calls of ours that server dropped while away free its room
                with contextlib.suppress(RuntimeError):  # stopping: nothing to count for
                    self._tasks.spawn(self.pool.recount(event.server or ""), name=f"outbound-recount-{event.server}")
            self.dialer.request_reconcile()

    async def start(self) -> None:
        await self.dialer.start()

    async def stop(self) -> None:
        if self._settle is not None:
            self._settle.cancel()
            self._settle = None
        await self._tasks.aclose(grace_s=5.0)  # work orders closed just before the stop are still queued
        await self.dialer.stop()

    def request_callback(self, *, workorder_id: int, number: str, category: str, account: str | None = None,
                         requested: bool = True, anonymous: bool = False, call_id: str | None = None,
                         agent_id: str | None = None) -> None:
        """The desktop's hook on every work-order closure (plain, non-blocking); `requested`: the agent
        ticked "callback". Whether the customer is called back is decided here (`callbacks` of
        outbound.yaml): complaints always, others when ticked and sampled."""
        self._tasks.spawn(self.add_callback(
            workorder_id=workorder_id, number=number, category=category, account=account, requested=requested,
            anonymous=anonymous, call_id=call_id, agent_id=agent_id), name=f"satisfaction-callback-{workorder_id}")

    async def add_callback(self, *, workorder_id: int, number: str, category: str, account: str | None = None,
                           requested: bool = True, anonymous: bool = False, call_id: str | None = None,
                           agent_id: str | None = None) -> bool:
        """Call a closed work order's customer back (see `record_satisfaction_callback`), now."""
        callbacks = self.agent_callbacks
        added = await record_satisfaction_callback(
            self.cfg, self.store, self.dialer.clock, self.dialer.emit,
            add_agent_callback=callbacks.add_workorder if callbacks is not None else None,
            workorder_id=workorder_id, number=number, category=category, account=account, requested=requested,
            anonymous=anonymous, call_id=call_id, agent_id=agent_id)
        if added and self.cfg.callbacks.mode != "agent":
            self.dialer.wake()
        return added

    async def status_all(self) -> list[dict[str, Any]]:
        """Every campaign's progress (for the API and the wallboard)."""
        now = self.dialer.clock.now()
        return [await self.store.status(c.name, self.cfg.calendar, now)
                for c in await self.store.campaigns()]


def _agi_address(server: Any) -> str | None:
    """Where Asterisk reaches our FastAGI, when the config names one address (not a wildcard)."""
    agi: Any = getattr(server.cfg, "agi", None)
    host = str(getattr(agi, "host", "") or "")
    if agi is None or not host or host in ("0.0.0.0", "::") or not getattr(agi, "port", 0):
        return None
    return f"{host}:{agi.port}"


class Outbound:
    """The outbound feature of a server: the campaign dialer and the ACD callbacks, with their lifetime.

    Built once by the wiring (which registers `on_ami_event`, `on_event`, the ACD's callback hooks and
    the `/callback` AGI route); `running(acd)` is the feature that builds and starts an `OutboundService`
    on the server's event store and AMI link (`dial.server`), and, given the ACD runtime, an
    `AcdCallbackService` fed by the ACD's hooks; it stops them on the way out. `service` and `callbacks`
    are the running objects, None while the feature is stopped (the HTTP API then answers 503). ACD
    callback hooks that fire while it is stopped are kept (up to `MAX_EARLY`) and handed to the next
    callbacks service when it starts.
    """

    MAX_EARLY = 10_000

    def __init__(self, server: Any, cfg: OutboundConfig, *, prompt: PromptFn | None = None,
                 say: Say | None = None, claims: Claims = NO_CLAIMS) -> None:
        self.server = server
        self.cfg = cfg
        self.prompt = prompt
        self.say = say
        self.service: OutboundService | None = None
        self.callbacks: AcdCallbackService | None = None
        # HA fencing (ctiserver/fencing.py): an attempt's claim inside its transaction, and a callback ring's
        # claim in a transaction of its own
        self.claims = claims
        self._early: list[tuple[str, Any]] = []  # ACD hooks that came while the callbacks were stopped
        self._early_lost = LogBurst(log, "ACD callback request lost: the callbacks are stopped and "
                                         f"{self.MAX_EARLY} requests wait already")

    # --- plain listeners and hooks (never block) --------------------------------------------------
    def on_ami_event(self, server: str, msg: Any) -> None:
        if self.service is not None:
            self.service.on_ami_event(server, msg)
        if self.callbacks is not None:
            self.callbacks.on_ami_event(server, msg)

    def on_event(self, event: Event) -> None:
        if self.service is not None:
            self.service.on_event(event)

    def on_callback(self, cmd: ScheduleCallback) -> None:
        self._to_callbacks("on_callback", cmd)

    def on_callback_offer(self, offer: Offer) -> None:
        self._to_callbacks("on_callback_offer", offer)

    def on_callback_cancel(self, cmd: CancelCallback) -> None:
        self._to_callbacks("on_callback_cancel", cmd)

    def _to_callbacks(self, hook: str, item: Any) -> None:
        if self.callbacks is not None:
            getattr(self.callbacks, hook)(item)
        elif len(self._early) < self.MAX_EARLY:
            self._early.append((hook, item))
        else:
            self._early_lost.add(f"{hook} {getattr(item, 'call_id', '')}")

    async def request_callback(self, **kw: Any) -> None:
        """The desktop's door on every work-order closure: the callback is recorded before the desktop is
        answered. With the dialer running here it is added at once; where it is stopped (a standby, a leader
        between terms) the rows are written all the same and the running dialer and callbacks find them."""
        svc = self.service
        try:
            if svc is not None and (self.cfg.callbacks.mode != "agent" or svc.agent_callbacks is not None):
                await svc.add_callback(**kw)
                return
            engine, clock, emit = self.server.store.engine, self.server.clock, self.server.emit
            cb_store = CallbackStore(engine)

            async def add_agent_callback(**a: Any) -> bool:
                return await add_workorder_callback(cb_store, self.cfg, clock, emit, **a)

            await record_satisfaction_callback(self.cfg, OutboundStore(engine), clock, emit,
                                               add_agent_callback=add_agent_callback, **kw)
        except (SQLAlchemyError, OSError) as exc:
            log.error("work order %s is closed, but its satisfaction callback could not be recorded: %s",
                      kw.get("workorder_id"), exc)

    async def handle_agi(self, chan: AgiChannel) -> None:
        """AGI /callback: an agent answered a callback's ring (the dialplan dials the customer itself if
        the callbacks are not running)."""
        if self.callbacks is None:
            log.warning("callback leg %s answered but ACD callbacks are not running",
                        chan.headers.get("agi_uniqueid", ""))
            return
        await self.callbacks.handle_agi(chan)

    # --- the feature ---------------------------------------------------------------------------------
    def running(self, acd: AcdLike | None = None) -> AbstractAsyncContextManager[Outbound]:
        return self._running(acd)

    @asynccontextmanager
    async def _running(self, acd: AcdLike | None) -> AsyncIterator[Outbound]:
        server = self.server
        spread = self.cfg.dial.servers
        name = spread[0].name if spread else self.cfg.dial.server or server.cfg.asterisk[0].name
        for n in [name, *(d.name for d in spread)]:
            if n not in server.ami:
                raise RuntimeError(f"outbound.yaml dial.server(s) {n!r} is not an Asterisk in ctiserver.yaml")
        client, engine = server.ami[name], server.store.engine
        store = OutboundStore(engine)
        callbacks = None
        if acd is not None:
            # several servers: each agent's callback leg rings on the agent's own server
            homes = {s for s in acd.cfg.agent_servers.values() if s in server.ami} if len(server.ami) > 1 else set()
            callbacks = AcdCallbackService(self.cfg, CallbackStore(engine), acd, client, server.clock, server.emit,
                                           server_name=name, say=self.say, listed=store.listed,
                                           agi=_agi_address(server), claims=self.claims,
                                           agent_servers={s: server.ami[s] for s in sorted(homes)})
        svc = OutboundService(self.cfg, engine, client, name, server.clock, server.emit, prompt=self.prompt,
                              store=store, agent_callbacks=callbacks, claim=self.claims.in_transaction,
                              more_servers=[(d.name, server.ami[d.name]) for d in spread[1:]],
                              max_channels={d.name: d.max_channels for d in spread})
        try:
            async with AsyncExitStack() as stack:
                self.service = svc
                await stack.enter_async_context(started(svc))
                log.info("outbound dialer started on %s", ", ".join(d.name for d in spread) if spread else name)
                if callbacks is not None:
                    self.callbacks = callbacks
                    await stack.enter_async_context(started(callbacks))
                    early, self._early = self._early, []
                    for hook, item in early:
                        getattr(callbacks, hook)(item)
                yield self
                self.service = self.callbacks = None  # nothing new reaches them while they stop
        finally:
            self.service = self.callbacks = None
