"""Pairing a caller with an agent: the offer, the ring guard, and a ring that failed (RONA).

An offer reserves the agent (`offer` in the agent table), takes the call out of the waiting count
(`offer` in the call table), arms the ring guard (ring timeout + guard) and says `Offer` to the
delivery side. A RONA puts the call back at the head of its place (its waiting key never changed)
and the agent on not-ready ("rona", or "unreachable" when the phone could not be rung).
"""

from __future__ import annotations

from ..events import Kind
from .agents import Roster
from .config import AcdConfig
from .model import Command, Offer
from .queues import Queues
from .records import DEVICE_FREE, Agent, Call, call_event
from .selection import Selection
from .timers import Timers

RING_FAIL_REASON = {"noanswer": "rona", "busy": "rona", "timeout": "rona", "chanunavail": "unreachable",
                    "congestion": "unreachable"}


class Offers:
    """Offers waiting calls to free agents (and free agents to waiting calls) through the selection."""

    def __init__(self, cfg: AcdConfig, roster: Roster, queues: Queues, timers: Timers,
                 selection: Selection) -> None:
        self._roster = roster
        self._move = roster.move
        self._queues = queues
        self._timers = timers
        self._selection = selection
        self._ring_timeout = cfg.ring_timeout_s
        self._ring_guard = cfg.ring_guard_s

    def match_call(self, call: Call, now: float, out: list[Command]) -> None:
        """Offer a waiting call to the best free agent of its pools, in pool order."""
        pick = self._selection.match_call(call)
        if pick is not None:
            self.offer(call, pick[0], pick[1], now, out)

    def agent_free(self, a: Agent, now: float, out: list[Command]) -> None:
        """A newly available agent takes the best waiting call it is eligible for, or waits as free. An agent
        whose phone is not free (still busy from the ACD's own call: its hang-up not reported yet) waits
        unpublished: `AcdEngine.device_state` calls this again when the phone is free."""
        if a.device != DEVICE_FREE:
            return
        pick = self._selection.best_call(a)
        if pick is not None:
            self.offer(pick[0], a, pick[1], now, out)
        else:
            self._roster.publish(a)

    def offer(self, call: Call, a: Agent, pool: str, now: float, out: list[Command]) -> None:
        """Reserve `a` for `call` (found in `pool`) and ring them."""
        self._move(a, "offer", now, out, call=call)
        a.call = call
        self._queues.offered(call)
        call.agent = a
        call.offered_at = now
        call.rang_at = None
        call.offers += 1
        timeout = self._ring_timeout
        self._timers.ring(call, now + timeout + self._ring_guard)
        via = self._selection.via(call, a, pool)
        extra = {"number": call.number} if call.in_place else {}  # who the agent will call (screen-pop)
        out.append(call_event(Kind.ACD_OFFER, now, call, a.id, ring_timeout_s=timeout, via=via,
                              proficiency=a.skills.get(call.skill), attempt=call.offers,
                              wait_s=now - call.arrived, kind="callback" if call.in_place else "inbound",
                              **extra))
        out.append(Offer(call.id, a.id, call.skill, timeout, call.tier, call.caller,
                         "callback" if call.in_place else "inbound", call.number))

    def rona(self, call: Call, now: float, reason: str, out: list[Command]) -> bool:
        """The offered agent did not take the call. True: its max wait passed meanwhile, the caller
        must overflow now (the engine does it); else it is back in its place and offered again."""
        a = call.agent
        assert a is not None
        out.append(call_event(Kind.ACD_RONA, now, call, a.id, **ring_times(call, now), reason=reason))
        a.call = None
        call.agent = None
        self._queues.back_to_waiting(call)
        call.ring_deadline = None
        self._move(a, "ring_fail", now, out, call=call, reason=RING_FAIL_REASON.get(reason, "rona"))
        a.pending_not_ready = None
        if call.prefer == a.id:  # the agent it came back to did not take it: an ordinary caller now
            call.prefer = None
            self._selection.compute_pools(call)
        if call.maxwait_at is not None and call.maxwait_at <= now:
            return True
        self._queues.register(call)  # same key as before: back to the head of its place
        self.match_call(call, now, out)
        return False



def ring_times(call: Call, now: float) -> dict[str, float]:
    """ring_s: how long the agent's phone rang (from the ring's start; from the offer if it never
    started); setup_s: from the offer, the agent reserved, to the ring's start."""
    if call.rang_at is None:
        return {"ring_s": max(0.0, now - call.offered_at)}
    return {"ring_s": max(0.0, now - call.rang_at), "setup_s": max(0.0, call.rang_at - call.offered_at)}
