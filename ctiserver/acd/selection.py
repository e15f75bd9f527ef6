"""Which caller for which agent: the pools a call may be taken from, VIP phases, and the picks.

A call's pools, in the order they are tried: the agent it comes back to ("@<agent>", a transfer
that could not complete), a VIP's account agent ("@<agent>"), then, as the VIP phases open, the
VIP desk, then its skill at the queue's minimum proficiency and the skills escalation added. Each
pool's waiting heap is ordered (tier rank, own-agent first, place time, seq): VIP first and the
blacklist last (a last-resort tier is the highest rank and never ages), FIFO within a tier.

- `match_call`: a call that may be taken (new, back from a RONA, widened) looks for a free agent,
  pool by pool: the longest idle, or the most proficient with `agent_selection: proficiency`.
- `best_call`: a freed agent takes the best head among the pools it belongs to.
Invariant the engine keeps with these: no available agent could take any waiting call.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop

from .agents import BUSY_RETURNING, Roster
from .config import AcdConfig
from .queues import Queues, WaitEntry, clean_top
from .records import DEVICE_FREE, PH_ACCOUNT, PH_ALL, PH_DESK, Agent, Call
from .states import AVAILABLE, WAITING


class Selection:
    """The pools of each call and the picks over the roster's and the queues' indexes."""

    def __init__(self, cfg: AcdConfig, roster: Roster, queues: Queues,
                 phase_deadline: Callable[[Call, float], None]) -> None:
        self.cfg = cfg
        self._roster = roster
        self._queues = queues
        self._phase_deadline = phase_deadline  # schedules a call's next VIP phase
        self._vip_tier = cfg.vip.tier
        self._desk = cfg.vip.desk_skill
        self._by_prof = cfg.agent_selection == "proficiency"
        self._plain: dict[str, dict[int, tuple[tuple[str, int], ...]]] = {}  # skill -> min prof -> pools

    # --- pools and VIP phases

    def start_phases(self, call: Call, now: float) -> None:
        """VIP one-to-one: account agent first, then the desk, then the whole skill."""
        if call.tier != self._vip_tier:
            call.phase, call.phase_at = PH_ALL, None
            self.compute_pools(call)
        else:
            call.phase = PH_ACCOUNT
            self.next_phase(call, now)  # computes the pools

    def next_phase(self, call: Call, now: float) -> None:
        """Skip the phases that have nobody to wait for; schedule the end of the first that has."""
        vip = self.cfg.vip
        agents = self._roster.agents
        while call.phase < PH_ALL:
            if call.phase == PH_ACCOUNT:
                acct = agents.get(call.account_agent) if call.account_agent else None
                # Wait only for an account agent who is busy and will come back, never for an absent one.
                if acct is not None and vip.account_agent_wait_s > 0 and acct.state in BUSY_RETURNING:
                    self._phase_deadline(call, now + vip.account_agent_wait_s)
                    break
            else:
                # the desk phase starts when the account phase ends (or at once without one),
                # and only when some desk agent is at work (not all on a break)
                desk = vip.desk_skill
                if desk is not None and vip.desk_wait_s > 0 and self._roster.serving[desk] > 0:
                    self._phase_deadline(call, now + vip.desk_wait_s)
                    break
            call.phase += 1
        if call.phase == PH_ALL:
            call.phase_at = None
        self.compute_pools(call)

    def compute_pools(self, call: Call) -> None:
        if call.tier != self._vip_tier and not call.extra_skills and call.prefer is None:
            # the common case, shared: no new objects per call for the collector to walk
            by_prof = self._plain.get(call.skill)
            if by_prof is None:
                by_prof = self._plain[call.skill] = {}
            shared = by_prof.get(call.min_prof)
            if shared is None:
                shared = by_prof[call.min_prof] = ((call.skill, call.min_prof),)
            call.pools = shared
            return
        pools: list[tuple[str, int]] = []
        if call.prefer is not None:
            pools.append(("@" + call.prefer, 0))
        if call.tier == self._vip_tier:
            if call.account_agent and call.account_agent != call.prefer:
                pools.append(("@" + call.account_agent, 0))
            desk = self._desk
            if call.phase >= PH_DESK and desk is not None and desk != call.skill:
                pools.append((desk, 1))
        if call.phase >= PH_ALL:
            pools.append((call.skill, call.min_prof))
            pools.extend((s, 1) for s in call.extra_skills if s != call.skill)
        call.pools = tuple(pools)

    # --- picks

    def match_call(self, call: Call) -> tuple[Agent, str] | None:
        """The free agent a waiting call goes to, and the pool it was found in, in pool order."""
        agents = self._roster.agents
        best_free = self._roster.best_free
        for pool, minp in call.pools:
            if pool[0] == "@":
                a = agents.get(pool[1:])
                if a is not None and a.state == AVAILABLE and (
                        a.device == DEVICE_FREE or (a.device_own and a.id == call.prefer)):
                    return a, pool  # (a caller coming back is not held up by the hang-up of their own call)
                continue
            agent = best_free(pool, minp, self._by_prof, call.server)
            if agent is not None:
                return agent, pool
        return None

    def best_call(self, a: Agent) -> tuple[Call, str] | None:
        """The best waiting call a newly available agent may take, and the pool it was found in."""
        best: WaitEntry | None = None
        best_pool = ""
        waiting = self._queues.waiting
        own = waiting.get("@" + a.id)
        if own:
            for heap in own.values():
                top = clean_top(heap)
                if top is not None and (best is None or top < best):
                    best, best_pool = top, "@" + a.id
        pop = heappop
        for skill, prof in a.skills.items():
            levels = waiting.get(skill)
            if not levels:
                continue
            for minp, heap in levels.items():
                if minp > prof:
                    continue
                while heap:  # drop stale entries (calls offered, gone or re-registered)
                    top = heap[0]
                    c = top[6]
                    if top[5] == c.version and c.state == WAITING:
                        if best is None or top < best:
                            best, best_pool = top, skill
                        break
                    pop(heap)
        return None if best is None else (best[6], best_pool)

    def via(self, call: Call, a: Agent, pool: str) -> str:
        """How the agent came to be offered the call (logged in the offer event)."""
        if pool == call.skill:
            return "skill"
        if pool[0] == "@":
            return "return" if a.id == call.prefer else "account"
        if pool == self._desk and call.tier == self._vip_tier:
            return "vip_desk"
        return "escalated"

