"""Repair orders: dispatch to the area's crew, the crew's steps, and the watch that sends reminders and
escalations (the feature's `running()`); each step is an event (`repair`, `repair.alert`) the dispatch
board and the KPIs read, and the customer hooks (apology on dispatch, "power restored") follow it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from ..clock import Clock
from ..events import Event, Kind
from ..lifecycle import TaskOwner
from ..workorders.deadlines import CrewDeadlines
from . import engine
from .engine import DISPATCHED, Order
from .model import CrewsConfig
from .store import ConcurrentChange, RepairStore

log = logging.getLogger(__name__)

Hook = Callable[[Order, dict[str, Any]], Awaitable[None]]
AlertHook = Callable[[engine.Alert, Order, str], Awaitable[None]]  # (the alert, its order, to whom)


class NoCrew(LookupError):
    pass


class RepairService:
    def __init__(self, store: RepairStore, crews: CrewsConfig, table: CrewDeadlines, clock: Clock,
                 emit: Callable[[Event], None], *, on_dispatch: Hook | None = None,
                 on_restore: Hook | None = None, on_alert: AlertHook | None = None) -> None:
        self.store, self.crews, self.table, self.clock, self.emit = store, crews, table, clock, emit
        self.on_dispatch, self.on_restore, self.on_alert = on_dispatch, on_restore, on_alert
        self._wake: Any = None
        self.rounds = 0

    def _event(self, order: Order, step: str, row: dict[str, Any], **data: Any) -> None:
        self.emit(Event(Kind.REPAIR, self.clock.now(), data={
            "id": order.id, "step": step, "crew": order.crew, "area": order.area, "area_class": order.area_class,
            "outage": row.get("outage_id"), **data}))

    async def dispatch(self, area: str, *, outage_id: int | None = None, workorder_id: int | None = None,
                       user: str = "", crew_id: str | None = None) -> tuple[Order, str]:
        """A repair order to the crew serving `area` (or `crew_id`); the order and the crew page's token."""
        crew = self.crews.crew(crew_id) if crew_id else self.crews.crew_for(area)
        if crew is None:
            raise NoCrew(f"no crew serves {area!r} (crews.yaml)" if not crew_id else f"no crew {crew_id!r}")
        now = self.clock.now()
        order, token = await self.store.add(
            Order(id=0, crew=crew.id, area=area, area_class=self.crews.area_class(area), stage=DISPATCHED,
                  dispatched_ts=now), outage_id=outage_id, workorder_id=workorder_id, user=user)
        _, row = await self.store.get(order.id)
        self._event(order, "dispatch", row, user=user)
        if self.on_dispatch is not None:
            await self._hook(self.on_dispatch, order, row)
        self.wake()
        return order, token

    async def act(self, order_id: int, step: str, *, user: str = "", cause: str = "", location: str = "",
                  expected_ts: float | None = None) -> Order:
        """A step by the crew (or a dispatcher for them). IllegalStep / ValueError say what is wrong."""
        for _ in range(3):
            order, row = await self.store.get(order_id)
            now = self.clock.now()
            after = engine.step(order, step, now, cause=cause, location=location, expected_ts=expected_ts)
            try:
                await self.store.save(order, after, now)
            except ConcurrentChange:
                continue
            times = engine.on_time(after, self.table)
            extra: dict[str, Any] = {"user": user}
            if step == "arrive":
                extra.update(on_time=times["arrive"], minutes=round((now - after.dispatched_ts) / 60, 1))
            elif step == "report" and order.stage == engine.ARRIVED:
                extra.update(on_time=times["report"], cause=cause, expected_ts=expected_ts)
            elif step == "restore":
                extra.update(cause=after.cause, minutes=round((now - after.dispatched_ts) / 60, 1))
            self._event(after, step, row, **extra)
            if step == "restore" and self.on_restore is not None:
                await self._hook(self.on_restore, after, row)
            self.wake()
            return after
        raise ConcurrentChange(f"repair order {order_id} kept changing; try again")

    async def _hook(self, hook: Hook, order: Order, row: dict[str, Any]) -> None:
        try:
            await hook(order, row)
        except Exception:  # the order's step stands; the customers' messages are logged as missing
            log.exception("repair order %s: customer messages failed", order.id)

    async def check(self) -> float | None:
        """One round of the watch: send the reminders and escalations due; when to look again."""
        now = self.clock.now()
        orders = await self.store.open_orders()
        due, nxt = engine.alerts(orders, now, self.table)
        by_id = {o.id: o for o in orders}
        for alert in due:
            order = by_id[alert.order_id]
            after = replace(order, alerted=order.alerted | {alert.key})
            try:
                await self.store.save(order, after, now)
            except ConcurrentChange:
                continue  # the crew acted meanwhile: the next round sees the new step
            by_id[order.id] = after
            who = (self.crews.shift_leader.name if alert.level == "escalation" and self.crews.shift_leader
                   else order.crew)
            self.emit(Event(Kind.REPAIR_ALERT, now, data={"id": order.id, "step": alert.step, "level": alert.level,
                                                          "due_ts": alert.due_ts, "crew": order.crew, "to": who}))
            log.warning("repair order %s (%s, %s): %s %s due %s", order.id, order.crew, order.area, alert.step,
                        alert.level, alert.due_ts)
            if self.on_alert is not None:
                try:
                    await self.on_alert(alert, after, who)
                except Exception:  # the alert is recorded; the message is logged as missing
                    log.exception("repair order %s: the %s message could not be sent", order.id, alert.level)
        self.rounds += 1
        return nxt

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _run(self, tasks: TaskOwner) -> None:
        import asyncio

        self._wake = asyncio.Event()
        while True:
            self._wake.clear()
            try:
                nxt = await self.check()
            except Exception as exc:
                log.warning("repair watch round failed: %s", exc)
                nxt = None
            wait = self.crews.poll_s if nxt is None else min(self.crews.poll_s, max(0.05, nxt - self.clock.now()))
            if not await tasks.idle(wait, self._wake):
                return

    @asynccontextmanager
    async def running(self) -> AsyncIterator[RepairService]:
        async with TaskOwner("repair", grace_s=5.0) as tasks:
            tasks.spawn(self._run(tasks), name="repair-watch")
            yield self


def chained(*hooks: Hook | None) -> Hook:
    """Several dispatch hooks as one, each run even if an earlier one failed (RepairService logs failures)."""
    present = [h for h in hooks if h is not None]

    async def run(order: Order, row: dict[str, Any]) -> None:
        failed: BaseException | None = None
        for hook in present:
            try:
                await hook(order, row)
            except Exception as exc:
                failed = exc
                log.exception("repair order %s: a dispatch hook failed", order.id)
        if failed is not None:
            raise failed

    return run
