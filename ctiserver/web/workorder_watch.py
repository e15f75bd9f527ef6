"""Reminders and escalations of work-order deadlines: the IO around the pure engine (deadlines.alerts).

Every `poll_s` (sooner when a deadline falls due earlier) the watch reads the orders not yet replied,
asks the engine which reminders (预警) and escalations (超期) are due, and sends each once:

* as an event (`workorder`, action `reminder` or `escalation`, with the stage and its deadline) for
  the event store and the KPI report;
* to the desktops: a reminder to the agent who took the order, an escalation to the supervisors too.

What was sent is written on the order (`alerted`) before it goes out, so a restart or a second
server sends nothing twice; a reopened order starts its deadlines, and its alerts, afresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ..clock import Clock
from ..events import Event, Kind
from ..lifecycle import TaskOwner
from ..workorders.deadlines import Alert, alerts
from . import workorders
from .ws import Hub, agent_stream

log = logging.getLogger(__name__)


class WorkorderWatch:
    def __init__(self, engine: AsyncEngine, hub: Hub, emit: Callable[[Event], None], clock: Clock, *,
                 poll_s: float = 30.0) -> None:
        self.engine, self.hub, self.emit, self.clock, self.poll_s = engine, hub, emit, clock, poll_s
        self.task: asyncio.Task[None] | None = None
        self._tasks = TaskOwner("work-order watch")

    async def check(self) -> float | None:
        """Send the alerts due now; returns when the next one falls due (None: none pending)."""
        now = self.clock.now()
        rows = {int(r["id"]): r for r in await workorders.open_orders(self.engine)}
        found, nxt = alerts([workorders.clock_of(r) for r in rows.values()], now)
        per_order: dict[int, list[Alert]] = defaultdict(list)
        for a in found:
            per_order[a.order_id].append(a)
        sent: Counter[str] = Counter()
        for wo_id, items in per_order.items():
            row = rows[wo_id]
            was = row.get("alerted") or ""
            keys = sorted({k for k in was.split(",") if k} | {a.key for a in items})
            if not await workorders.mark_alerted(self.engine, wo_id, due_ts=row["due_ts"], was=was,
                                                 now=",".join(keys)):
                continue  # changed meanwhile (reopened, or another server sent them): next round decides
            for a in items:
                self._send(row, a, now)
                sent[a.level] += 1
        if sent:
            log.info("work orders: %d reminder(s), %d escalation(s) sent", sent["reminder"], sent["escalation"])
        return nxt

    def _send(self, row: dict[str, Any], alert: Alert, now: float) -> None:
        data = {"id": row["id"], "action": alert.level, "stage": alert.stage, "category": row["category"],
                "due_ts": alert.due_ts, "unit": row.get("unit"), "status": row["status"]}
        self.emit(Event(kind=Kind.WORKORDER, ts=now, call_id=row.get("call_id"), agent_id=row["created_by"],
                        data=data))
        self.hub.publish(agent_stream(row["created_by"]), "workorder_alert", data)
        if alert.level == "escalation":
            self.hub.publish_supervisors("workorder_alert", data)

    async def run(self) -> None:
        while True:
            nxt: float | None = None
            try:
                nxt = await self.check()
            except Exception as exc:  # the database may be away: try again next round
                log.warning("work-order deadline check failed: %s", exc)
            delay = self.poll_s if nxt is None else min(self.poll_s, max(1.0, nxt - self.clock.now()))
            if not await self._tasks.idle(delay):
                return

    async def start(self, _app: object = None) -> None:
        self.task = self._tasks.spawn(self.run(), name="desktop-workorder-watch")

    async def stop(self, _app: object = None) -> None:
        """A check under way finishes first (up to 5 s): cancelled inside a query, its connection would be
        left to the garbage collector."""
        await self._tasks.aclose(grace_s=5.0)
        self.task = None
