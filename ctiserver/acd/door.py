"""Entering a queue and leaving it other than through an agent: the door rules, overflow, escalation.

The door of a queue refuses a caller when it is closed, nobody is logged in to it
(`block_when_no_agents`) or it is full (`max_waiting`): a new call is `Blocked`, a call moved from
another queue overflows on. A call leaves its queue for another queue, voicemail, a message or a
callback (`Overflow`) at its max wait or an escalation step with `move_to`; the other escalation
steps widen who may take it (lower proficiency, more skills), and so do VIP phases and aging:
a widened call looks for an agent again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..events import Event, Kind
from .agents import Roster
from .config import AcdConfig
from .model import Blocked, CancelCallback, Command, Destination, Overflow, ScheduleCallback
from .queues import Queues
from .records import Call, call_event, call_move
from .selection import Selection
from .states import LOGGED_OUT, WAITING
from .timers import Timers, dest


class Door:
    """The queue door and the ways out; `look(call, now, out)` offers a waiting call to a free agent."""

    def __init__(self, cfg: AcdConfig, roster: Roster, queues: Queues, timers: Timers, selection: Selection,
                 look: Callable[[Call, float, list[Command]], None]) -> None:
        self.cfg = cfg
        self._roster = roster
        self._queues = queues
        self._timers = timers
        self._selection = selection
        self._look = look
        self._queue_cfg = queues.config
        self._staffed = roster.staffed
        self._agents = roster.agents
        self._rank = dict(cfg.tier_rank)
        self._cid = cfg.customer_id_field

    def place(self, call_id: str, caller: str, skill: str, now: float, seq: int,
              out: list[Command]) -> tuple[float, int, bool]:
        """The place a new call takes: (place time, seq, redial). A caller who hung up within the
        redial window gets their old place back (and a callback scheduled for that abandon is
        cancelled); one whose callback keeps a place in this queue takes it over in person."""
        place_ts, redial = now, False
        redial_cancels: str | None = None
        if caller and self._queues.ghosts:
            ghost = self._queues.recall(caller, skill, now)
            if ghost is not None:
                place_ts, seq, redial = ghost[0], ghost[1], True
                redial_cancels = ghost[3]
        kept = self._queues.kept.get((caller, skill)) if caller else None
        if kept is not None and kept.state == WAITING and kept.skill == skill:
            # they call again while a callback keeps their place: they take that place in person
            if kept.place_ts < place_ts or (kept.place_ts == place_ts and kept.seq < seq):
                place_ts, seq = kept.place_ts, kept.seq
            redial = True
            out.append(call_event(Kind.ACD_OVERFLOW, now, kept, None, target="redial", reason="redial",
                                  wait_s=now - kept.arrived))
            self._queues.leave(kept)
            self._queues.forget(kept, "redial")
            out.append(CancelCallback(kept.id, call_id, "redial"))
        if redial_cancels is not None:  # they called back themselves: the outbound side can stand down
            out.append(CancelCallback(redial_cancels, call_id, "redial"))
        return place_ts, seq, redial

    def enter(self, call: Call, skill: str, now: float, out: list[Command], *, first: bool,
                     reason: str = "") -> None:
        """The door of a queue (no agents, full), then the call waits there and looks for an agent."""
        q = self._queue_cfg[skill]
        if call.in_place:
            pass  # a callback holds no line: no door, no max wait
        elif q.block_when_no_agents and self._staffed[skill] == 0 and not (
                call.account_agent and self._agents[call.account_agent].state != LOGGED_OUT):
            if first:
                self.block(call.id, skill, call.tier, call.caller, "no_agents", dest(q.overflow), now, out,
                            call=call)
            else:
                call.skill = skill
                self.overflow_to(call, dest(q.overflow), "no_agents", now, out)
            return
        elif q.max_waiting is not None and len(self._queues.members[skill]) >= q.max_waiting:
            to = dest(q.overflow)
            if to.kind == "queue":
                call.skill = skill
                out.append(call_event(Kind.ACD_OVERFLOW, now, call, None, target=f"queue:{to.target}",
                                    reason="full", wait_s=now - call.arrived))
                self.enter(call, to.target, now, out, first=first)
            elif first:
                self.block(call.id, skill, call.tier, call.caller, "full", to, now, out, call=call)
            else:
                call.skill = skill
                self.overflow_to(call, to, "full", now, out)
            return
        if not first:  # moved here from another queue: start this queue's rules afresh
            call.queue_entered = now
            call.extra_skills = ()
            call.step = 0
            call.step_at = None
        call.min_prof = q.min_proficiency
        self._queues.add(call, skill)
        if q.escalation:
            self._timers.escalation(call)
        self._selection.start_phases(call, now)
        if call.rank > 0:
            self._timers.aging(call, now)
        else:
            call.aging_at = None
        if not call.in_place and (q.max_wait_s is not None or
                                  self._timers.tier_maxwait[self._rank[call.tier]] is not None):
            self._timers.maxwait(call)
        else:
            call.maxwait_at = None
        ev = None
        if first:
            ev = self._enqueue_event(call, now, reason)
            out.append(ev)
        self._queues.register(call)
        if ev is not None:
            ev.data["position"] = self._queues.arrival_position(call)
        self._look(call, now, out)


    def _enqueue_event(self, call: Call, now: float, reason: str) -> Event:
        data: dict[str, Any] = {"caller": call.caller, "position": 0}
        if call.caller_name:
            data["caller_name"] = call.caller_name
        if call.lang:
            data["lang"] = call.lang
        if call.account_agent:
            data["account_agent"] = call.account_agent
        if call.server:
            data["server"] = call.server  # the Asterisk the caller is on (a takeover rebuilds it)
        if call.redial:
            data["redial"] = True
            data["restored_wait_s"] = now - call.place_ts
        if call.customer and self._cid in call.customer:
            data["customer"] = str(call.customer[self._cid])
        if call.in_place:  # a callback the outbound side holds, not a caller on the line
            data["kind"] = "callback"
            data["reason"] = reason
        elif call.kind:
            data["kind"] = call.kind
        return call_event(Kind.ACD_ENQUEUE, now, call, None, **data)


    def block(self, call_id: str, skill: str, tier: str, caller: str, reason: str, to: Destination,
               now: float, out: list[Command], call: Call | None = None) -> None:
        out.append(Event(Kind.ACD_BLOCKED, ts=now, call_id=call_id, queue=skill, tier=tier,
                         data={"reason": reason, "caller": caller, "target": target(to)}))
        out.append(Blocked(call_id, reason, to))
        if to.kind == "callback" and caller:
            due = now + self.cfg.callback_due_s
            out.append(Event(Kind.ACD_CALLBACK, ts=now, call_id=call_id, queue=skill, tier=tier,
                             data={"reason": reason, "due_ts": due, "number": caller}))
            out.append(ScheduleCallback(call_id, caller, skill, tier, due, reason,
                                        call.customer if call else None))


    def escalate(self, call: Call, now: float, out: list[Command]) -> None:
        step = self._queue_cfg[call.skill].escalation[call.step]
        if step.move_to is not None:
            if call.state == WAITING:
                self.overflow_to(call, Destination("queue", step.move_to), "escalation", now, out)
                return
            call.step_at = None  # ringing now; if that fails the call stays where it is
            return
        if step.min_proficiency is not None:
            call.min_prof = min(call.min_prof, step.min_proficiency)
        call.extra_skills += tuple(s for s in step.add_skills if s not in call.extra_skills)
        call.step += 1
        self._timers.escalation(call)
        self.widened(call, now, out)


    def widened(self, call: Call, now: float, out: list[Command]) -> None:
        """More agents may take the call now (escalation, VIP phase, aging): look again."""
        self._selection.compute_pools(call)
        if call.state == WAITING:
            self._queues.register(call)
            self._look(call, now, out)


    def overflow_to(self, call: Call, to: Destination, reason: str, now: float, out: list[Command]) -> None:
        out.append(call_event(Kind.ACD_OVERFLOW, now, call, None, target=target(to), reason=reason,
                            wait_s=now - call.arrived))
        self._queues.leave(call)
        if to.kind == "queue" and to.target != call.skill:
            call_move(call, "move")
            call.version += 1
            self.enter(call, to.target, now, out, first=False)
            return  # placed there, or that queue overflowed it in turn
        self._queues.forget(call, "overflow")
        if to.kind == "callback" and (call.number or call.caller):
            due = now + self.cfg.callback_due_s
            out.append(call_event(Kind.ACD_CALLBACK, now, call, None, reason=reason, due_ts=due,
                                number=call.number or call.caller))
            out.append(ScheduleCallback(call.id, call.number or call.caller, call.skill, call.tier, due,
                                        reason, call.customer))
        out.append(Overflow(call.id, to, reason))


def target(d: Destination) -> str:
    """A destination as logged: `kind:target`, or just the kind."""
    return f"{d.kind}:{d.target}" if d.target else d.kind
