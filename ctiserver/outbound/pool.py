"""Campaign calls spread over several Asterisk servers (outbound.yaml `dial.servers`), each within its own
channel limit; a server whose AMI link is down is out of dialing until it is back.

    Dialer ─▶ OriginatorPool.originate ─▶ the ready server with the most room (limit - our calls up there);
                                          ties go to the one listed first
              OriginatorPool.ready()   ─▶ some server is up and has room (else the dialer holds its attempts,
                                          as it does while the one AMI link of a single server is down)
              OriginatorPool.is_live   ─▶ asks the server that placed the call

Our calls up on each server are counted from what the pool placed, less the channels that server said
ended (`on_ami_event`: Hangup, or an OriginateResponse that failed) and, when its link comes back, less
those it no longer has (`recount`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .ami_originator import AmiOriginator
from .dialer import OriginateNotSent, OriginateRejected

log = logging.getLogger(__name__)


@dataclass
class PoolMember:
    name: str
    originator: AmiOriginator
    max_channels: int | None = None  # None: no limit of our own (the campaigns' pacing still holds)
    up: set[str] = field(default_factory=set)  # our channel ids placed there and not known to have ended

    def room(self) -> float:
        return float("inf") if self.max_channels is None else self.max_channels - len(self.up)


class OriginatorPool:
    """The dialer's Originator over several servers (see the module docstring)."""

    def __init__(self, members: Sequence[PoolMember]) -> None:
        if not members:
            raise ValueError("an originator pool needs at least one server")
        self.members = list(members)
        self._by_name = {m.name: m for m in self.members}
        self._placed: dict[str, PoolMember] = {}  # channel id -> the server that has it

    def ready(self) -> bool:
        return any(m.originator.ready() and m.room() > 0 for m in self.members)

    def room(self) -> float:
        """Calls the servers that are up can take now: the dialer plans no more than this."""
        return sum(max(0.0, m.room()) for m in self.members if m.originator.ready())

    def choose(self) -> PoolMember:
        """The server the next call goes to: up, with room, the most room first."""
        ready = [m for m in self.members if m.originator.ready() and m.room() > 0]
        if not ready:
            down = [m.name for m in self.members if not m.originator.ready()]
            raise OriginateNotSent(f"no Asterisk with room to dial (down: {', '.join(down) or 'none'})")
        return max(ready, key=lambda m: m.room())  # max() keeps the first of equals: the listed order

    async def originate(self, channel_id: str, number: str, context: str, exten: str,
                        variables: dict[str, str], timeout_s: float) -> None:
        member = self.choose()
        member.up.add(channel_id)
        self._placed[channel_id] = member
        try:
            await member.originator.originate(channel_id, number, context, exten, variables, timeout_s)
        except (OriginateNotSent, OriginateRejected):  # no call: its room is back
            self._forget(channel_id)
            raise  # anything else (no reply in time): counted until the server says it ended

    def server_of(self, channel_id: str) -> str | None:
        m = self._placed.get(channel_id)
        return m.name if m is not None else None

    async def is_live(self, channel_id: str) -> bool:
        m = self._placed.get(channel_id)
        if m is None:  # placed before a restart: whichever server has it
            for member in self.members:
                if member.originator.ready() and await member.originator.is_live(channel_id):
                    return True
            return False
        live = await m.originator.is_live(channel_id)
        if not live:
            self._forget(channel_id)
        return live

    def channel_for_action(self, server: str, action_id: str) -> str | None:
        m = self._by_name.get(server)
        return m.originator.channel_for_action(action_id) if m is not None else None

    def on_ami_event(self, server: str, msg: Any) -> None:
        """A channel of ours ended on `server` (Hangup), or its Originate failed: one more call of room."""
        event = msg.get("Event")
        if event == "Hangup":
            cid = str(msg.get("Uniqueid") or "")
        elif event == "OriginateResponse" and str(msg.get("Response") or "") != "Success":
            cid = str(msg.get("Uniqueid") or "") or (
                self.channel_for_action(server, str(msg.get("ActionID") or "")) or "")
        else:
            return
        m = self._placed.get(cid)
        if m is not None and m.name == server:
            self._forget(cid)

    async def recount(self, server: str) -> None:
        """`server`'s link came back: our calls it no longer has are not counted against its limit."""
        m = self._by_name.get(server)
        if m is None:
            return
        for cid in list(m.up):
            try:
                if not await m.originator.is_live(cid):
                    self._forget(cid)
            except Exception as exc:
                log.warning("outbound: could not recount calls on %s (%s)", server, exc)
                return

    def _forget(self, channel_id: str) -> None:
        m = self._placed.pop(channel_id, None)
        if m is not None:
            m.up.discard(channel_id)

    def status(self) -> list[dict[str, Any]]:
        """Per server: up or not, our calls there, its limit (for logs and tests)."""
        return [{"server": m.name, "ready": m.originator.ready(), "calls": len(m.up), "max_channels": m.max_channels}
                for m in self.members]

