"""Agents after a CTI restart: who was logged in comes back logged in, without ringing anyone on a call.

The engine lives in memory, so a restart would log every agent out; with
`block_when_no_agents` every new caller would then be turned away until agents
logged in again. The event log knows each agent's last state, and Asterisk
(after the tracker's resync) knows who still has a live channel:

    last state available/reserved/ringing, no live channel  -> available
    last state on_call "direct", or not_ready "unregistered" -> available (the phone's state, read again, decides:
                                                               engine.device_state)
    last state not_ready(reason)                            -> not_ready(reason)  (a break stays a break)
    any other logged-in state (on_call, wrap_up, or busy)   -> not_ready("cti_restart")
    logged_out, or unknown to the config                    -> left logged out

`restore_plan` is the pure rule; `restore_agents` reads the log and applies it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .model import AVAILABLE, DIRECT, LOGGED_OUT, NOT_READY, ON_CALL, RESERVED, RINGING, UNREGISTERED

RESTART_REASON = "cti_restart"


@dataclass(frozen=True, slots=True)
class Restore:
    agent_id: str
    state: str  # available | not_ready
    reason: str | None = None


def restore_plan(last: Mapping[str, tuple[str, str | None]], busy: Iterable[str],
                 known: Iterable[str]) -> list[Restore]:
    """From each agent's last logged state and the agents with a live channel now, what to restore."""
    busy_set, known_set = set(busy), set(known)
    out: list[Restore] = []
    for agent_id in sorted(last):
        state, reason = last[agent_id]
        if agent_id not in known_set or state == LOGGED_OUT:
            continue
        if state in (AVAILABLE, RESERVED, RINGING) and agent_id not in busy_set:
            out.append(Restore(agent_id, AVAILABLE))
        elif (state, reason) in ((ON_CALL, DIRECT), (NOT_READY, UNREGISTERED)):
            out.append(Restore(agent_id, AVAILABLE))  # busy outside the ACD or unregistered: their phone says
        elif state == NOT_READY and reason and reason != "login":
            out.append(Restore(agent_id, NOT_READY, reason))
        else:
            out.append(Restore(agent_id, NOT_READY, RESTART_REASON))
    return out


def busy_agents(channels: Iterable[str], dial_string: Callable[[str], str], agents: Iterable[str]) -> set[str]:
    """Agents with a live channel: a channel named after the agent's dial string (`PJSIP/agent1001-0000001a`,
    `Local/1001@sim-agents-00000005;1`)."""
    names = list(channels)
    out = set()
    for agent_id in agents:
        prefix = dial_string(agent_id) + "-"
        if any(n.startswith(prefix) for n in names):
            out.add(agent_id)
    return out


def apply_restore(runtime: Any, plan: Iterable[Restore]) -> int:
    """Log the agents in again on an `AcdRuntime` (only those still logged out there); returns how many."""
    n = 0
    for r in plan:
        if runtime.engine.agent_state(r.agent_id)[0] != LOGGED_OUT:
            continue  # they logged in themselves meanwhile
        runtime.login(r.agent_id, ready=r.state == AVAILABLE)
        if r.state == NOT_READY and r.reason:
            runtime.set_not_ready(r.agent_id, r.reason)
        n += 1
    return n
