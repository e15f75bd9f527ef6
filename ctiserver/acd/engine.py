"""The ACD routing engine: pure, deterministic, driven by `now`; the facade over its parts.

Every input takes `now` (epoch seconds) and returns a list of commands: `Event`s to
log, and `Offer` / `CancelOffer` / `Overflow` / `Blocked` / `ScheduleCallback` for
the delivery side. `next_deadline()` says when `tick(now)` must run next (wrap-up
ends, ring guards, escalation, aging, max waits). Nothing here touches a socket, a
file, the event loop or the wall clock, so the live runtime and the simulator
drive the very same rules.

Inputs: `login`, `logout`, `set_ready`, `set_not_ready`, `device_state`, `enqueue`, `ring_started`, `dial_began`,
`take_timeout`, `ring_answered`, `ring_failed`, `call_ended`, `abandon`, `withdraw`,
`request_callback`, `retier`, `tick`. Queries: `position`, `waiting_calls`, `agent_state`, `agent_call`,
`call_state`, `call_agent`, `waiting_count`, `handle_time`, `agents_snapshot`,
`queues_snapshot`. A call's life: enqueue -> (Offer) -> ring_started -> ring_answered
-> call_ended; or ring_failed/guard (RONA, back to its place); or abandon / Overflow.

An agent's phone busy with a call that is not the ACD's (`device_state`: Asterisk's device state) is
on_call with reason "direct" and offered nothing until it is free; an unregistered phone makes the agent
not ready ("unregistered") until it registers. Busy during the ACD's own offer or call counts for nothing
(the ACD knows those), but an agent whose phone is still busy when the ACD call is over waits unoffered.

Invariant kept after every input: no available agent with a free phone could take any waiting
call. So a new call only looks for an agent, a freed agent only looks for a call,
and a call whose eligibility widened (escalation, VIP phase, aging) looks again.

The parts (each owns its state; this class wires them and holds the call flow):
- states.py: agent and call states, and the two transition tables (a move not in them is an error);
- agents.py (`Roster`): agents, their moves through the table, head counts, the free-agent index;
- queues.py (`Queues`): the calls held, the per-pool waiting heaps, redial memory, kept places;
- timers.py (`Timers`): the deadline heap and when each timed rule falls due;
- selection.py (`Selection`): a call's pools and VIP phases, which caller for which agent;
- phones.py (`Phones`): what an agent's phone as Asterisk reports it does to the agent.
"""

from __future__ import annotations

from typing import Any

from ..events import Event, Kind
from .agents import MAX_PROF, Roster
from .config import AcdConfig
from .door import Door
from .model import (
    AcdError,
    CancelOffer,
    Command,
    DuplicateCall,
    IllegalTransition,
    Position,
    QueueClosed,
    ScheduleCallback,
    UnknownCall,
    UnknownSkill,
    UnknownTier,
)
from .offers import Offers, ring_times
from .phones import Phones
from .queues import Queues
from .records import (
    DEVICE_FREE,
    DEVICE_STATUSES,
    Agent,
    Call,
    call_event,
    call_move,
)
from .selection import Selection
from .states import (
    AVAILABLE,
    GONE,
    NOT_READY,
    OFFERED,
    ON_CALL,
    RESERVED,
    RINGING,
    TALKING,
    WAITING,
    WRAP_UP,
)
from .timers import Timer, Timers, dest

ACD_RETIER = Kind.ACD_RETIER  # supervisor moved a waiting caller; data: previous, tier

_WRAP, _RING, _STEP, _PHASE, _AGING = Timer.WRAP, Timer.RING, Timer.STEP, Timer.PHASE, Timer.AGING
__all__ = ["ACD_RETIER", "GONE", "MAX_PROF", "OFFERED", "TALKING", "WAITING", "AcdEngine"]


