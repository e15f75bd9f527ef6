"""The shift change does not wait for a leader: a handover drawn up from the store at the boundary.

When a shift change the roster knows has passed and nobody handed over, the watch saves the handover as
the store holds it at that moment (outgoing: the roster's leaders; note: says it was drawn up
automatically), records a `wfm.handover` event (action `auto`), and the incoming leader finds it on
/handover to acknowledge like any other. Runs on the leading node only (the wiring adds it to the leader
group), once per shift change: a saved handover for that time, by hand or by this watch, ends it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ..calendar import Calendar
from ..clock import Clock
from ..events import Event, Kind
from ..lifecycle import TaskOwner
from . import handover_store as store
from .handover import build_handover, handover_text, passed
from .handover_http import plans_around
from .shifts import Agent, RosterConfig

log = logging.getLogger(__name__)
AUTO_NOTE = "(drawn up automatically at the shift change: nobody handed over)"


class HandoverWatch:
    def __init__(self, *, folder: Path, cfg: RosterConfig, agents: list[Agent], calendar: Calendar,
                 get_engine: Callable[[], AsyncEngine], get_events_engine: Callable[[], AsyncEngine], clock: Clock,
                 emit: Callable[[Event], None], health: Callable[[], dict[str, Any]] | None = None,
                 poll_s: float = 60.0) -> None:
        self.folder, self.cfg, self.calendar, self.clock, self.emit = folder, cfg, calendar, clock, emit
        self.get_engine, self.get_events_engine, self.health, self.poll_s = get_engine, get_events_engine, health, \
            poll_s
        self.leaders = frozenset(a.id for a in agents if a.leader)

    async def check(self) -> list[int]:
        """Save a handover for each shift change of the last two hours that has none; their ids."""
        t = self.clock.now()
        changes = passed(plans_around(self.folder, self.cfg, self.calendar, t), self.leaders, t)
        if not changes:
            return []
        done = await store.handed_at(self.get_engine(), min(b.at for b in changes), t)
        saved = []
        for b in changes:
            if b.at in done:
                continue
            content = build_handover(await store.gather(self.get_engine(), self.get_events_engine(), b), b, t,
                                     self.health() if self.health is not None else None)
            content["auto"] = True
            who = ",".join(b.outgoing)[:40]
            preview = {"id": 0, "outgoing": who, "note": AUTO_NOTE, "content": content, "created_ts": t,
                       "acked_by": None, "acked_ts": None}
            doc = await store.save(self.get_engine(), user=who, note=AUTO_NOTE, content=content,
                                   text=handover_text(preview, self.calendar), now=t)
            self.emit(Event(Kind.WFM_HANDOVER, t, agent_id=None, data={
                "id": doc["id"], "action": "auto", "user": None, "boundary_ts": b.at, "incoming": list(b.incoming)}))
            log.info("shift change at %s: nobody handed over; handover %d drawn up", b.at, doc["id"])
            saved.append(doc["id"])
        return saved

    async def _run(self, tasks: TaskOwner) -> None:
        while True:
            try:
                await self.check()
            except Exception as exc:  # the store or a roster file may be away: next round
                log.warning("shift handover watch: %s", exc)
            if not await tasks.idle(self.poll_s):
                return

    @asynccontextmanager
    async def running(self) -> AsyncIterator[HandoverWatch]:
        """The watch's lifecycle: started on entry, stopped (a check under way finishes first) on exit."""
        tasks = TaskOwner("shift handover watch")
        tasks.spawn(self._run(tasks), name="wfm-handover-watch")
        try:
            yield self
        finally:
            await tasks.aclose(grace_s=5.0)
