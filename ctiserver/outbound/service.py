"""Outbound inside the running server: one object the wiring attaches, with its lifetime.

`attach_outbound(server)` loads `outbound.yaml`, and at server start builds the
store on the event store's engine, the AMI originator on the configured Asterisk,
the outcome reader and the dialer; AMI events feed outcomes, an `ami.connected`
event triggers a full reconcile, and server stop stops the dialer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..calendar import Calendar
from ..clock import Clock
from ..events import Event, Kind
from ..numbers import normalise_number
from ..store.schema import events
from .ami_originator import AmiActions, AmiOriginator
from .amimap import OutcomeReader
from .callback_service import AcdCallbackService, Say
from .callback_store import CallbackStore
from .customers import customer_class
from .dialer import Dialer, Emit, PromptFn
from .model import ContactIn, OutboundConfig, load_outbound_config
from .scheduler import Scheduler
from .store import OutboundStore

log = logging.getLogger(__name__)


class OutboundService:
    def __init__(self, cfg: OutboundConfig, engine: AsyncEngine, client: AmiActions, server_name: str,
                 clock: Clock, emit: Emit, *, prompt: PromptFn | None = None) -> None:
        self.cfg = cfg
        self.server_name = server_name
        self.store = OutboundStore(engine)
        self.originator = AmiOriginator(client, channel=cfg.dial.channel, caller_id=cfg.dial.caller_id)
        self.reader = OutcomeReader(self.originator.channel_for_action)
        self.dialer = Dialer(self.store, Scheduler(cfg), self.originator, clock, emit, config=cfg,
                             prompt=prompt)
        self._tasks: set[asyncio.Task[bool]] = set()
        self._settle: asyncio.TimerHandle | None = None
        self.agent_callbacks: AcdCallbackService | None = None  # work-order callbacks by agents (mode agent)

    def on_ami_event(self, server: str, msg: Any) -> None:
        """Plain function for the server's AMI listeners: cheap, never blocks."""
        if server != self.server_name:
            return
        now = self.dialer.clock.now()
        for r in [*self.reader.feed(msg, now), *self.reader.due(now)]:
            self.dialer.on_result(r.channel_id, r.outcome, r.dtmf, r.ended)
        self._arm_settle()

    def _arm_settle(self) -> None:
        """A pre-answer report waits for its partner (see amimap); release it if none comes in time."""
        deadline = self.reader.next_deadline()
        if deadline is None or self._settle is not None:
            return
        delay = max(0.0, deadline - self.dialer.clock.now())
        self._settle = asyncio.get_running_loop().call_later(delay, self._release_due)

    def _release_due(self) -> None:
        self._settle = None
        for r in self.reader.due(self.dialer.clock.now()):
            self.dialer.on_result(r.channel_id, r.outcome, r.dtmf, r.ended)
        self._arm_settle()

    def on_event(self, event: Event) -> None:
        if event.kind == Kind.AMI_CONNECTED and event.server == self.server_name:
            for r in self.reader.release_all():  # partners lost with the link
                self.dialer.on_result(r.channel_id, r.outcome, r.dtmf, r.ended)
            self.dialer.request_reconcile()

    async def start(self) -> None:
        await self.dialer.start()

    async def stop(self) -> None:
        if self._settle is not None:
            self._settle.cancel()
            self._settle = None
        await self.dialer.stop()

    def request_callback(self, *, workorder_id: int, number: str, category: str, account: str | None = None,
                         requested: bool = True, anonymous: bool = False, call_id: str | None = None,
                         agent_id: str | None = None) -> None:
        """The desktop's hook on every work-order closure (plain, non-blocking); `requested`: the agent
        ticked "callback". Whether the customer is called back is decided here (`callbacks` of
        outbound.yaml): complaints always, others when ticked and sampled."""
        task = asyncio.get_running_loop().create_task(self.add_callback(
            workorder_id=workorder_id, number=number, category=category, account=account, requested=requested,
            anonymous=anonymous, call_id=call_id, agent_id=agent_id))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[bool]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("satisfaction callback not queued: %s", task.exception())

    async def add_callback(self, *, workorder_id: int, number: str, category: str, account: str | None = None,
                           requested: bool = True, anonymous: bool = False, call_id: str | None = None,
                           agent_id: str | None = None) -> bool:
        """Call a closed work order's customer back: by an agent through the ACD (callbacks.mode agent) or
        in the automated survey campaign (mode survey). False when the order is not selected (see
        CallbackConfig.selects), on the do-not-call list, or already waiting for a callback (a bad
        number is logged, never raised to the desktop)."""
        cb = self.cfg.callbacks
        if not cb.selects(category, workorder_id, requested=requested, anonymous=anonymous):
            return False
        try:
            number = normalise_number(number)
        except ValueError as exc:
            log.warning("work order %s: no callback: %s", workorder_id, exc)
            return False
        if await self.store.listed([number]):
            log.info("work order %s: no callback: %s is on the do-not-call list or blacklist", workorder_id, number)
            return False
        queue = await call_queue(self.store.engine, call_id) if call_id else None
        if cb.mode == "agent":
            if self.agent_callbacks is None:
                raise RuntimeError("callbacks.mode is 'agent' but the ACD callbacks are not running")
            if not await self.agent_callbacks.add_workorder(
                    workorder_id=workorder_id, number=number, category=category, account=account,
                    customer_class=await customer_class(self.store.engine, account)):
                return False
        else:
            name = cb.campaign
            if number in await self.store.numbers_in(name):
                return False
            variables = {"workorder_id": str(workorder_id), "category": category}
            variables.update({k: v for k, v in (("call_id", call_id), ("agent_id", agent_id), ("queue", queue))
                              if v})
            contact = ContactIn(number, account=account or "", variables=variables)
            await self.store.add_contacts(name, [contact], self.dialer.clock.now())
            self.dialer.wake()
        # the order's call, agent and queue: the 回访率 is reported per agent and per queue
        self.dialer.emit(Event(kind=Kind.WORKORDER_CALLBACK, ts=self.dialer.clock.now(), call_id=call_id,
                               agent_id=agent_id, queue=queue,
                               data={"id": str(workorder_id), "action": "due", "category": category,
                                     "mode": cb.mode}))
        return True

    async def status_all(self) -> list[dict[str, Any]]:
        """Every campaign's progress (for the API and the wallboard)."""
        now = self.dialer.clock.now()
        return [await self.store.status(c.name, self.cfg.calendar, now)
                for c in await self.store.campaigns()]


