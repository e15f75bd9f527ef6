"""The ACD's queues: the calls it holds, who waits where, and the caller's place.

Waiting calls are indexed per pool (a skill, or "@<agent>" for a call that asks for one agent) and
per minimum proficiency, each a heap keyed (tier rank, account-first, place time, seq): the head is
the caller that pool serves next. Entries carry the call's version; an entry whose call moved on
(offered, gone, re-registered with other pools) is dropped when it reaches the top, and the heaps
are compacted when stale entries pile up. Per queue and tier the waiting count is kept, so counts
and the arrival position are O(tiers). The redial memory (a caller who hung up keeps their place for
`redial_window_s`) and the kept places (a callback waiting in a queue for a caller who may ring
again) live here too.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

from .config import AcdConfig, QueueConfig
from .model import IllegalCallTransition, UnknownCall
from .records import Call, call_move, call_next
from .states import OFFERED, WAITING

WaitEntry = tuple[int, int, float, int, int, int, Call]  # (rank, 0 own/1 skill, place, seq, push, version, call)
Ghost = tuple[float, int, float, str | None]  # (place_ts, seq, expires, id of the call whose callback is pending)


class Queues:
    """Every call the engine holds, and the waiting index the selection reads."""

    def __init__(self, cfg: AcdConfig) -> None:
        skills = list(cfg.skills)
        self.calls: dict[str, Call] = {}
        self.members: dict[str, set[Call]] = {s: set() for s in skills}  # waiting or offered, per queue
        # waiting (not offered) calls per queue and tier rank: O(1) counts and arrival positions
        self.nwait: dict[str, list[int]] = {s: [0] * len(cfg.tiers) for s in skills}
        self.waiting: dict[str, dict[int, list[WaitEntry]]] = {}
        self.config: dict[str, QueueConfig] = {s: cfg.queue(s) for s in skills}
        self.aht: dict[str, float] = {s: q.handle_time_s for s, q in self.config.items()}
        self.ghosts: dict[tuple[str, str], Ghost] = {}  # (caller, skill), ordered by expiry
        self.kept: dict[tuple[str, str], Call] = {}  # (number, skill) -> a callback waiting in the queue
        self._push = 0
        self._live_entries = 0  # pushes since the last compaction

    def get(self, call_id: str, event: str) -> Call:
        """The call `event` is for, if its state accepts it (UnknownCall, IllegalCallTransition).
        `event` "position" (a query, no transition) asks for a waiting call."""
        c = self.calls.get(call_id)
        if c is None:
            raise UnknownCall(f"unknown call {call_id}")
        if event == "position":
            if c.state != WAITING:
                raise IllegalCallTransition(call_id, c.state, event, (WAITING,))
        else:
            call_next(c, event)
        return c

    # --- membership

    def add(self, call: Call, skill: str) -> None:
        """The call waits in `skill` from now on."""
        call.skill = skill
        self.calls[call.id] = call
        self.members[skill].add(call)
        self.nwait[skill][call.rank] += 1

    def leave(self, call: Call) -> None:
        """Out of its queue's members (answered, gone, or moving to another queue)."""
        members = self.members[call.skill]
        if call in members:
            members.discard(call)
            if call.state == WAITING:
                self.nwait[call.skill][call.rank] -= 1

    def offered(self, call: Call) -> None:
        call_move(call, "offer")
        call.version += 1
        self.nwait[call.skill][call.rank] -= 1

    def back_to_waiting(self, call: Call) -> None:
        """The offered agent did not take it: waiting again, in the same place."""
        call_move(call, "ring_fail")
        self.nwait[call.skill][call.rank] += 1

    def set_rank(self, call: Call, rank: int) -> None:
        if call.state == WAITING and call in self.members[call.skill]:
            counts = self.nwait[call.skill]
            counts[call.rank] -= 1
            counts[rank] += 1
        call.rank = rank

    def forget(self, call: Call, event: str) -> None:
        """The call leaves the engine (`event` from the call table: end, abandon, overflow...)."""
        call_move(call, event)
        if call.in_place and self.kept.get((call.caller, call.skill)) is call:
            del self.kept[(call.caller, call.skill)]
        self.calls.pop(call.id, None)
        call.version += 1

    # --- the waiting index

    def register(self, call: Call) -> None:
        """(Re)publish the call in the waiting heaps of its pools; older entries go stale."""
        call.version = v = call.version + 1
        rank, place, seq = call.rank, call.place_ts, call.seq
        waiting = self.waiting
        push = self._push
        for pool, minp in call.pools:
            levels = waiting.get(pool)
            if levels is None:
                levels = waiting[pool] = {}
            heap = levels.get(minp)
            if heap is None:
                heap = levels[minp] = []
            push += 1
            heapq.heappush(heap, (rank, 0 if pool[0] == "@" else 1, place, seq, push, v, call))
        self._push = push
        self._live_entries += len(call.pools)
        if self._live_entries > 4 * len(self.calls) + 4096:
            self.compact()

    def compact(self) -> None:
        """Drop stale waiting entries so memory tracks live calls, not history."""
        n = 0
        for levels in self.waiting.values():
            for minp, heap in list(levels.items()):
                live = [e for e in heap if e[5] == e[6].version and e[6].state == WAITING]
                heapq.heapify(live)
                levels[minp] = live
                n += len(live)
        self._live_entries = n

    # --- redials: a caller who hung up keeps their place for a while

    def remember(self, call: Call, expires: float, callback_call: str | None) -> None:
        key = (call.caller, call.skill)
        self.ghosts.pop(key, None)  # re-insert at the end: the dict stays ordered by expiry
        self.ghosts[key] = (call.place_ts, call.seq, expires, callback_call)

    def recall(self, caller: str, skill: str, now: float) -> Ghost | None:
        """The place a caller who rang again within the redial window had (and forget it)."""
        g = self.ghosts
        while g:  # prune the expired ones (oldest first)
            key = next(iter(g))
            if g[key][2] > now:
                break
            del g[key]
        return g.pop((caller, skill), None)

    # --- queries

    def position(self, call: Call) -> tuple[int, int]:
        """(1-based place among the waiting calls of its queue, members of the queue)."""
        key = (call.rank, call.place_ts, call.seq)
        members = self.members[call.skill]
        ahead = sum(1 for c in members if c.state == WAITING and (c.rank, c.place_ts, c.seq) < key)
        return ahead + 1, len(members)

    def arrival_position(self, call: Call) -> int:
        """Position of a call just queued: O(tiers) unless it came back to an older place (a redial,
        a callback keeping its place)."""
        if call.redial or call.place_ts < call.arrived:
            return self.position(call)[0]
        return sum(self.nwait[call.skill][: call.rank + 1])

    def waiting_count(self, skill: str | None = None) -> int:
        if skill is None:
            return sum(sum(counts) for counts in self.nwait.values())
        return sum(self.nwait[skill])

    def waiting_calls(self, now: float, limit: int | None = None) -> list[dict[str, Any]]:
        """Callers waiting (or being rung) in every queue, in the order each queue serves them."""
        rows = [(c.rank, c.place_ts, c.seq, c) for members in self.members.values() for c in members]
        if limit is not None and len(rows) > limit:
            rows = sorted(rows, key=lambda r: r[3].arrived)[:limit]
        rows.sort(key=lambda r: (r[3].skill, r[0], r[1], r[2]))
        return [{"call_id": c.id, "queue": c.skill, "tier": c.tier, "caller": c.caller,
                 "wait_s": now - c.arrived, "ringing": c.state == OFFERED, "callback": c.in_place}
                for _, _, _, c in rows]

    def snapshot(self, skill: str, tiers: Iterable[str], now: float) -> dict[str, Any]:
        """One queue: waiting callers by tier, the longest current wait, callbacks, ringing."""
        members = self.members[skill]
        waiting = [c for c in members if c.state == WAITING]
        return {
            "waiting": len(waiting),
            "by_tier": {t: n for t, n in zip(tiers, self.nwait[skill], strict=True) if n},
            # of the callers on the line (a callback holding a place holds nobody on the phone)
            "longest_wait_s": max((now - c.arrived for c in waiting if not c.in_place), default=0.0),
            "callbacks_in_place": sum(1 for c in waiting if c.in_place),
            "ringing": len(members) - len(waiting),
        }


def clean_top(heap: list[WaitEntry]) -> WaitEntry | None:
    """The live head of a waiting heap (stale entries dropped), or None."""
    while heap:
        top = heap[0]
        if top[5] == top[6].version and top[6].state == WAITING:
            return top
        heapq.heappop(heap)
    return None

