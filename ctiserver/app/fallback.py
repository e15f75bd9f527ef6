"""The fallback queue's outcomes into the event log (see ctiserver/acd/fallback.py), recorded by the leader."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ..acd.fallback import FallbackQueues
from ..events import Event, Kind
from ..lifecycle import TaskOwner
from .server import CtiServer

log = logging.getLogger(__name__)


class FallbackRecorder:
    """The fallback queue's outcomes into the event log (see ctiserver/acd/fallback.py): its AMI events as
    they come; while the feature runs, after every (re)connect (and at its start, for the links already
    up), the fallback calls already talking are adopted from the channel list so that their end is
    recorded."""

    def __init__(self, server: CtiServer, queues: FallbackQueues) -> None:
        self.server, self.queues = server, queues
        self._tasks = TaskOwner("fallback queue")
        self._running = False

    def on_ami(self, name: str, msg: Any) -> None:
        if not self._running:  # a standby: the leader records the fallback queue
            return
        for event in self.queues.feed(name, msg, self.server.clock.now()):
            self.server.emit(event)

    def on_event(self, event: Event) -> None:
        if event.kind == Kind.AMI_CONNECTED and event.server in self.server.ami:
            self._adopt_soon(event.server)

    def _adopt_soon(self, name: str) -> None:
        if self._running:
            self._tasks.spawn(self._adopt(name), name=f"fallback-adopt-{name}")

    async def _adopt(self, name: str) -> None:
        try:
            resp = (await self.server.ami[name].action("CoreShowChannels", {}, timeout=10.0)
                    ).raise_for_error("CoreShowChannels")
        except Exception as exc:
            log.warning("fallback queue on %s: could not list channels (%s); calls it connected while we were "
                        "away are not recorded", name, exc)
            return
        n = self.queues.adopt_talking(name, (m for m in resp.events if m.get("Event") == "CoreShowChannel"))
        if n:
            log.info("fallback queue on %s: %d calls connected while we were away; their end will be recorded",
                     name, n)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FallbackRecorder]:
        self._running = True
        try:
            for name, client in self.server.ami.items():
                if client.connected:  # connected before we ran: its ami.connected went by (adopting is idempotent)
                    self._adopt_soon(name)
            yield self
        finally:
            self._running = False
            await self._tasks.aclose()
