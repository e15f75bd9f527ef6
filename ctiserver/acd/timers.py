"""The ACD's deadlines: when each timed rule is due, and one heap of them for `tick`.

Kinds: an agent's wrap-up ends; the ring guard (RONA) of an offer; the next escalation step of a
call; its next VIP phase; its next aging step; its max wait. Each deadline is also kept on its
record (`wrap_until`, `ring_deadline`, `step_at`, `phase_at`, `aging_at`, `maxwait_at`), so an entry
whose record moved on (answered, rescheduled, gone) is stale: `live` tells, and `tick` skips it.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from enum import IntEnum
from typing import Any

from .config import AcdConfig, QueueConfig
from .model import Destination
from .records import Agent, Call
from .states import GONE, OFFERED, WAITING, WRAP_UP


class Timer(IntEnum):
    WRAP = 0  # on an agent: wrap-up over
    RING = 1  # on a call: the offered agent did not answer in time (RONA)
    STEP = 2  # escalation step
    PHASE = 3  # VIP phase: account agent -> VIP desk -> everyone with the skill
    AGING = 4  # one tier rank up after aging_step_s
    MAXWAIT = 5  # overflow


Entry = tuple[float, int, int, Any]  # (when, push, Timer, Agent or Call)


def dest(d: Any) -> Destination:
    """A configured destination as the command's record."""
    return Destination(d.kind, d.target)


class Timers:
    """The deadline heap and the rules that say when a call's aging and max wait fall due."""

    def __init__(self, cfg: AcdConfig, queues: dict[str, QueueConfig]) -> None:
        self.cfg = cfg
        self._queues = queues
        self._heap: list[Entry] = []
        self._push = 0
        # per tier rank: its aging step (none for the first tier), last_resort flag, max wait
        self._aging_step = [t.aging_step_s if i > 0 else None for i, t in enumerate(cfg.tiers)]
        self._last_resort = [t.last_resort for t in cfg.tiers]
        self.tier_maxwait = [t.max_wait_s for t in cfg.tiers]
        self._rank = dict(cfg.tier_rank)

    def at(self, when: float, kind: Timer, obj: Agent | Call) -> None:
        self._push += 1
        heapq.heappush(self._heap, (when, self._push, kind, obj))

    def due(self, now: float) -> Iterator[Entry]:
        """Pop every entry due at or before `now` in time order (including ones pushed meanwhile)."""
        heap = self._heap
        pop = heapq.heappop
        while heap and heap[0][0] <= now:
            yield pop(heap)

    def next(self) -> float | None:
        """When the next live deadline falls (stale heads are dropped), or None."""
        heap = self._heap
        while heap:
            when, _, kind, obj = heap[0]
            if live(when, kind, obj):
                return when
            heapq.heappop(heap)
        return None

    # --- the timed rules of a call

    def wrap(self, a: Agent, until: float) -> None:
        a.wrap_until = until
        self.at(until, Timer.WRAP, a)

    def ring(self, call: Call, deadline: float) -> None:
        call.ring_deadline = deadline
        self.at(deadline, Timer.RING, call)

    def aging(self, call: Call, now: float) -> None:
        """The call's next aging step (none for the first tier, nor for a last-resort tier)."""
        step = self._aging_step[call.rank]
        if step is None or self._last_resort[self._rank[call.tier]]:
            call.aging_at = None
            return
        call.aging_at = now + step
        self.at(call.aging_at, Timer.AGING, call)

    def escalation(self, call: Call) -> None:
        """The call's next escalation step in its queue, from when it entered the queue."""
        steps = self._queues[call.skill].escalation
        if call.step < len(steps):
            call.step_at = call.queue_entered + steps[call.step].after_s
            self.at(call.step_at, Timer.STEP, call)
        else:
            call.step_at = None

    def phase(self, call: Call, at: float) -> None:
        call.phase_at = at
        self.at(at, Timer.PHASE, call)

    def maxwait(self, call: Call) -> None:
        """The earlier of the queue's max wait (from entering it) and the tier's (from arrival);
        none for a callback in place (nobody is on hold)."""
        q = self._queues[call.skill]
        tier_max = self.tier_maxwait[self._rank[call.tier]]
        best: tuple[float, Destination, str] | None = None
        if q.max_wait_s is not None:
            best = (call.queue_entered + q.max_wait_s, dest(q.overflow), "max_wait")
        if tier_max is not None:
            at = call.arrived + tier_max
            if best is None or at < best[0]:
                best = (at, dest(self.cfg.tier(call.tier).overflow or q.overflow), "tier_max_wait")
        if best is None or call.in_place:
            call.maxwait_at = None
            return
        call.maxwait_at, call.maxwait_dest, call.maxwait_reason = best
        self.at(call.maxwait_at, Timer.MAXWAIT, call)


def live(when: float, kind: int, obj: Any) -> bool:
    """Whether a deadline still stands (its record still says so and is in a state it applies to)."""
    if kind == Timer.WRAP:
        return bool(obj.state == WRAP_UP and obj.wrap_until == when)
    if obj.state == GONE:
        return False
    if kind == Timer.RING:
        return bool(obj.state == OFFERED and obj.ring_deadline == when)
    if kind == Timer.STEP:
        return bool(obj.step_at == when)
    if kind == Timer.PHASE:
        return bool(obj.phase_at == when)
    if kind == Timer.AGING:
        return bool(obj.aging_at == when and obj.state in (WAITING, OFFERED))
    return bool(obj.maxwait_at == when and obj.state == WAITING)
