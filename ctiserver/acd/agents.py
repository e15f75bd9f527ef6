"""The ACD's agents: their states (moved only through the transition table), head counts per skill,
and the free-agent index.

`move` is the one place an agent changes state: it applies `AGENT_TRANSITIONS`, keeps the staffed
(logged in) and serving (logged in, not on a break) counts per skill, takes the agent out of the
free index when it leaves `available`, and logs an `agent.state` event with the time spent in the
previous state. The free index is, per skill and proficiency level, a heap keyed by idle-since;
entries carry the agent's version, so an agent who moved on is dropped lazily when it reaches the
top (and the heaps are compacted when stale entries pile up).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

from ..events import Event, Kind
from .model import AcdError, Command, IllegalTransition, UnknownAgent, UnknownSkill
from .records import DEVICE_FREE, Agent, Call
from .states import (
    AGENT_TRANSITIONS,
    AVAILABLE,
    LOGGED_OUT,
    NOT_READY,
    ON_CALL,
    RESERVED,
    RINGING,
    WRAP_UP,
    AgentState,
)

MAX_PROF = 10
BUSY_RETURNING = frozenset({RESERVED, RINGING, ON_CALL, WRAP_UP})  # at work, will be free again
OFF_DUTY = frozenset({LOGGED_OUT, NOT_READY})  # neither counts as serving a queue
_AGENT_STATE = Kind.AGENT_STATE

FreeEntry = tuple[float, int, int, Agent]  # (idle since, config order, version, agent)


class Roster:
    """Every agent of the centre and the per-skill counts the queues and the door rules read."""

    def __init__(self, skills: Iterable[str]) -> None:
        skills = list(skills)
        self.skills = set(skills)
        self.agents: dict[str, Agent] = {}
        self.staffed: dict[str, int] = dict.fromkeys(skills, 0)  # logged in
        self.serving: dict[str, int] = dict.fromkeys(skills, 0)  # logged in and not on a break
        self.nfree: dict[str, int] = dict.fromkeys(skills, 0)  # published (free, nothing to take)
        self.free: dict[str, list[list[FreeEntry]]] = {s: [[] for _ in range(MAX_PROF + 1)] for s in skills}
        self._live_entries = 0  # pushes since the last compaction

    def add(self, agent_id: str, skills: dict[str, int], server: str = "") -> None:
        """Register an agent (logged out); `server`: the Asterisk their phone registers on."""
        if agent_id in self.agents:
            raise AcdError(f"agent {agent_id} already exists")
        for s, p in skills.items():
            if s not in self.skills:
                raise UnknownSkill(f"agent {agent_id}: unknown skill '{s}'")
            if not 1 <= p <= MAX_PROF:
                raise AcdError(f"agent {agent_id}: proficiency {p} for '{s}' is outside 1..{MAX_PROF}")
        self.agents[agent_id] = Agent(agent_id, dict(skills), order=len(self.agents), server=server)

    def get(self, agent_id: str) -> Agent:
        a = self.agents.get(agent_id)
        if a is None:
            raise UnknownAgent(f"unknown agent {agent_id}")
        return a

    def move(self, a: Agent, event: str, now: float, out: list[Command], *, reason: str | None = None,
             to: AgentState | None = None, call: Call | None = None) -> None:
        """Apply the transition table; log agent.state with the time spent in the previous state."""
        prev = a.state
        nxt = AGENT_TRANSITIONS.get((prev, event))
        if nxt is None:
            label = f"{prev}({a.reason})" if prev == NOT_READY and a.reason else str(prev)
            raise IllegalTransition(a.id, label, event)
        if to is not None:
            nxt = to
        prev_reason = a.reason
        if nxt == NOT_READY:
            new_reason = reason or "busy"
            if prev == NOT_READY and new_reason == prev_reason:
                return
        elif nxt == ON_CALL and reason:  # "direct": busy outside the ACD (engine.device_state)
            new_reason = reason
        else:
            new_reason = None
            if nxt == prev:
                return
        if prev == AVAILABLE and a.published:
            a.version += 1  # drop out of the free-agent heaps
            a.published = False
            nfree = self.nfree
            for s in a.skills:
                nfree[s] -= 1
        if prev in OFF_DUTY or nxt in OFF_DUTY:
            delta_staffed = (prev == LOGGED_OUT) - (nxt == LOGGED_OUT)
            delta_serving = (nxt not in OFF_DUTY) - (prev not in OFF_DUTY)
            staffed, serving = self.staffed, self.serving
            for s in a.skills:
                staffed[s] += delta_staffed
                serving[s] += delta_serving
        # time in the previous state; unknown (None) for the logged-out time before the first login we saw
        duration = None if a.since is None else now - a.since
        a.state = nxt
        a.reason = new_reason
        a.since = now
        if nxt == AVAILABLE:
            a.idle_since = now  # published by the engine only if no waiting call fits
        data = {"state": nxt, "previous": prev, "reason": new_reason, "previous_reason": prev_reason,
                "duration_s": duration}
        if call is None:
            out.append(Event(_AGENT_STATE, now, None, a.id, None, None, None, data))
        else:
            out.append(Event(_AGENT_STATE, now, call.id, a.id, call.skill, call.tier, None, data))

    # --- the free-agent index

    def publish(self, a: Agent) -> None:
        """An available agent with nothing to take waits in the free heaps of each of its skills."""
        a.version += 1
        a.published = True
        entry = (a.idle_since, a.order, a.version, a)
        free, nfree = self.free, self.nfree
        for s, p in a.skills.items():
            heapq.heappush(free[s][p], entry)
            nfree[s] += 1
        self._live_entries += len(a.skills)
        if self._live_entries > 4 * len(self.agents) + 4096:
            self.compact()

    def best_free(self, skill: str, min_prof: int, by_proficiency: bool, server: str = "") -> Agent | None:
        """The free agent of `skill` (proficiency >= min_prof) to offer a call: the longest idle, or
        with `by_proficiency` the most proficient first (among equals one on the caller's `server`, then
        the longest idle: a call kept on its own Asterisk needs no trunk)."""
        if not self.nfree[skill]:
            return None  # nobody free with this skill: skip the heaps
        heaps = self.free[skill]
        best: FreeEntry | None = None
        pop = heapq.heappop
        for p in range(MAX_PROF, min_prof - 1, -1):
            h = heaps[p]
            while h:
                top = h[0]
                if top[2] == top[3].version:
                    break
                pop(h)
            else:
                continue
            if by_proficiency:
                if server and top[3].server != server:
                    return _same_server(h, server) or top[3]
                return top[3]
            if best is None or top[:2] < best[:2]:
                best = top
        return None if best is None else best[3]

    def compact(self) -> None:
        """Drop stale free-index entries so memory tracks the agents, not their history."""
        n = 0
        for heaps in self.free.values():
            for i, heap in enumerate(heaps):
                live = [e for e in heap if e[2] == e[3].version]
                heapq.heapify(live)
                heaps[i] = live
                n += len(live)
        self._live_entries = n

    # --- queries

    def available(self, skill: str) -> int:
        return sum(1 for a in self.agents.values()
                   if a.state == AVAILABLE and a.device == DEVICE_FREE and skill in a.skills)

    def snapshot(self, now: float) -> list[dict[str, Any]]:
        """Every agent's state for a wallboard or a desktop reconnect."""
        return [{"agent_id": a.id, "state": a.state, "reason": a.reason, "since": a.since,
                 "in_state_s": None if a.since is None else now - a.since, "call_id": a.call.id if a.call else None,
                 "pending_not_ready": a.pending_not_ready, "skills": dict(a.skills),
                 "device": a.device}
                for a in self.agents.values()]


def _same_server(heap: list[FreeEntry], server: str) -> Agent | None:
    """The longest idle free agent on `server` among one proficiency level's entries (a scan: only when the
    head of the level is on another server)."""
    best: FreeEntry | None = None
    for entry in heap:
        if entry[2] == entry[3].version and entry[3].server == server and (best is None or entry[:2] < best[:2]):
            best = entry
    return None if best is None else best[3]
