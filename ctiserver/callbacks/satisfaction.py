"""Satisfaction callbacks (回访) after a closed work order: whether one is due and the rows that make it.

    work order closed ─▶ record_satisfaction_callback: selected? dialable? not on a list? (outbound.yaml `callbacks`)
        mode agent  ─▶ add_workorder_callback: a callback row (pending), planned by the ACD callbacks
        mode survey ─▶ a contact of the survey campaign, dialled by the outbound dialer
        either      ─▶ event workorder.callback (due), with the order's call, agent and queue (the 回访率)

Only database rows: the node that runs the dialer and the callbacks (the leader) finds them there, so a
node where they are stopped (a standby) records the request too.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..clock import Clock
from ..customers.targets import customer_class
from ..events import Event, Kind
from ..numbers import NumberError, normalise_number
from ..outbound.dialer import Emit
from ..outbound.model import ContactIn, OutboundConfig
from ..outbound.store import OutboundStore
from ..store.schema import events
from .rules import CallbackStatus
from .store import CallbackStore

log = logging.getLogger(__name__)


async def record_satisfaction_callback(
        cfg: OutboundConfig, store: OutboundStore, clock: Clock, emit: Emit, *,
        add_agent_callback: Callable[..., Awaitable[bool]] | None, workorder_id: int, number: str, category: str,
        account: str | None = None, requested: bool = True, anonymous: bool = False, call_id: str | None = None,
        agent_id: str | None = None) -> bool:
    """Call a closed work order's customer back: by an agent through the ACD (callbacks.mode agent) or in the
    automated survey campaign (mode survey). Only database rows (a callback row, a campaign contact): the node
    that runs the dialer and the callbacks (the leader) finds them there, so a node where they are stopped
    records the request too. False when the order is not selected (see CallbackConfig.selects), on the
    do-not-call list, or already waiting for a callback (a bad number is logged, never raised to the desktop)."""
    cb = cfg.callbacks
    if not cb.selects(category, workorder_id, requested=requested, anonymous=anonymous):
        return False
    try:
        number = normalise_number(number)
    except ValueError as exc:
        log.warning("work order %s: no callback: %s", workorder_id, exc)
        return False
    if await store.listed([number]):
        log.info("work order %s: no callback: %s is on the do-not-call list or blacklist", workorder_id, number)
        return False
    queue = await call_queue(store.engine, call_id) if call_id else None
    if cb.mode == "agent":
        if add_agent_callback is None:
            raise RuntimeError("callbacks.mode is 'agent' but the ACD callbacks are not running")
        if not await add_agent_callback(
                workorder_id=workorder_id, number=number, category=category, account=account,
                customer_class=await customer_class(store.engine, account)):
            return False
    else:
        name = cb.campaign
        if number in await store.numbers_in(name):
            return False
        variables = {"workorder_id": str(workorder_id), "category": category}
        variables.update({k: v for k, v in (("call_id", call_id), ("agent_id", agent_id), ("queue", queue))
                          if v})
        contact = ContactIn(number, account=account or "", variables=variables)
        await store.add_contacts(name, [contact], clock.now())
    # the order's call, agent and queue: the 回访率 is reported per agent and per queue
    emit(Event(kind=Kind.WORKORDER_CALLBACK, ts=clock.now(), call_id=call_id, agent_id=agent_id, queue=queue,
               data={"id": str(workorder_id), "action": "due", "category": category, "mode": cb.mode}))
    return True


async def add_workorder_callback(store: CallbackStore, cfg: OutboundConfig, clock: Clock,
                                 emit: Callable[[Event], None], *, workorder_id: int, number: str, category: str,
                                 account: str | None, customer_class: str) -> bool:
    """A satisfaction callback (回访) after a closed work order, made by an agent with the callbacks skill: due
    by the category's callback deadline (workorders.yaml) from now, inside the customer class's calling window.
    Only a database row: whichever node runs the callbacks (the leader) plans it from the store, so a node
    whose callbacks are stopped (a standby) records it too. False when this number already has an open
    callback (or the number is not dialable)."""
    cb = cfg.callbacks
    now = clock.now()
    try:
        number = normalise_number(number)
    except NumberError as exc:
        log.warning("work order %s: no callback: %s", workorder_id, exc)
        return False
    due = cfg.workorders.callback_due(category, now)  # workorders.yaml: the category's callback limit
    windows = ";".join(cb.class_windows.get(customer_class, []))
    customer = {"account": account} if account else None
    row_id = await store.add(origin_call=f"wo-{workorder_id}", number=number, skill=cb.skill,
                             tier=cb.tier, reason="workorder", customer=customer,
                             status=CallbackStatus.PENDING, now=now, due_ts=due, windows=windows)
    if row_id is None:
        return False
    emit(Event(Kind.ACD_CALLBACK, ts=now, call_id=f"wo-{workorder_id}", queue=cb.skill, tier=cb.tier,
               data={"reason": "workorder", "due_ts": due, "number": number, "category": category,
                     "workorder_id": workorder_id, "callback": row_id}))
    return True


async def call_queue(engine: AsyncEngine, call_id: str) -> str | None:
    """The queue a call was served in, from the event log: its first ACD event that names one."""
    e = events.c
    async with engine.connect() as conn:
        return (await conn.execute(
            select(e.queue).where(e.call_id == call_id, e.kind.in_((Kind.ACD_ENQUEUE, Kind.ACD_ANSWER)),
                                  e.queue.is_not(None)).order_by(e.ts, e.id).limit(1))).scalar()