async def call_queue(engine: AsyncEngine, call_id: str) -> str | None:
    """The queue a call was served in, from the event log: its first ACD event that names one."""
    e = events.c
    async with engine.connect() as conn:
        return (await conn.execute(
            select(e.queue).where(e.call_id == call_id, e.kind.in_((Kind.ACD_ENQUEUE, Kind.ACD_ANSWER)),
                                  e.queue.is_not(None)).order_by(e.ts, e.id).limit(1))).scalar()


def _agi_address(server: Any) -> str | None:
    """Where Asterisk reaches our FastAGI, when the config names one address (not a wildcard)."""
    agi: Any = getattr(server.cfg, "agi", None)
    host = str(getattr(agi, "host", "") or "")
    if agi is None or not host or host in ("0.0.0.0", "::") or not getattr(agi, "port", 0):
        return None
    return f"{host}:{agi.port}"


def attach_outbound(server: Any, *, prompt: PromptFn | None = None, acd: Any = None,
                    say: Say | None = None, calendar: Calendar | None = None) -> dict[str, Any]:
    """Register outbound on a CtiServer; the returned dict holds the service ("service") once the server
    started, and, given the ACD runtime, the ACD callbacks ("callbacks", fed by the ACD's hooks)."""
    cfg = load_outbound_config(server.config_dir, calendar)
    holder: dict[str, Any] = {}

    async def start() -> None:
        names = [s.name for s in server.cfg.asterisk]
        name = cfg.dial.server or names[0]
        if name not in server.ami:
            raise RuntimeError(f"outbound.yaml dial.server {name!r} is not an Asterisk in ctiserver.yaml")
        svc = OutboundService(cfg, server.store.engine, server.ami[name], name, server.clock, server.emit,
                              prompt=prompt)
        server.ami_listeners.append(svc.on_ami_event)
        server.event_listeners.append(svc.on_event)
        holder["service"] = svc
        await svc.start()
        log.info("outbound dialer started on %s", name)
        if acd is not None:
            callbacks = AcdCallbackService(cfg, CallbackStore(server.store.engine), acd, server.ami[name],
                                           server.clock, server.emit, server_name=name, say=say,
                                           listed=svc.store.listed, agi=_agi_address(server))
            server.ami_listeners.append(callbacks.on_ami_event)
            acd.hooks.on_callback = callbacks.on_callback
            acd.hooks.on_callback_offer = callbacks.on_callback_offer
            acd.hooks.on_callback_cancel = callbacks.on_callback_cancel
            holder["callbacks"] = callbacks
            svc.agent_callbacks = callbacks
            await callbacks.start()

    async def stop() -> None:
        if "callbacks" in holder:
            await holder["callbacks"].stop()
        if "service" in holder:
            await holder["service"].stop()

    server.on_start(start)
    server.on_stop(stop)
    return holder
