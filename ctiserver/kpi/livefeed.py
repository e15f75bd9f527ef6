"""The wallboard's KPI figures, live: the server's events into kpi/live.LiveFigures, the figures out to the
supervisors' WebSocket (a `kpi` message) when they change, and to the wallboard snapshot.

No polling: a change wakes the pusher, which waits `settle_s` so a burst of events gives one message;
the half-hour edge wakes it too (the "this half hour" figures start again). With nobody listening (no
supervisor page open, `listening`) nothing is computed: the figures are marked stale and computed when the
wallboard's snapshot asks for them (a page that opens gets its snapshot first). At start, today's call
events are read once from the event store and folded in, so a restarted server shows the whole day.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..clock import Clock
from ..events import Event
from ..lifecycle import TaskOwner
from ..store.schema import events
from .builder import CALL_KINDS, HALF_HOUR
from .config import KpiConfig
from .live import LiveFigures

log = logging.getLogger("ctiserver.kpi.live")


class LiveKpiFeed:
    """Feature "KPIs live" (see the module docstring)."""

    def __init__(self, cfg: KpiConfig, clock: Clock, *, engine: Callable[[], AsyncEngine | None],
                 publish: Callable[[dict[str, Any]], object] | None = None, settle_s: float = 0.5,
                 listening: Callable[[], bool] | None = None) -> None:
        self.cfg, self.clock, self.engine, self.publish, self.settle_s = cfg, clock, engine, publish, settle_s
        self.listening = listening
        self._stale = False  # something changed while nobody listened: compute before the next answer
        self.live = LiveFigures(cfg)
        self.figures: dict[str, Any] = {}
        self._changed = asyncio.Event()
        self._backlog: list[Event] = []  # events seen while today's history is being read
        self._loading = True
        self.pushed = 0

    def on_event(self, ev: Event) -> None:
        """Server event listener: fold and wake the pusher; never blocks."""
        if self._loading:
            if ev.kind in CALL_KINDS:
                self._backlog.append(ev)
            return
        if self.live.add(ev):
            self._changed.set()

    def __call__(self) -> dict[str, Any]:
        """The wallboard's `today()` figures (its gauges read service_level and abandon_rate)."""
        if not self.figures or self._stale:
            self.refresh()
        total = self.figures["today"]["total"]
        return {"service_level": total["service_level"] or 0.0, "abandon_rate": total["abandon_rate"] or 0.0,
                "answered_today": total["answered"], "offered_today": total["calls_offered"],
                "kpi": self.figures}

    def refresh(self) -> bool:
        """Recompute the figures; True if they changed."""
        figures = self.live.figures(self.clock.now())
        changed = figures != self.figures
        self.figures = figures
        self._stale = False
        return changed

    async def load_today(self) -> None:
        """Fold today's call events from the event store (and those that arrived meanwhile)."""
        engine = self.engine()
        try:
            if engine is not None:
                start, _ = self.live.day_range(self.clock.now())
                e = events.c
                async with engine.connect() as conn:
                    result = await conn.stream(
                        select(e.ts, e.kind, e.call_id, e.agent_id, e.queue, e.tier, e.data)
                        .where(e.ts >= start - self.cfg.window.max_call_s, e.kind.in_(sorted(CALL_KINDS)))
                        .order_by(e.ts, e.id))
                    async for r in result:
                        self.live.add(Event(r.kind, r.ts, r.call_id, r.agent_id, r.queue, r.tier, None,
                                            r.data if isinstance(r.data, dict) else {}))
        except Exception as exc:  # the database may be away: the board starts from now
            log.warning("today's KPI history not read (%s); live figures start from now", exc)
        finally:
            self._loading = False
            backlog, self._backlog = self._backlog, []
            for ev in backlog:
                self.live.add(ev)
            self._changed.set()

    async def run(self, tasks: TaskOwner) -> None:
        await self.load_today()
        while True:
            now = self.clock.now()
            to_edge = HALF_HOUR - (now % HALF_HOUR) + 0.01
            woken = self._changed.is_set()
            if not woken and not await tasks.idle(to_edge, self._changed):
                return
            self._changed.clear()
            if self.settle_s and not await tasks.idle(self.settle_s):
                return
            if self.listening is not None and not self.listening():
                self._stale = True  # nobody to tell: computed when the wallboard asks
                continue
            try:
                if self.refresh() and self.publish is not None:
                    self.publish(self.figures)
                    self.pushed += 1
            except Exception:
                log.exception("live KPI figures failed; trying again on the next event")

    @asynccontextmanager
    async def running(self) -> AsyncIterator[LiveKpiFeed]:
        async with TaskOwner("KPIs live", grace_s=5.0) as tasks:
            tasks.spawn(self.run(tasks), name="wallboard-kpi")
            yield self
