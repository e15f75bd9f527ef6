"""Several Asterisk servers under one ACD: which server a call is on, and which agents a lost server takes away.

Each Asterisk's `systemname` (asterisk.conf) is its name in ctiserver.yaml: its uniqueids, and so the
call ids, read `<server>-<epoch>.<seq>`; they are unique across servers, and they say where a caller
is. The ACD prefers an agent on the caller's own server when proficiency ties (no trunk in the path),
and rings an agent on another server over the trunk to it (acd.yaml `remote_dial_template`).

A server the CTI loses (its AMI link down: restarting, crashed, cut off) takes its agents with it: their
phones register there. `Unreachable` is the pure bookkeeping: at the loss, every logged-in agent of that
server not already on a break is made not ready with reason `server_down` (the wallboard shows it) so the
ACD offers them nothing; when the server is back, those agents are made ready again, unless someone
changed their state meanwhile (a supervisor logged them out, the agent chose a break).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

UNREACHABLE = "server_down"  # the not-ready reason of an agent whose server is down (acd/model.py SYSTEM_REASONS)


def server_of(call_id: str, servers: Collection[str]) -> str:
    """The server a call id names (`pbx2-1796331510.12` -> pbx2), or "" (no system name, or not ours)."""
    name, sep, _ = call_id.rpartition("-")
    return name if sep and name in servers else ""


@dataclass
class Unreachable:
    """Which agents a lost server made unreachable, to give them back when it returns."""

    agent_servers: Mapping[str, str]  # agent id -> server (acd.yaml `server`)
    held: dict[str, set[str]] = field(default_factory=dict)  # server -> agents we made not ready

    def lost(self, server: str, states: Iterable[tuple[str, str, str | None]]) -> list[str]:
        """The server went away; `states` are (agent, state, reason). Returns the agents to make not ready
        (reason `server_down`): logged in and not on a break of their own."""
        take = [a for a, state, reason in states if self.agent_servers.get(a) == server
                and state != "logged_out" and not (state == "not_ready" and reason != UNREACHABLE)]
        self.held.setdefault(server, set()).update(take)
        return take

    def back(self, server: str, states: Iterable[tuple[str, str, str | None]]) -> list[str]:
        """The server is back: the agents to make ready again (still not ready as `server_down`)."""
        held = self.held.pop(server, set())
        return [a for a, state, reason in states if a in held and state == "not_ready" and reason == UNREACHABLE]

    def down(self) -> set[str]:
        """Servers lost and not back yet."""
        return set(self.held)
