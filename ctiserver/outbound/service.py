"""Outbound inside the running server: one object the wiring attaches, with its lifetime.

`attach_outbound(server)` loads `outbound.yaml`, and at server start builds the
store on the event store's engine, the AMI originator on the configured Asterisk,
the outcome reader and the dialer; AMI events feed outcomes, an `ami.connected`
event triggers a full reconcile, and server stop stops the dialer.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ..clock import Clock
from ..events import Event, Kind
from .ami_originator import AmiActions, AmiOriginator
from .amimap import OutcomeReader
from .dialer import Dialer, Emit, PromptFn
from .model import OutboundConfig, load_outbound_config
from .rules import WorkCalendar
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

    def on_ami_event(self, server: str, msg: Any) -> None:
        """Plain function for the server's AMI listeners: cheap, never blocks."""
        if server != self.server_name:
            return
        for channel_id, outcome, dtmf in self.reader.feed(msg):
            self.dialer.on_result(channel_id, outcome, dtmf)

    def on_event(self, event: Event) -> None:
        if event.kind == Kind.AMI_CONNECTED and event.server == self.server_name:
            self.dialer.request_reconcile()

    async def start(self) -> None:
        await self.dialer.start()

    async def stop(self) -> None:
        await self.dialer.stop()

    async def status_all(self) -> list[dict[str, Any]]:
        """Every campaign's progress (for the API and the wallboard)."""
        calendar = WorkCalendar(self.cfg.calendar)
        now = self.dialer.clock.now()
        return [await self.store.status(c.name, self.cfg.timezone, calendar, now)
                for c in await self.store.campaigns()]


def attach_outbound(server: Any, *, prompt: PromptFn | None = None) -> dict[str, OutboundService]:
    """Register outbound on a CtiServer; the returned dict holds the service once the server started."""
    cfg = load_outbound_config(server.config_dir)
    holder: dict[str, OutboundService] = {}

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

    async def stop() -> None:
        if "service" in holder:
            await holder["service"].stop()

    server.on_start(start)
    server.on_stop(stop)
    return holder
