"""The ACD's side of an Asterisk server coming and going (see acd/servers.py): an event-log listener.

`ami.lost` of a server: its agents are made not ready (`server_down`) so the ACD offers them nothing;
its AMI `FullyBooted` again (sent on every login once Asterisk has loaded everything, PJSIP included:
its phones can be rung): those agents are made ready. Only while the ACD runs on this node (the
leader); a standby's ACD acts on nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

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
        """The event log's `ami.lost`: the server's agents out of routing."""
        if event.kind != Kind.AMI_LOST or not event.server or not self.running():
            return
        agents = self.book.lost(event.server, self._states())
        for agent in agents:
            self._apply(self.acd.set_not_ready, agent, UNREACHABLE)
        if agents:
            log.warning("Asterisk %s lost: agents %s are out of routing until it returns", event.server,
                        ", ".join(sorted(agents)))

    def on_ami(self, server: str, msg: Any) -> None:
        """AMI `FullyBooted` of a server we lost: its agents back in routing."""
        if msg.get("Event") != "FullyBooted" or server not in self.book.down() or not self.running():
            return
        agents = self.book.back(server, self._states())
        for agent in agents:
            self._apply(self.acd.set_ready, agent)
        if agents:
            log.info("Asterisk %s is back: agents %s are ready again", server, ", ".join(sorted(agents)))

    @staticmethod
    def _apply(change: Callable[..., object], *args: str) -> None:
        try:
            change(*args)
        except AcdError as exc:  # the agent moved meanwhile (logged out): nothing to give back
            log.info("server watch: %s", exc)