class AcdEngine:
    """Skill- and tier-based routing for one contact centre (see module docstring)."""

    def __init__(self, cfg: AcdConfig) -> None:
        self.cfg = cfg
        self._rank = dict(cfg.tier_rank)
        self._skills = set(cfg.skills)
        self.roster = Roster(cfg.skills)
        self.queues = Queues(cfg)
        self.timers = Timers(cfg, self.queues.config)
        self.selection = Selection(cfg, self.roster, self.queues, self.timers.phase)
        self.offers = Offers(cfg, self.roster, self.queues, self.timers, self.selection)
        self.door = Door(cfg, self.roster, self.queues, self.timers, self.selection, self.offers.match_call)
        self.phones = Phones(self.roster, self.offers)
        self._to_work = self.phones.to_work
        # the parts' tables under the names the engine's tests and tools read
        self._agents = self.roster.agents
        self._calls = self.queues.calls
        self._staffed = self.roster.staffed
        self._serving = self.roster.serving
        self._kept = self.queues.kept
        self._queue_cfg = self.queues.config
        self._seq = 0
        self._cid = cfg.customer_id_field
        self._ring_timeout = cfg.ring_timeout_s
        self._ring_guard = cfg.ring_guard_s
        self._move = self.roster.move
        for a in cfg.agents:
            self.add_agent(a.id, dict(a.skills), server=a.server or "")

    # ------------------------------------------------------------------ agents

    def add_agent(self, agent_id: str, skills: dict[str, int], *, server: str = "") -> None:
        """Register an agent (logged out). Config agents are added by the constructor."""
        self.roster.add(agent_id, skills, server)

    def login(self, agent_id: str, now: float, *, ready: bool | None = None) -> list[Command]:
        a = self.roster.get(agent_id)
        out: list[Command] = []
        ready = self.cfg.login_ready if ready is None else ready
        if ready:
            self._to_work(a, "login", now, out, free_to=AVAILABLE)
        else:
            self._move(a, "login", now, out, reason="login", to=NOT_READY)
        return out

    def logout(self, agent_id: str, now: float) -> list[Command]:
        a = self.roster.get(agent_id)
        out: list[Command] = []
        if a.call is not None:  # on_call with a caller of the ACD's (on_call "direct" may log out)
            raise IllegalTransition(a.id, str(a.state), "logout")
        self._move(a, "logout", now, out)
        a.pending_not_ready = None
        return out

    def set_ready(self, agent_id: str, now: float) -> list[Command]:
        """Ready: ends not-ready or wrap-up early. While busy it cancels a pending not-ready."""
        a = self.roster.get(agent_id)
        out: list[Command] = []
        if a.state in (RESERVED, RINGING, ON_CALL) and a.pending_not_ready is not None:
            a.pending_not_ready = None
            return out
        if a.state == AVAILABLE:
            return out  # already ready: a double click is harmless
        a.pending_not_ready = None
        self._to_work(a, "ready", now, out)
        return out

    def set_not_ready(self, agent_id: str, reason: str, now: float) -> list[Command]:
        """Not ready with a reason; while ringing or talking it takes effect after wrap-up."""
        a = self.roster.get(agent_id)
        out: list[Command] = []
        if not reason:
            raise AcdError("a not-ready reason is required")
        if a.state in (RESERVED, RINGING, ON_CALL):
            a.pending_not_ready = reason
            return out
        self._move(a, "not_ready", now, out, reason=reason)
        return out

    def device_state(self, agent_id: str, device: str, now: float) -> list[Command]:
        """The agent's phone as Asterisk reports it: free / busy / unavailable (records.DEVICE_*); the
        rule is phones.py's."""
        a = self.roster.get(agent_id)
        if device not in DEVICE_STATUSES:
            raise AcdError(f"agent {agent_id}: unknown device state '{device}'")
        out: list[Command] = []
        self.phones.device_state(a, device, now, out)
        return out

    # ------------------------------------------------------------------- calls

    def enqueue(self, call_id: str, skill: str, tier: str | None, caller: str, now: float,
                account_agent: str | None = None, customer: dict[str, Any] | None = None,
                kind: str = "", caller_name: str = "", prefer_agent: str | None = None,
                lang: str = "", since: float | None = None, server: str = "") -> list[Command]:
        """A caller asks for an agent. tier None: classify by `customer` with the tier rules. `kind`
        marks a leg that is not a new customer call, e.g. "consult" (an agent's warm transfer), in the
        enqueue event (the KPIs leave such legs out of the inbound figures). `caller_name` is the
        CallerID name Asterisk gave (the screen-pop shows it for a caller without a customer record);
        `lang` the caller's language (in the enqueue event: reports and the pop show it). `server`: the
        Asterisk the caller is on (of agents equally proficient, one on the same server is preferred).

        `prefer_agent`: a caller coming back to the agent who had them (a transfer that could not
        complete). That agent is offered the call before anyone, at once if they are free or still
        wrapping this caller up (the wrap-up ends: the conversation goes on), even while their phone
        still shows the ACD's own call, whose hang-up Asterisk may report after the transfer failed (if
        the phone is in fact still busy, the ring fails: a RONA); otherwise the call waits
        in `skill` for whoever is free first, that agent included. Once that agent's ring fails the
        call is an ordinary one of its queue.

        The account agent defaults to the one configured for the customer's id
        (`customer[cfg.customer_id_field]`).

        `since`: a caller resumed after a takeover (ctiserver/ha/): first queued at `since` by the node that
        led before; they keep their place and their wait (arrival, place and queue entry at `since`, so the
        queue's timers run on), and the enqueue event says `resumed` (the KPIs count the first enqueue).
        """
        if tier is None:
            tier = self.cfg.classify(customer)
        self._check_new(call_id, skill, tier)
        account_agent = self._account_agent(account_agent, customer)
        out: list[Command] = []
        q = self._queue_cfg[skill]
        if q.hours is not None and not self.cfg.calendar.is_open(q.hours, now):
            self.door.block(call_id, skill, tier, caller, "closed", dest(q.closed), now, out)
            return out
        self._seq += 1
        place_ts, seq, redial = self.door.place(call_id, caller, skill, now, self._seq, out)
        arrived = now if since is None else min(since, now)
        call = Call(call_id, skill, tier, self._rank[tier], caller, customer, account_agent,
                    arrived=arrived, place_ts=min(place_ts, arrived), seq=seq, queue_entered=arrived,
                    redial=redial, kind=kind, caller_name=caller_name, lang=lang, server=server)
        back = self._agents.get(prefer_agent) if prefer_agent is not None else None
        if back is not None and back.state in (AVAILABLE, WRAP_UP, RESERVED, RINGING, ON_CALL):
            call.prefer = back.id
            if back.state == WRAP_UP:  # they were wrapping up this caller: the conversation resumes
                back.wrap_until = None
                if back.device == DEVICE_FREE:
                    self._move(back, "ready", now, out)  # offered this caller as it enters
                else:
                    self._to_work(back, "ready", now, out)  # their phone is busy elsewhere: offered nothing
        self.door.enter(call, skill, now, out, first=True)
        if since is not None:
            for cmd in out:
                if isinstance(cmd, Event) and cmd.kind == Kind.ACD_ENQUEUE and cmd.call_id == call_id:
                    cmd.data["resumed"] = True
        if back is not None and back.state == AVAILABLE and not back.published:
            self.offers.agent_free(back, now, out)  # the caller did not get in (a closed queue): back to work
        return out

    def enqueue_callback(self, call_id: str, skill: str, tier: str, number: str, now: float, *,
                         place_ts: float | None = None, customer: dict[str, Any] | None = None,
                         reason: str = "scheduled") -> list[Command]:
        """A callback the outbound side holds (scheduled after an abandon or overflow, or a kept place
        restored after a restart) waits for an agent like a callback in place: nobody is on hold, so
        no max wait and no door (full, no agents); it keeps `place_ts` (its original place) if given.
        A closed queue refuses it (`QueueClosed`): the outbound side tries again when it opens."""
        self._check_new(call_id, skill, tier)
        if not number:
            raise AcdError(f"call {call_id}: no number to call back")
        if not self.queue_open(skill, now):
            raise QueueClosed(f"queue '{skill}' is closed")
        self._seq += 1
        call = Call(call_id, skill, tier, self._rank[tier], number, customer, self._account_agent(None, customer),
                    arrived=now,
                    place_ts=now if place_ts is None else min(place_ts, now), seq=self._seq,
                    queue_entered=now, in_place=True, number=number)
        out: list[Command] = []
        self.door.enter(call, skill, now, out, first=True, reason=reason)
        if call.state != GONE:
            self._kept[(number, skill)] = call
        return out

    def queue_open(self, skill: str, now: float) -> bool:
        """Whether the queue's hours set (calendar.yaml; none: always) is open at `now`."""
        q = self._queue_cfg.get(skill)
        if q is None:
            raise UnknownSkill(f"unknown skill '{skill}'")
        return q.hours is None or self.cfg.calendar.is_open(q.hours, now)

    def ring_started(self, call_id: str, now: float, *, timeout_owned: bool = False) -> list[Command]:
        """The agent's phone rings (the dialer starts it). timeout_owned: the dialer enforces the ring
        timeout itself (Asterisk Dial does), so the engine's RONA guard is dropped."""
        call = self.queues.get(call_id, "ring")
        assert call.agent is not None
        out: list[Command] = []
        if call.agent.state == RESERVED:
            self._move(call.agent, "ring", now, out, call=call)
        if call.rang_at is None:
            call.rang_at = now
        if timeout_owned:
            call.ring_deadline = None
        return out

    def dial_began(self, call_id: str, at: float) -> list[Command]:
        """Asterisk began dialling the offered agent at `at` (AMI DialBegin, as Asterisk stamped it): ring
        time runs from here to the answer (or the RONA), not from the offer, which may have waited for
        the caller's announcement to stop. Also starts the ring if the dialer has not said so yet."""
        call = self.queues.get(call_id, "ring")
        assert call.agent is not None
        out: list[Command] = []
        if call.agent.state == RESERVED:
            self._move(call.agent, "ring", at, out, call=call)
        call.rang_at = at
        return out

    def ring_answered(self, call_id: str, now: float) -> list[Command]:
        call = self.queues.get(call_id, "answer")
        a = call.agent
        assert a is not None
        out: list[Command] = []
        self._move(a, "answer", now, out, call=call)
        call_move(call, "answer")
        call.answered_at = now
        call.ring_deadline = call.step_at = call.phase_at = call.aging_at = call.maxwait_at = None
        self.queues.leave(call)
        data: dict[str, Any] = {"wait_s": now - call.arrived, **ring_times(call, now), "offers": call.offers}
        if call.in_place:  # the agent took a callback: the customer is dialled next
            data["kind"] = "callback"
        out.append(call_event(Kind.ACD_ANSWER, now, call, a.id, **data))
        return out

    def ring_failed(self, call_id: str, now: float, reason: str = "noanswer") -> list[Command]:
        """The agent did not take the call (noanswer/busy/chanunavail/congestion): RONA."""
        call = self.queues.get(call_id, "ring_fail")
        out: list[Command] = []
        self._rona(call, now, reason, out)
        return out

    def call_ended(self, call_id: str, now: float, *, outcome: str | None = None,
                   hold_s: float = 0.0) -> list[Command]:
        """The agent leg ended after an answer: complete, then the agent wraps up. `hold_s`: how long the
        agent held the caller (reported apart from talk, as AHT = talk + hold + wrap-up)."""
        call = self.queues.get(call_id, "end")
        a = call.agent
        assert a is not None
        out: list[Command] = []
        connected = max(0.0, now - call.answered_at)
        hold = min(max(0.0, hold_s), connected)
        wrap = self._queue_cfg[call.skill].wrap_up_s
        aht = self.queues.aht
        aht[call.skill] += 0.1 * (connected + wrap - aht[call.skill])
        data: dict[str, Any] = {"talk_s": connected - hold, "hold_s": hold, "wrap_up_s": wrap}
        if outcome is not None:
            data["outcome"] = outcome
        if call.in_place:
            data["kind"] = "callback"
        out.append(call_event(Kind.ACD_COMPLETE, now, call, a.id, **data))
        self.queues.forget(call, "end")
        a.call = None
        self._move(a, "hangup", now, out, call=call)
        a.wrap_skill = call.skill
        if wrap <= 0:
            self._wrap_done(a, now, out)
        else:
            self.timers.wrap(a, now + wrap)
        return out

    def abandon(self, call_id: str, now: float) -> list[Command]:
        """The caller hung up while waiting or while an agent was being rung."""
        call = self._calls.get(call_id)
        if call is None:
            raise UnknownCall(f"unknown call {call_id}")
        if call.state == TALKING:
            raise AcdError(f"call {call_id} is talking to an agent: report call_ended, not abandon")
        out: list[Command] = []
        agent = call.agent if call.state == OFFERED else None
        if agent is not None:
            out.append(CancelOffer(call.id, agent.id, "abandon"))
        out.append(call_event(Kind.ACD_ABANDON, now, call, agent.id if agent else None,
                            wait_s=now - call.arrived, where="ringing" if agent else "queue",
                            redial=call.redial))
        self.queues.leave(call)
        self.queues.forget(call, "abandon")
        rule = self.cfg.tier(call.tier).callback_on_abandon
        callback = rule is not None and bool(call.caller) and not call.in_place and \
            now - call.arrived >= rule.min_wait_s
        if call.caller and self.cfg.redial_window_s > 0 and not call.in_place:
            self.queues.remember(call, now + self.cfg.redial_window_s, call.id if callback else None)
        if callback:
            assert rule is not None
            due = now + rule.due_within_s
            out.append(call_event(Kind.ACD_CALLBACK, now, call, None, reason="abandon", due_ts=due,
                                number=call.caller))
            out.append(ScheduleCallback(call.id, call.caller, call.skill, call.tier, due, "abandon",
                                        call.customer))
        if agent is not None:
            self._release(agent, call, now, out)
        return out

    def withdraw(self, call_id: str, now: float, reason: str, target: str = "fallback") -> list[Command]:
        """Take a waiting or ringing call out of the ACD without an abandon (e.g. the delivery
        layer failed and Asterisk's fallback queue takes the caller, or a supervisor pulls it)."""
        call = self._calls.get(call_id)
        if call is None or call.state not in (WAITING, OFFERED):
            raise UnknownCall(f"call {call_id} is not waiting")
        out: list[Command] = []
        agent = call.agent if call.state == OFFERED else None
        if agent is not None:
            out.append(CancelOffer(call.id, agent.id, reason))
        out.append(call_event(Kind.ACD_OVERFLOW, now, call, agent.id if agent else None, target=target,
                            reason=reason, wait_s=now - call.arrived))
        self.queues.leave(call)
        self.queues.forget(call, "withdraw")
        if agent is not None:
            self._release(agent, call, now, out)
        return out

    def take_timeout(self, call_id: str) -> None:
        """The delivery layer enforces the ring timeout itself (Asterisk Dial does): drop the
        engine's RONA guard for this offer, so a slow start of the ring never blames the agent."""
        self.queues.get(call_id, "ring").ring_deadline = None

    def request_callback(self, call_id: str, now: float, number: str | None = None) -> list[Command]:
        """The caller keeps their place and hangs up; an agent is offered the callback at the front."""
        call = self.queues.get(call_id, "callback")
        out: list[Command] = []
        call.in_place = True
        call.number = number or call.caller
        if not call.number:
            raise AcdError(f"call {call_id}: no number to call back")
        call.maxwait_at = None  # nobody is on hold any more
        if call.caller:
            self._kept[(call.caller, call.skill)] = call
        due = now + self.cfg.callback_due_s
        out.append(call_event(Kind.ACD_CALLBACK, now, call, None, reason="in_place", due_ts=due,
                            number=call.number))
        # the outbound side keeps a durable record, so the kept place survives a restart
        out.append(ScheduleCallback(call.id, call.number, call.skill, call.tier, due, "in_place", call.customer,
                                    place_ts=call.place_ts))
        return out

    def retier(self, call_id: str, tier: str, now: float, *, by: str | None = None) -> list[Command]:
        """Supervisor moves a waiting caller to another tier (their priority); their wait time is kept.
        `by`: who did it (logged in the event). The tier they already have (and its rank, not an aged
        one) changes nothing and logs nothing."""
        call = self._calls.get(call_id)
        if call is None or call.state not in (WAITING, OFFERED):
            raise UnknownCall(f"call {call_id} is not waiting")
        if tier not in self._rank:
            raise UnknownTier(f"unknown tier '{tier}'")
        out: list[Command] = []
        previous = call.tier
        if tier == previous and call.rank == self._rank[tier]:
            return out
        call_move(call, "retier")
        call.tier = tier
        self.queues.set_rank(call, self._rank[tier])
        data: dict[str, Any] = {"previous": previous, "wait_s": now - call.arrived}
        if by is not None:
            data["by"] = by
        out.append(call_event(ACD_RETIER, now, call, None, **data))
        self.timers.aging(call, now)
        self.selection.start_phases(call, now)
        if call.state == WAITING:
            self.queues.register(call)
            self.offers.match_call(call, now, out)
        return out

    def tick(self, now: float) -> list[Command]:
        """Run every deadline due at or before `now`."""
        out: list[Command] = []
        for when, _, kind, obj in self.timers.due(now):
            if kind == _WRAP:
                a = obj
                if a.state == WRAP_UP and a.wrap_until == when:
                    self._wrap_done(a, when, out)
                continue
            call = obj
            if call.state == GONE:
                continue
            if kind == _RING:
                if call.state == OFFERED and call.ring_deadline == when:
                    assert call.agent is not None
                    out.append(CancelOffer(call.id, call.agent.id, "ring_timeout"))
                    self._rona(call, when, "timeout", out)
            elif kind == _STEP:
                if call.step_at == when:
                    self.door.escalate(call, when, out)
            elif kind == _PHASE:
                if call.phase_at == when:
                    call.phase += 1
                    self.selection.next_phase(call, when)
                    self.door.widened(call, when, out)
            elif kind == _AGING:
                if call.aging_at == when and call.state in (WAITING, OFFERED):
                    self.queues.set_rank(call, max(0, call.rank - 1))
                    self.timers.aging(call, when)
                    self.door.widened(call, when, out)
            elif call.maxwait_at == when and call.state == WAITING:  # Timer.MAXWAIT
                assert call.maxwait_dest is not None
                self.door.overflow_to(call, call.maxwait_dest, call.maxwait_reason, when, out)
        return out

    def next_deadline(self) -> float | None:
        """When `tick` must next run, or None when nothing is pending."""
        return self.timers.next()

    # ----------------------------------------------------------------- queries

    def position(self, call_id: str, now: float) -> Position:
        """1-based place among waiting calls of its queue, and an estimated wait."""
        call = self.queues.get(call_id, "position")
        place, members = self.queues.position(call)
        serving = self._serving[call.skill]  # agents on a break do not shorten the wait
        est = None if serving == 0 else place * self.queues.aht[call.skill] / serving
        return Position(place, members, est)

    def waiting_calls(self, now: float, limit: int | None = None) -> list[dict[str, Any]]:
        """Callers waiting (or being rung) in every queue, in the order each queue serves them:
        id, queue, tier, caller, wait, whether an agent is being rung, whether it is a kept-place
        callback (nobody on the line). At most `limit` (the longest waits first)."""
        return self.queues.waiting_calls(now, limit)

    def agent_state(self, agent_id: str) -> tuple[str, str | None]:
        """(state, not-ready reason)."""
        a = self.roster.get(agent_id)
        return a.state, a.reason

    def agent_call(self, agent_id: str) -> str | None:
        c = self.roster.get(agent_id).call
        return c.id if c else None

    def call_state(self, call_id: str) -> str | None:
        """waiting / offered / talking, or None for a call the engine does not hold."""
        c = self._calls.get(call_id)
        return c.state if c else None

    def call_agent(self, call_id: str) -> str | None:
        c = self._calls.get(call_id)
        return c.agent.id if c and c.agent else None

    def call_queue(self, call_id: str) -> tuple[str, str] | None:
        """(queue, tier) of a call the engine holds, or None."""
        c = self._calls.get(call_id)
        return (c.skill, c.tier) if c else None

    def waiting_count(self, skill: str | None = None) -> int:
        return self.queues.waiting_count(skill)

    def handle_time(self, skill: str) -> float:
        """The live average handle time (talk + wrap-up) used for estimated waits."""
        return self.queues.aht[skill]

    def agent_ids(self) -> list[str]:
        return list(self._agents)

    def agents_snapshot(self, now: float) -> list[dict[str, Any]]:
        """Every agent's state for a wallboard or a desktop reconnect."""
        return self.roster.snapshot(now)

    def queues_snapshot(self, now: float) -> dict[str, dict[str, Any]]:
        """Per queue: waiting callers by tier, the longest current wait, staffed and free agents."""
        tiers = [t.name for t in self.cfg.tiers]
        return {skill: {**self.queues.snapshot(skill, tiers, now),
                        "staffed": self._staffed[skill], "serving": self._serving[skill],
                        "available": self.roster.available(skill), "handle_time_s": self.queues.aht[skill]}
                for skill in self.queues.members}

    # ------------------------------------------------------------ the call flow

    def _check_new(self, call_id: str, skill: str, tier: str) -> None:
        if call_id in self._calls:
            raise DuplicateCall(f"call {call_id} is already in the ACD")
        if skill not in self._skills:
            raise UnknownSkill(f"unknown skill '{skill}'")
        if tier not in self._rank:
            raise UnknownTier(f"unknown tier '{tier}'")

    def _account_agent(self, given: str | None, customer: dict[str, Any] | None) -> str | None:
        """The agent given, else the one configured for the customer's id; none if not an agent we know
        (a stale CRM link must not strand the caller)."""
        if given is None and customer is not None and self._cid in customer:
            given = self.cfg.account_agents.get(str(customer[self._cid]))
        return given if given is not None and given in self._agents else None

    def _wrap_done(self, a: Agent, now: float, out: list[Command]) -> None:
        a.wrap_until = None
        if a.pending_not_ready is not None:
            reason, a.pending_not_ready = a.pending_not_ready, None
            self._move(a, "not_ready", now, out, reason=reason)
            return
        self._to_work(a, "wrap_done", now, out)

    def _release(self, a: Agent, call: Call, now: float, out: list[Command]) -> None:
        """An agent freed by a caller who left: honour a pending not-ready, else find them work."""
        a.call = None
        call.agent = None
        if a.pending_not_ready is not None:
            self._move(a, "release", now, out, call=call)
            reason, a.pending_not_ready = a.pending_not_ready, None
            self._move(a, "not_ready", now, out, reason=reason)
        else:
            self._to_work(a, "release", now, out, call=call)

    def _rona(self, call: Call, now: float, reason: str, out: list[Command]) -> None:
        if self.offers.rona(call, now, reason, out):
            assert call.maxwait_dest is not None
            self.door.overflow_to(call, call.maxwait_dest, call.maxwait_reason, now, out)
