"""The ACD's side of an Asterisk server coming and going (see acd/servers.py): an event-log listener.

`ami.lost` of a server: its agents are made not ready (`server_down`) so the ACD offers them nothing;
`ami.connected` again: those agents are made ready. Only while the ACD runs on this node (the leader);
a standby's ACD acts on nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..events import Event, Kind
from .model import AcdError
from .runtime import AcdRuntime
from .servers import UNREACHABLE, Unreachable

log = logging.getLogger(__name__)


class ServerWatch:
    def __init__(self, acd: AcdRuntime, running: Callable[[], bool]) -> None:
        self.acd = acd
        self.running = running
        self.book = Unreachable(acd.cfg.agent_servers)

    def _states(self) -> list[tuple[str, str, str | None]]:
        now = self.acd.clock.now()
        return [(a["agent_id"], str(a["state"]), a["reason"]) for a in self.acd.engine.agents_snapshot(now)]

    def on_event(self, event: Event) -> None:
        if not self.running() or not event.server or event.kind not in (Kind.AMI_LOST, Kind.AMI_CONNECTED):
            return
        if event.kind == Kind.AMI_LOST:
            agents = self.book.lost(event.server, self._states())
            for agent in agents:
                self._apply(self.acd.set_not_ready, agent, UNREACHABLE)
            if agents:
                log.warning("Asterisk %s lost: agents %s are out of routing until it returns", event.server,
                            ", ".join(sorted(agents)))
        else:
            agents = self.book.back(event.server, self._states())
            for agent in agents:
                self._apply(self.acd.set_ready, agent)
            if agents:
                log.info("Asterisk %s is back: agents %s are ready again", event.server, ", ".join(sorted(agents)))

    @staticmethod
    def _apply(change: Callable[..., object], *args: str) -> None:
        try:
            change(*args)
        except AcdError as exc:  # the agent moved meanwhile (logged out): nothing to give back
            log.info("server watch: %s", exc)
