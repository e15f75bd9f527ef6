"""The ACD routing engine: pure, deterministic, driven by `now`.

Every input takes `now` (epoch seconds) and returns a list of commands: `Event`s to
log, and `Offer` / `CancelOffer` / `Overflow` / `Blocked` / `ScheduleCallback` for
the delivery side. `next_deadline()` says when `tick(now)` must run next (wrap-up
ends, ring guards, escalation, aging, max waits). Nothing here touches a socket, a
file, the event loop or the wall clock, so the live runtime and the simulator
drive the very same rules.

Inputs: `login`, `logout`, `set_ready`, `set_not_ready`, `enqueue`, `ring_started`, `dial_began`,
`take_timeout`, `ring_answered`, `ring_failed`, `call_ended`, `abandon`, `withdraw`,
`request_callback`, `retier`, `tick`. Queries: `position`, `waiting_calls`, `agent_state`, `agent_call`,
`call_state`, `call_agent`, `waiting_count`, `handle_time`, `agents_snapshot`,
`queues_snapshot`. A call's life: enqueue -> (Offer) -> ring_started -> ring_answered
-> call_ended; or ring_failed/guard (RONA, back to its place); or abandon / Overflow.

Invariant kept after every input: no available agent could take any waiting
call. So a new call only looks for an agent, a freed agent only looks for a call,
and a call whose eligibility widened (escalation, VIP phase, aging) looks again.

Indexes (no scans on the hot path):
- waiting calls: per pool (a skill, or "@<agent>" for account customers) and per
  minimum proficiency, a heap keyed (tier rank, account-first, place time, seq);
- free agents: per skill and proficiency level, a heap keyed by idle-since.
Heap entries carry a version; an entry whose call/agent moved on is stale and
dropped when it reaches the top (and heaps are compacted when stale ones pile up).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

from ..events import Event, Kind
from .config import AcdConfig, QueueConfig
from .model import (
    AVAILABLE,
    LOGGED_OUT,
    NOT_READY,
    ON_CALL,
    RESERVED,
    RINGING,
    TRANSITIONS,
    WRAP_UP,
    AcdError,
    Blocked,
    CancelCallback,
    CancelOffer,
    Command,
    Destination,
    DuplicateCall,
    IllegalTransition,
    Offer,
    Overflow,
    Position,
    QueueClosed,
    ScheduleCallback,
    UnknownAgent,
    UnknownCall,
    UnknownSkill,
    UnknownTier,
)

_AGENT_STATE = Kind.AGENT_STATE
ACD_RETIER = Kind.ACD_RETIER  # supervisor moved a waiting caller; data: previous, tier

# call states
WAITING = "waiting"
OFFERED = "offered"
TALKING = "talking"
GONE = "gone"

MAX_PROF = 10
_BUSY_RETURNING = frozenset({RESERVED, RINGING, ON_CALL, WRAP_UP})
_OFF_DUTY = frozenset({LOGGED_OUT, NOT_READY})  # neither counts as serving a queue
_RING_FAIL_REASON = {"noanswer": "rona", "busy": "rona", "timeout": "rona", "chanunavail": "unreachable",
                     "congestion": "unreachable"}

# deadline kinds
_D_WRAP, _D_RING, _D_STEP, _D_PHASE, _D_AGING, _D_MAXWAIT = range(6)

# VIP phases: account agent only, + VIP desk, + everyone with the skill
_PH_ACCOUNT, _PH_DESK, _PH_ALL = 0, 1, 2


@dataclass(slots=True, eq=False)
class _Agent:
    id: str
    skills: dict[str, int]
    state: str = LOGGED_OUT
    reason: str | None = None
    since: float | None = None  # when the current state began; None: logged out since before we knew
    idle_since: float = 0.0
    order: int = 0  # stable tie-break (config order)
    version: int = 0
    call: _Call | None = None
    wrap_until: float | None = None
    wrap_skill: str | None = None
    pending_not_ready: str | None = None
    published: bool = False  # in the free-agent heaps (only while available and nothing to take)


@dataclass(slots=True, eq=False)
class _Call:
    id: str
    skill: str
    tier: str
    rank: int
    caller: str
    customer: dict[str, Any] | None
    account_agent: str | None
    arrived: float
    place_ts: float  # orders the call within its tier (kept across RONA, redial, re-tier)
    seq: int
    queue_entered: float
    state: str = WAITING
    version: int = 0
    pools: tuple[tuple[str, int], ...] = ()
    min_prof: int = 1
    extra_skills: tuple[str, ...] = ()
    phase: int = _PH_ALL
    phase_at: float | None = None
    step: int = 0
    step_at: float | None = None
    aging_at: float | None = None
    maxwait_at: float | None = None
    maxwait_dest: Destination | None = None
    maxwait_reason: str = ""
    agent: _Agent | None = None
    offered_at: float = 0.0
    rang_at: float | None = None  # when the offered agent's phone really began to ring (Asterisk's DialBegin)
    ring_deadline: float | None = None
    answered_at: float = 0.0
    offers: int = 0
    in_place: bool = False  # callback in place of waiting: the caller is off the line
    number: str = ""
    redial: bool = False
    kind: str = ""  # "" a customer's call; "consult": an agent's warm-transfer leg; "return": back from a transfer
    caller_name: str = ""  # the CallerID name Asterisk gave
    prefer: str | None = None  # an agent offered this call before anyone else (the one it comes back to)
    lang: str = ""  # the caller's language


class AcdEngine:
    """Skill- and tier-based routing for one contact centre (see module docstring)."""

    def __init__(self, cfg: AcdConfig) -> None:
        self.cfg = cfg
        self._rank = dict(cfg.tier_rank)
        self._skills = set(cfg.skills)
        self._agents: dict[str, _Agent] = {}
        self._calls: dict[str, _Call] = {}
        self._waiting: dict[str, dict[int, list[tuple[Any, ...]]]] = {}
        self._free: dict[str, list[list[tuple[Any, ...]]]] = {
            s: [[] for _ in range(MAX_PROF + 1)] for s in cfg.skills}
        self._in_queue: dict[str, set[_Call]] = {s: set() for s in cfg.skills}
        # waiting (not offered) calls per queue and tier rank: O(1) counts and arrival positions
        self._nwait: dict[str, list[int]] = {s: [0] * len(cfg.tiers) for s in cfg.skills}
        self._staffed: dict[str, int] = dict.fromkeys(cfg.skills, 0)  # logged in
        self._serving: dict[str, int] = dict.fromkeys(cfg.skills, 0)  # logged in and not on a break
        self._aht: dict[str, float] = {s: cfg.queue(s).handle_time_s for s in cfg.skills}
        self._deadlines: list[tuple[float, int, int, Any]] = []
        # (caller, skill) -> (place_ts, seq, expires, id of the call whose auto-callback is pending)
        self._ghosts: dict[tuple[str, str], tuple[float, int, float, str | None]] = {}
        self._kept: dict[tuple[str, str], _Call] = {}  # (number, skill) -> a callback waiting in the queue
        self._seq = 0
        self._push = 0
        self._live_entries = 0  # pushes since last compaction
        self._queue_cfg: dict[str, QueueConfig] = {s: cfg.queue(s) for s in cfg.skills}
        self._nfree: dict[str, int] = dict.fromkeys(cfg.skills, 0)  # available agents per skill
        # per tier rank: aging step of that rank, last_resort flag, max wait + destination
        self._aging_step = [t.aging_step_s if i > 0 else None for i, t in enumerate(cfg.tiers)]
        self._last_resort = [t.last_resort for t in cfg.tiers]
        self._vip_tier = cfg.vip.tier
        self._cid = cfg.customer_id_field
        self._desk = cfg.vip.desk_skill
        self._ring_timeout = cfg.ring_timeout_s
        self._ring_guard = cfg.ring_guard_s
        self._tier_maxwait = [t.max_wait_s for t in cfg.tiers]
        for a in cfg.agents:
            self.add_agent(a.id, dict(a.skills))

    # ------------------------------------------------------------------ agents

    def add_agent(self, agent_id: str, skills: dict[str, int]) -> None:
        """Register an agent (logged out). Config agents are added by the constructor."""
        if agent_id in self._agents:
            raise AcdError(f"agent {agent_id} already exists")
        for s, p in skills.items():
            if s not in self._skills:
                raise UnknownSkill(f"agent {agent_id}: unknown skill '{s}'")
            if not 1 <= p <= MAX_PROF:
                raise AcdError(f"agent {agent_id}: proficiency {p} for '{s}' is outside 1..{MAX_PROF}")
        self._agents[agent_id] = _Agent(agent_id, dict(skills), order=len(self._agents))

    def login(self, agent_id: str, now: float, *, ready: bool | None = None) -> list[Command]:
        a = self._agent(agent_id)
        out: list[Command] = []
        ready = self.cfg.login_ready if ready is None else ready
        self._move(a, "login", now, out, reason=None if ready else "login",
                   to=AVAILABLE if ready else NOT_READY)
        if a.state == AVAILABLE:
            self._agent_free(a, now, out)
        return out

    def logout(self, agent_id: str, now: float) -> list[Command]:
        a = self._agent(agent_id)
        out: list[Command] = []
        self._move(a, "logout", now, out)
        a.pending_not_ready = None
        return out

    def set_ready(self, agent_id: str, now: float) -> list[Command]:
        """Ready: ends not-ready or wrap-up early. While busy it cancels a pending not-ready."""
        a = self._agent(agent_id)
        out: list[Command] = []
        if a.state in (RESERVED, RINGING, ON_CALL) and a.pending_not_ready is not None:
            a.pending_not_ready = None
            return out
        if a.state == AVAILABLE:
            return out  # already ready: a double click is harmless
        self._move(a, "ready", now, out)
        a.pending_not_ready = None
        self._agent_free(a, now, out)
        return out

    def set_not_ready(self, agent_id: str, reason: str, now: float) -> list[Command]:
        """Not ready with a reason; while ringing or talking it takes effect after wrap-up."""
        a = self._agent(agent_id)
        out: list[Command] = []
        if not reason:
            raise AcdError("a not-ready reason is required")
        if a.state in (RESERVED, RINGING, ON_CALL):
            a.pending_not_ready = reason
            return out
        self._move(a, "not_ready", now, out, reason=reason)
        return out

    # ------------------------------------------------------------------- calls

    def enqueue(self, call_id: str, skill: str, tier: str | None, caller: str, now: float,
                account_agent: str | None = None, customer: dict[str, Any] | None = None,
                kind: str = "", caller_name: str = "", prefer_agent: str | None = None,
                lang: str = "") -> list[Command]:
        """A caller asks for an agent. tier None: classify by `customer` with the tier rules. `kind`
        marks a leg that is not a new customer call, e.g. "consult" (an agent's warm transfer), in the
        enqueue event (the KPIs leave such legs out of the inbound figures). `caller_name` is the
        CallerID name Asterisk gave (the screen-pop shows it for a caller without a customer record);
        `lang` the caller's language (in the enqueue event: reports and the pop show it).

        `prefer_agent`: a caller coming back to the agent who had them (a transfer that could not
        complete). That agent is offered the call before anyone, at once if they are free or still
        wrapping this caller up (the wrap-up ends: the conversation goes on); otherwise the call waits
        in `skill` for whoever is free first, that agent included. Once that agent's ring fails the
        call is an ordinary one of its queue.

        The account agent defaults to the one configured for the customer's id
        (`customer[cfg.customer_id_field]`).
        """
        if call_id in self._calls:
            raise DuplicateCall(f"call {call_id} is already in the ACD")
        if skill not in self._skills:
            raise UnknownSkill(f"unknown skill '{skill}'")
        if tier is None:
            tier = self.cfg.classify(customer)
        if tier not in self._rank:
            raise UnknownTier(f"unknown tier '{tier}'")
        if account_agent is None and customer is not None and self._cid in customer:
            account_agent = self.cfg.account_agents.get(str(customer[self._cid]))
        if account_agent is not None and account_agent not in self._agents:
            account_agent = None  # a stale CRM link must not strand the caller
        out: list[Command] = []
        q = self._queue_cfg[skill]
        if q.hours is not None and not self.cfg.calendar.is_open(q.hours, now):
            self._block(call_id, skill, tier, caller, "closed", _dest(q.closed), now, out)
            return out
        self._seq += 1
        place_ts, seq, redial = now, self._seq, False
        redial_cancels: str | None = None
        if caller and self._ghosts:
            self._prune_ghosts(now)
            ghost = self._ghosts.pop((caller, skill), None)
            if ghost is not None:
                place_ts, seq, redial = ghost[0], ghost[1], True
                if ghost[3] is not None:
                    redial_cancels = ghost[3]
        kept = self._kept.get((caller, skill)) if caller else None
        if kept is not None and kept.state == WAITING and kept.skill == skill:
            # they call again while a callback keeps their place: they take that place in person
            if kept.place_ts < place_ts or (kept.place_ts == place_ts and kept.seq < seq):
                place_ts, seq = kept.place_ts, kept.seq
            redial = True
            out.append(self._ev(Kind.ACD_OVERFLOW, now, kept, None, target="redial", reason="redial",
                                wait_s=now - kept.arrived))
            self._leave_queue(kept)
            self._forget(kept)
            out.append(CancelCallback(kept.id, call_id, "redial"))
        call = _Call(call_id, skill, tier, self._rank[tier], caller, customer, account_agent,
                     arrived=now, place_ts=place_ts, seq=seq, queue_entered=now, redial=redial, kind=kind,
                     caller_name=caller_name, lang=lang)
        if redial_cancels is not None:  # they called back themselves: the outbound side can stand down
            out.append(CancelCallback(redial_cancels, call_id, "redial"))
        back = self._agents.get(prefer_agent) if prefer_agent is not None else None
        if back is not None and back.state in (AVAILABLE, WRAP_UP, RESERVED, RINGING, ON_CALL):
            call.prefer = back.id
            if back.state == WRAP_UP:  # they were wrapping up this caller: the conversation resumes
                back.wrap_until = None
                self._move(back, "ready", now, out)
        self._enter_queue(call, skill, now, out, first=True)
        if back is not None and back.state == AVAILABLE and not back.published:
            self._agent_free(back, now, out)  # the caller did not get in (a closed queue): back to work
        return out

    def enqueue_callback(self, call_id: str, skill: str, tier: str, number: str, now: float, *,
                         place_ts: float | None = None, customer: dict[str, Any] | None = None,
                         reason: str = "scheduled") -> list[Command]:
        """A callback the outbound side holds (scheduled after an abandon or overflow, or a kept place
        restored after a restart) waits for an agent like a callback in place: nobody is on hold, so
        no max wait and no door (full, no agents); it keeps `place_ts` (its original place) if given.
        A closed queue refuses it (`QueueClosed`): the outbound side tries again when it opens."""
        if call_id in self._calls:
            raise DuplicateCall(f"call {call_id} is already in the ACD")
        if skill not in self._skills:
            raise UnknownSkill(f"unknown skill '{skill}'")
        if tier not in self._rank:
            raise UnknownTier(f"unknown tier '{tier}'")
        if not number:
            raise AcdError(f"call {call_id}: no number to call back")
        if not self.queue_open(skill, now):
            raise QueueClosed(f"queue '{skill}' is closed")
        account_agent = None
        if customer is not None and self._cid in customer:
            account_agent = self.cfg.account_agents.get(str(customer[self._cid]))
            if account_agent not in self._agents:
                account_agent = None
        self._seq += 1
        call = _Call(call_id, skill, tier, self._rank[tier], number, customer, account_agent, arrived=now,
                     place_ts=now if place_ts is None else min(place_ts, now), seq=self._seq,
                     queue_entered=now, in_place=True, number=number)
        out: list[Command] = []
        self._enter_queue(call, skill, now, out, first=True, reason=reason)
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
        call = self._call(call_id, OFFERED)
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
        call = self._call(call_id, OFFERED)
        assert call.agent is not None
        out: list[Command] = []
        if call.agent.state == RESERVED:
            self._move(call.agent, "ring", at, out, call=call)
        call.rang_at = at
        return out

    def ring_answered(self, call_id: str, now: float) -> list[Command]:
        call = self._call(call_id, OFFERED)
        a = call.agent
        assert a is not None
        out: list[Command] = []
        self._move(a, "answer", now, out, call=call)
        call.state = TALKING
        call.answered_at = now
        call.ring_deadline = call.step_at = call.phase_at = call.aging_at = call.maxwait_at = None
        self._leave_queue(call)
        data: dict[str, Any] = {"wait_s": now - call.arrived, **self._ring_times(call, now), "offers": call.offers}
        if call.in_place:  # the agent took a callback: the customer is dialled next
            data["kind"] = "callback"
        out.append(self._ev(Kind.ACD_ANSWER, now, call, a.id, **data))
        return out

    def ring_failed(self, call_id: str, now: float, reason: str = "noanswer") -> list[Command]:
        """The agent did not take the call (noanswer/busy/chanunavail/congestion): RONA."""
        call = self._call(call_id, OFFERED)
        out: list[Command] = []
        self._rona(call, now, reason, out)
        return out

    def call_ended(self, call_id: str, now: float, *, outcome: str | None = None,
                   hold_s: float = 0.0) -> list[Command]:
        """The agent leg ended after an answer: complete, then the agent wraps up. `hold_s`: how long the
        agent held the caller (reported apart from talk, as AHT = talk + hold + wrap-up)."""
        call = self._call(call_id, TALKING)
        a = call.agent
        assert a is not None
        out: list[Command] = []
        connected = max(0.0, now - call.answered_at)
        hold = min(max(0.0, hold_s), connected)
        wrap = self._queue_cfg[call.skill].wrap_up_s
        self._aht[call.skill] += 0.1 * (connected + wrap - self._aht[call.skill])
        data: dict[str, Any] = {"talk_s": connected - hold, "hold_s": hold, "wrap_up_s": wrap}
        if outcome is not None:
            data["outcome"] = outcome
        if call.in_place:
            data["kind"] = "callback"
        out.append(self._ev(Kind.ACD_COMPLETE, now, call, a.id, **data))
        self._forget(call)
        a.call = None
        self._move(a, "hangup", now, out, call=call)
        a.wrap_skill = call.skill
        if wrap <= 0:
            self._wrap_done(a, now, out)
        else:
            a.wrap_until = now + wrap
            self._at(a.wrap_until, _D_WRAP, a)
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
        out.append(self._ev(Kind.ACD_ABANDON, now, call, agent.id if agent else None,
                            wait_s=now - call.arrived, where="ringing" if agent else "queue",
                            redial=call.redial))
        self._leave_queue(call)
        self._forget(call)
        rule = self.cfg.tier(call.tier).callback_on_abandon
        callback = rule is not None and bool(call.caller) and not call.in_place and \
            now - call.arrived >= rule.min_wait_s
        if call.caller and self.cfg.redial_window_s > 0 and not call.in_place:
            key = (call.caller, call.skill)
            self._ghosts.pop(key, None)  # re-insert at the end: the dict stays ordered by expiry
            self._ghosts[key] = (call.place_ts, call.seq, now + self.cfg.redial_window_s,
                                 call.id if callback else None)
        if callback:
            assert rule is not None
            due = now + rule.due_within_s
            out.append(self._ev(Kind.ACD_CALLBACK, now, call, None, reason="abandon", due_ts=due,
                                number=call.caller))
            out.append(ScheduleCallback(call.id, call.caller, call.skill, call.tier, due, "abandon",
                                        call.customer))
        if agent is not None:
            agent.call = None
            call.agent = None
            self._move(agent, "release", now, out, call=call)
            self._after_release(agent, now, out)
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
        out.append(self._ev(Kind.ACD_OVERFLOW, now, call, agent.id if agent else None, target=target,
                            reason=reason, wait_s=now - call.arrived))
        self._leave_queue(call)
        self._forget(call)
        if agent is not None:
            agent.call = None
            call.agent = None
            self._move(agent, "release", now, out, call=call)
            self._after_release(agent, now, out)
        return out

    def take_timeout(self, call_id: str) -> None:
        """The delivery layer enforces the ring timeout itself (Asterisk Dial does): drop the
        engine's RONA guard for this offer, so a slow start of the ring never blames the agent."""
        self._call(call_id, OFFERED).ring_deadline = None

    def request_callback(self, call_id: str, now: float, number: str | None = None) -> list[Command]:
        """The caller keeps their place and hangs up; an agent is offered the callback at the front."""
        call = self._call(call_id, WAITING)
        out: list[Command] = []
        call.in_place = True
        call.number = number or call.caller
        if not call.number:
            raise AcdError(f"call {call_id}: no number to call back")
        call.maxwait_at = None  # nobody is on hold any more
        if call.caller:
            self._kept[(call.caller, call.skill)] = call
        due = now + self.cfg.callback_due_s
        out.append(self._ev(Kind.ACD_CALLBACK, now, call, None, reason="in_place", due_ts=due,
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
        call.tier = tier
        self._set_rank(call, self._rank[tier])
        data: dict[str, Any] = {"previous": previous, "wait_s": now - call.arrived}
        if by is not None:
            data["by"] = by
        out.append(self._ev(ACD_RETIER, now, call, None, **data))
        self._schedule_aging(call, now)
        self._set_phase_start(call, now)
        if call.state == WAITING:
            self._register(call)
            self._match_call(call, now, out)
        return out

    def tick(self, now: float) -> list[Command]:
        """Run every deadline due at or before `now`."""
        out: list[Command] = []
        dl = self._deadlines
        while dl and dl[0][0] <= now:
            when, _, kind, obj = heapq.heappop(dl)
            if kind == _D_WRAP:
                a = obj
                if a.state == WRAP_UP and a.wrap_until == when:
                    self._wrap_done(a, when, out)
                continue
            call = obj
            if call.state == GONE:
                continue
            if kind == _D_RING:
                if call.state == OFFERED and call.ring_deadline == when:
                    assert call.agent is not None
                    out.append(CancelOffer(call.id, call.agent.id, "ring_timeout"))
                    self._rona(call, when, "timeout", out)
            elif kind == _D_STEP:
                if call.step_at == when:
                    self._escalate(call, when, out)
            elif kind == _D_PHASE:
                if call.phase_at == when:
                    call.phase += 1
                    self._set_phase_deadline(call, when)
                    self._widened(call, when, out)
            elif kind == _D_AGING:
                if call.aging_at == when and call.state in (WAITING, OFFERED):
                    self._set_rank(call, max(0, call.rank - 1))
                    self._schedule_aging(call, when)
                    self._widened(call, when, out)
            elif kind == _D_MAXWAIT:
                if call.maxwait_at == when and call.state == WAITING:
                    self._overflow(call, when, out)
        return out

    def next_deadline(self) -> float | None:
        """When `tick` must next run, or None when nothing is pending."""
        dl = self._deadlines
        while dl:
            when, _, kind, obj = dl[0]
            if self._deadline_live(when, kind, obj):
                return when
            heapq.heappop(dl)
        return None

    # ----------------------------------------------------------------- queries

    def position(self, call_id: str, now: float) -> Position:
        """1-based place among waiting calls of its queue, and an estimated wait."""
        call = self._call(call_id, WAITING)
        key = (call.rank, call.place_ts, call.seq)
        members = self._in_queue[call.skill]
        ahead = sum(1 for c in members if c.state == WAITING and (c.rank, c.place_ts, c.seq) < key)
        serving = self._serving[call.skill]  # agents on a break do not shorten the wait
        est = None if serving == 0 else (ahead + 1) * self._aht[call.skill] / serving
        return Position(ahead + 1, len(members), est)

    def _arrival_position(self, call: _Call) -> int:
        """Position of a call just queued: O(tiers) unless it came back to an older place (a redial,
        a callback keeping its place)."""
        if call.redial or call.place_ts < call.arrived:
            return self.position(call.id, call.arrived).position
        counts = self._nwait[call.skill]
        return sum(counts[: call.rank + 1])

    def waiting_calls(self, now: float, limit: int | None = None) -> list[dict[str, Any]]:
        """Callers waiting (or being rung) in every queue, in the order each queue serves them:
        id, queue, tier, caller, wait, whether an agent is being rung, whether it is a kept-place
        callback (nobody on the line). At most `limit` (the longest waits first)."""
        rows = [(c.rank, c.place_ts, c.seq, c) for members in self._in_queue.values() for c in members]
        if limit is not None and len(rows) > limit:
            rows = sorted(rows, key=lambda r: r[3].arrived)[:limit]
        rows.sort(key=lambda r: (r[3].skill, r[0], r[1], r[2]))
        return [{"call_id": c.id, "queue": c.skill, "tier": c.tier, "caller": c.caller,
                 "wait_s": now - c.arrived, "ringing": c.state == OFFERED, "callback": c.in_place}
                for _, _, _, c in rows]

    def agent_state(self, agent_id: str) -> tuple[str, str | None]:
        """(state, not-ready reason)."""
        a = self._agent(agent_id)
        return a.state, a.reason

    def agent_call(self, agent_id: str) -> str | None:
        c = self._agent(agent_id).call
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
        if skill is None:
            return sum(sum(counts) for counts in self._nwait.values())
        return sum(self._nwait[skill])

    def handle_time(self, skill: str) -> float:
        """The live average handle time (talk + wrap-up) used for estimated waits."""
        return self._aht[skill]

    def agent_ids(self) -> list[str]:
        return list(self._agents)

    def agents_snapshot(self, now: float) -> list[dict[str, Any]]:
        """Every agent's state for a wallboard or a desktop reconnect."""
        return [{"agent_id": a.id, "state": a.state, "reason": a.reason, "since": a.since,
                 "in_state_s": None if a.since is None else now - a.since, "call_id": a.call.id if a.call else None,
                 "pending_not_ready": a.pending_not_ready, "skills": dict(a.skills)}
                for a in self._agents.values()]

    def queues_snapshot(self, now: float) -> dict[str, dict[str, Any]]:
        """Per queue: waiting callers by tier, the longest current wait, staffed and free agents."""
        tiers = [t.name for t in self.cfg.tiers]
        out: dict[str, dict[str, Any]] = {}
        for skill, members in self._in_queue.items():
            waiting = [c for c in members if c.state == WAITING]
            out[skill] = {
                "waiting": len(waiting),
                "by_tier": {t: n for t, n in zip(tiers, self._nwait[skill], strict=True) if n},
                # of the callers on the line (a callback holding a place holds nobody on the phone)
                "longest_wait_s": max((now - c.arrived for c in waiting if not c.in_place), default=0.0),
                "callbacks_in_place": sum(1 for c in waiting if c.in_place),
                "ringing": len(members) - len(waiting),
                "staffed": self._staffed[skill],
                "serving": self._serving[skill],
                "available": sum(1 for a in self._agents.values()
                                 if a.state == AVAILABLE and skill in a.skills),
                "handle_time_s": self._aht[skill],
            }
        return out

    # ---------------------------------------------------------------- internals

    def _agent(self, agent_id: str) -> _Agent:
        a = self._agents.get(agent_id)
        if a is None:
            raise UnknownAgent(f"unknown agent {agent_id}")
        return a

    def _call(self, call_id: str, state: str) -> _Call:
        c = self._calls.get(call_id)
        if c is None:
            raise UnknownCall(f"unknown call {call_id}")
        if c.state != state:
            raise AcdError(f"call {call_id} is {c.state}, not {state}")
        return c

    def _ev(self, kind: str, now: float, call: _Call, agent_id: str | None, /, **data: Any) -> Event:
        return Event(kind, now, call.id, agent_id, call.skill, call.tier, None, data)  # positional: hot path

    def _move(self, a: _Agent, event: str, now: float, out: list[Command], *, reason: str | None = None,
              to: str | None = None, call: _Call | None = None) -> None:
        """Apply the transition table; log agent.state with the time spent in the previous state."""
        prev = a.state
        nxt = TRANSITIONS.get((prev, event))
        if nxt is None:
            label = f"{prev}({a.reason})" if prev == NOT_READY and a.reason else prev
            raise IllegalTransition(a.id, label, event)
        if to is not None:
            nxt = to
        prev_reason = a.reason
        if nxt == NOT_READY:
            new_reason = reason or "busy"
            if prev == NOT_READY and new_reason == prev_reason:
                return
        else:
            new_reason = None
            if nxt == prev:
                return
        if prev == AVAILABLE and a.published:
            a.version += 1  # drop out of the free-agent heaps
            a.published = False
            nfree = self._nfree
            for s in a.skills:
                nfree[s] -= 1
        if prev in _OFF_DUTY or nxt in _OFF_DUTY:
            delta_staffed = (prev == LOGGED_OUT) - (nxt == LOGGED_OUT)
            delta_serving = (nxt not in _OFF_DUTY) - (prev not in _OFF_DUTY)
            staffed, serving = self._staffed, self._serving
            for s in a.skills:
                staffed[s] += delta_staffed
                serving[s] += delta_serving
        # time in the previous state; unknown (None) for the logged-out time before the first login we saw
        duration = None if a.since is None else now - a.since
        a.state = nxt
        a.reason = new_reason
        a.since = now
        if nxt == AVAILABLE:
            a.idle_since = now  # published by _agent_free, only if no waiting call fits
        data = {"state": nxt, "previous": prev, "reason": new_reason, "previous_reason": prev_reason,
                "duration_s": duration}
        if call is None:
            out.append(Event(_AGENT_STATE, now, None, a.id, None, None, None, data))
        else:
            out.append(Event(_AGENT_STATE, now, call.id, a.id, call.skill, call.tier, None, data))

    def _wrap_done(self, a: _Agent, now: float, out: list[Command]) -> None:
        a.wrap_until = None
        if a.pending_not_ready is not None:
            reason, a.pending_not_ready = a.pending_not_ready, None
            self._move(a, "not_ready", now, out, reason=reason)
            return
        self._move(a, "wrap_done", now, out)
        self._agent_free(a, now, out)

    def _after_release(self, a: _Agent, now: float, out: list[Command]) -> None:
        """An agent freed by a caller who left: honour a pending not-ready, else find them work."""
        if a.pending_not_ready is not None:
            reason, a.pending_not_ready = a.pending_not_ready, None
            self._move(a, "not_ready", now, out, reason=reason)
        else:
            self._agent_free(a, now, out)

    # --- queue entry, pools and phases

    def _enter_queue(self, call: _Call, skill: str, now: float, out: list[Command], *, first: bool,
                     reason: str = "") -> None:
        q = self._queue_cfg[skill]
        if call.in_place:
            pass  # a callback holds no line: no door, no max wait
        elif q.block_when_no_agents and self._staffed[skill] == 0 and not (
                call.account_agent and self._agents[call.account_agent].state != LOGGED_OUT):
            if first:
                self._block(call.id, skill, call.tier, call.caller, "no_agents", _dest(q.overflow), now, out,
                            call=call)
            else:
                call.skill = skill
                self._overflow_to(call, _dest(q.overflow), "no_agents", now, out)
            return
        elif q.max_waiting is not None and len(self._in_queue[skill]) >= q.max_waiting:
            dest = _dest(q.overflow)
            if dest.kind == "queue":
                call.skill = skill
                out.append(self._ev(Kind.ACD_OVERFLOW, now, call, None, target=f"queue:{dest.target}",
                                    reason="full", wait_s=now - call.arrived))
                self._enter_queue(call, dest.target, now, out, first=first)
            elif first:
                self._block(call.id, skill, call.tier, call.caller, "full", dest, now, out, call=call)
            else:
                call.skill = skill
                self._overflow_to(call, dest, "full", now, out)
            return
        call.skill = skill
        if not first:  # moved here from another queue: start this queue's rules afresh
            call.queue_entered = now
            call.extra_skills = ()
            call.step = 0
            call.step_at = None
        call.min_prof = q.min_proficiency
        self._calls[call.id] = call
        self._in_queue[skill].add(call)
        self._nwait[skill][call.rank] += 1
        if q.escalation:
            call.step_at = now + q.escalation[0].after_s
            self._at(call.step_at, _D_STEP, call)
        self._set_phase_start(call, now)
        if self._aging_step[call.rank] is not None:
            self._schedule_aging(call, now)
        else:
            call.aging_at = None
        if not call.in_place and (q.max_wait_s is not None or
                                  self._tier_maxwait[self._rank[call.tier]] is not None):
            self._schedule_maxwait(call, now)
        else:
            call.maxwait_at = None
        if first:
            data: dict[str, Any] = {"caller": call.caller, "position": 0}
            if call.caller_name:
                data["caller_name"] = call.caller_name
            if call.lang:
                data["lang"] = call.lang
            if call.account_agent:
                data["account_agent"] = call.account_agent
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
            ev = self._ev(Kind.ACD_ENQUEUE, now, call, None, **data)
            out.append(ev)
        else:
            ev = None
        self._register(call)
        if ev is not None:
            ev.data["position"] = self._arrival_position(call)
        self._match_call(call, now, out)

    def _block(self, call_id: str, skill: str, tier: str, caller: str, reason: str, dest: Destination,
               now: float, out: list[Command], call: _Call | None = None) -> None:
        out.append(Event(Kind.ACD_BLOCKED, ts=now, call_id=call_id, queue=skill, tier=tier,
                         data={"reason": reason, "caller": caller, "target": _target(dest)}))
        out.append(Blocked(call_id, reason, dest))
        if dest.kind == "callback" and caller:
            due = now + self.cfg.callback_due_s
            out.append(Event(Kind.ACD_CALLBACK, ts=now, call_id=call_id, queue=skill, tier=tier,
                             data={"reason": reason, "due_ts": due, "number": caller}))
            out.append(ScheduleCallback(call_id, caller, skill, tier, due, reason,
                                        call.customer if call else None))

    def _is_vip(self, call: _Call) -> bool:
        return call.tier == self._vip_tier

    def _set_phase_start(self, call: _Call, now: float) -> None:
        """VIP one-to-one: account agent first, then the desk, then the whole skill."""
        if call.tier != self._vip_tier:
            call.phase, call.phase_at = _PH_ALL, None
            self._compute_pools(call)
        else:
            call.phase = _PH_ACCOUNT
            self._set_phase_deadline(call, now)  # computes the pools

    def _set_phase_deadline(self, call: _Call, now: float) -> None:
        vip = self.cfg.vip
        while call.phase < _PH_ALL:
            if call.phase == _PH_ACCOUNT:
                acct = self._agents.get(call.account_agent) if call.account_agent else None
                # Wait only for an account agent who is busy and will come back, never for an absent one.
                if acct is not None and vip.account_agent_wait_s > 0 and acct.state in _BUSY_RETURNING:
                    call.phase_at = now + vip.account_agent_wait_s
                    self._at(call.phase_at, _D_PHASE, call)
                    break
            else:
                # the desk phase starts when the account phase ends (or at once without one),
                # and only when some desk agent is at work (not all on a break)
                desk = vip.desk_skill
                if desk is not None and vip.desk_wait_s > 0 and self._serving[desk] > 0:
                    call.phase_at = now + vip.desk_wait_s
                    self._at(call.phase_at, _D_PHASE, call)
                    break
            call.phase += 1
        if call.phase == _PH_ALL:
            call.phase_at = None
        self._compute_pools(call)

    def _compute_pools(self, call: _Call) -> None:
        if call.tier != self._vip_tier and not call.extra_skills and call.prefer is None:
            call.pools = ((call.skill, call.min_prof),)
            return
        pools: list[tuple[str, int]] = []
        if call.prefer is not None:
            pools.append(("@" + call.prefer, 0))
        if call.tier == self._vip_tier:
            if call.account_agent and call.account_agent != call.prefer:
                pools.append(("@" + call.account_agent, 0))
            desk = self.cfg.vip.desk_skill
            if call.phase >= _PH_DESK and desk is not None and desk != call.skill:
                pools.append((desk, 1))
        if call.phase >= _PH_ALL:
            pools.append((call.skill, call.min_prof))
            pools.extend((s, 1) for s in call.extra_skills if s != call.skill)
        call.pools = tuple(pools)

    def _schedule_aging(self, call: _Call, now: float) -> None:
        step = self._aging_step[call.rank]
        if step is None or self._last_resort[self._rank[call.tier]]:
            call.aging_at = None
            return
        call.aging_at = now + step
        self._at(call.aging_at, _D_AGING, call)

    def _schedule_maxwait(self, call: _Call, now: float) -> None:
        q = self._queue_cfg[call.skill]
        tier = self.cfg.tier(call.tier)
        best: tuple[float, Destination, str] | None = None
        if q.max_wait_s is not None:
            best = (call.queue_entered + q.max_wait_s, _dest(q.overflow), "max_wait")
        if tier.max_wait_s is not None:
            at = call.arrived + tier.max_wait_s
            if best is None or at < best[0]:
                best = (at, _dest(tier.overflow or q.overflow), "tier_max_wait")
        if best is None or call.in_place:
            call.maxwait_at = None
            return
        call.maxwait_at, call.maxwait_dest, call.maxwait_reason = best
        self._at(call.maxwait_at, _D_MAXWAIT, call)

    def _escalate(self, call: _Call, now: float, out: list[Command]) -> None:
        steps = self._queue_cfg[call.skill].escalation
        step = steps[call.step]
        if step.move_to is not None:
            if call.state == WAITING:
                self._overflow_to(call, Destination("queue", step.move_to), "escalation", now, out)
                return
            call.step_at = None  # ringing now; if that fails the call stays where it is
            return
        if step.min_proficiency is not None:
            call.min_prof = min(call.min_prof, step.min_proficiency)
        call.extra_skills += tuple(s for s in step.add_skills if s not in call.extra_skills)
        call.step += 1
        if call.step < len(steps):
            call.step_at = call.queue_entered + steps[call.step].after_s
            self._at(call.step_at, _D_STEP, call)
        else:
            call.step_at = None
        self._compute_pools(call)
        self._widened(call, now, out)

    def _widened(self, call: _Call, now: float, out: list[Command]) -> None:
        self._compute_pools(call)
        if call.state == WAITING:
            self._register(call)
            self._match_call(call, now, out)

    def _overflow(self, call: _Call, now: float, out: list[Command]) -> None:
        assert call.maxwait_dest is not None
        self._overflow_to(call, call.maxwait_dest, call.maxwait_reason, now, out)

    def _overflow_to(self, call: _Call, dest: Destination, reason: str, now: float,
                     out: list[Command]) -> None:
        out.append(self._ev(Kind.ACD_OVERFLOW, now, call, None, target=_target(dest), reason=reason,
                            wait_s=now - call.arrived))
        self._leave_queue(call)
        if dest.kind == "queue" and dest.target != call.skill:
            call.version += 1
            self._enter_queue(call, dest.target, now, out, first=False)
            return  # placed there, or that queue overflowed it in turn
        self._forget(call)
        if dest.kind == "callback" and (call.number or call.caller):
            due = now + self.cfg.callback_due_s
            out.append(self._ev(Kind.ACD_CALLBACK, now, call, None, reason=reason, due_ts=due,
                                number=call.number or call.caller))
            out.append(ScheduleCallback(call.id, call.number or call.caller, call.skill, call.tier, due,
                                        reason, call.customer))
        out.append(Overflow(call.id, dest, reason))

    def _leave_queue(self, call: _Call) -> None:
        members = self._in_queue[call.skill]
        if call in members:
            members.discard(call)
            if call.state == WAITING:
                self._nwait[call.skill][call.rank] -= 1

    def _set_rank(self, call: _Call, rank: int) -> None:
        if call.state == WAITING and call in self._in_queue[call.skill]:
            counts = self._nwait[call.skill]
            counts[call.rank] -= 1
            counts[rank] += 1
        call.rank = rank

    def _forget(self, call: _Call) -> None:
        if call.in_place and self._kept.get((call.caller, call.skill)) is call:
            del self._kept[(call.caller, call.skill)]
        self._calls.pop(call.id, None)
        call.version += 1
        call.state = GONE

    # --- matching

    def _register(self, call: _Call) -> None:
        """(Re)publish the call in the waiting heaps of its pools; older entries go stale."""
        call.version = v = call.version + 1
        rank, place, seq = call.rank, call.place_ts, call.seq
        waiting = self._waiting
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
        if self._live_entries > 4 * (len(self._calls) + len(self._agents)) + 4096:
            self._compact()

    def _match_call(self, call: _Call, now: float, out: list[Command]) -> None:
        """Offer a waiting call to the best free agent of its pools, in pool order."""
        by_prof = self.cfg.agent_selection == "proficiency"
        for pool, minp in call.pools:
            if pool[0] == "@":
                a = self._agents.get(pool[1:])
                if a is not None and a.state == AVAILABLE:
                    self._offer(call, a, pool, now, out)
                    return
                continue
            if not self._nfree[pool]:
                continue  # nobody free with this skill: skip the heaps
            heaps = self._free[pool]
            best: tuple[Any, ...] | None = None
            for p in range(MAX_PROF, minp - 1, -1):
                h = heaps[p]
                while h:
                    top = h[0]
                    if top[2] == top[3].version:
                        break
                    heapq.heappop(h)
                else:
                    continue
                if by_prof:
                    best = top
                    break
                if best is None or top[:2] < best[:2]:
                    best = top
            if best is not None:
                self._offer(call, best[3], pool, now, out)
                return

    def _agent_free(self, a: _Agent, now: float, out: list[Command]) -> None:
        """A newly available agent takes the best waiting call it is eligible for."""
        best: tuple[Any, ...] | None = None
        best_pool = ""
        own = self._waiting.get("@" + a.id)
        if own:
            for heap in own.values():
                top = _clean_top(heap)
                if top is not None and (best is None or top < best):
                    best, best_pool = top, "@" + a.id
        waiting = self._waiting
        pop = heapq.heappop
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
        if best is not None:
            self._offer(best[6], a, best_pool, now, out)
            return
        a.version += 1
        a.published = True
        entry = (a.idle_since, a.order, a.version, a)
        free, nfree = self._free, self._nfree
        for s, p in a.skills.items():
            heapq.heappush(free[s][p], entry)
            nfree[s] += 1
        self._live_entries += len(a.skills)

    def _offer(self, call: _Call, a: _Agent, pool: str, now: float, out: list[Command]) -> None:
        self._move(a, "offer", now, out, call=call)
        a.call = call
        self._nwait[call.skill][call.rank] -= 1
        call.state = OFFERED
        call.agent = a
        call.offered_at = now
        call.rang_at = None
        call.offers += 1
        call.version += 1
        timeout = self._ring_timeout
        call.ring_deadline = now + timeout + self._ring_guard
        self._at(call.ring_deadline, _D_RING, call)
        if pool == call.skill:
            via = "skill"
        elif pool[0] == "@":
            via = "return" if a.id == call.prefer else "account"
        elif pool == self._desk and call.tier == self._vip_tier:
            via = "vip_desk"
        else:
            via = "escalated"
        extra = {"number": call.number} if call.in_place else {}  # who the agent will call (screen-pop)
        out.append(self._ev(Kind.ACD_OFFER, now, call, a.id, ring_timeout_s=timeout, via=via,
                            proficiency=a.skills.get(call.skill), attempt=call.offers,
                            wait_s=now - call.arrived, kind="callback" if call.in_place else "inbound", **extra))
        out.append(Offer(call.id, a.id, call.skill, timeout, call.tier, call.caller,
                         "callback" if call.in_place else "inbound", call.number))

    @staticmethod
    def _ring_times(call: _Call, now: float) -> dict[str, float]:
        """ring_s: how long the agent's phone rang (from the ring's start; from the offer if it never
        started); setup_s: from the offer, the agent reserved, to the ring's start."""
        if call.rang_at is None:
            return {"ring_s": max(0.0, now - call.offered_at)}
        return {"ring_s": max(0.0, now - call.rang_at), "setup_s": max(0.0, call.rang_at - call.offered_at)}

    def _rona(self, call: _Call, now: float, reason: str, out: list[Command]) -> None:
        a = call.agent
        assert a is not None
        out.append(self._ev(Kind.ACD_RONA, now, call, a.id, **self._ring_times(call, now), reason=reason))
        a.call = None
        call.agent = None
        call.state = WAITING
        self._nwait[call.skill][call.rank] += 1
        call.ring_deadline = None
        self._move(a, "ring_fail", now, out, call=call, reason=_RING_FAIL_REASON.get(reason, "rona"))
        a.pending_not_ready = None
        if call.prefer == a.id:  # the agent it came back to did not take it: an ordinary caller now
            call.prefer = None
            self._compute_pools(call)
        if call.maxwait_at is not None and call.maxwait_at <= now:
            self._overflow(call, now, out)
            return
        self._register(call)  # same key as before: back to the head of its place
        self._match_call(call, now, out)

    # --- deadlines and housekeeping

    def _at(self, when: float, kind: int, obj: Any) -> None:
        self._push += 1
        heapq.heappush(self._deadlines, (when, self._push, kind, obj))

    def _deadline_live(self, when: float, kind: int, obj: Any) -> bool:
        if kind == _D_WRAP:
            return bool(obj.state == WRAP_UP and obj.wrap_until == when)
        if obj.state == GONE:
            return False
        if kind == _D_RING:
            return bool(obj.state == OFFERED and obj.ring_deadline == when)
        if kind == _D_STEP:
            return bool(obj.step_at == when)
        if kind == _D_PHASE:
            return bool(obj.phase_at == when)
        if kind == _D_AGING:
            return bool(obj.aging_at == when and obj.state in (WAITING, OFFERED))
        return bool(obj.maxwait_at == when and obj.state == WAITING)

    def _prune_ghosts(self, now: float) -> None:
        g = self._ghosts
        while g:
            key = next(iter(g))
            if g[key][2] > now:
                break
            del g[key]

    def _compact(self) -> None:
        """Drop stale heap entries so memory tracks live calls and agents, not history."""
        n = 0
        for levels in self._waiting.values():
            for minp, heap in list(levels.items()):
                live = [e for e in heap if e[5] == e[6].version and e[6].state == WAITING]
                heapq.heapify(live)
                levels[minp] = live
                n += len(live)
        for heaps in self._free.values():
            for i, heap in enumerate(heaps):
                live = [e for e in heap if e[2] == e[3].version]
                heapq.heapify(live)
                heaps[i] = live
                n += len(live)
        self._live_entries = n


def _clean_top(heap: list[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    while heap:
        top = heap[0]
        if top[5] == top[6].version and top[6].state == WAITING:
            return top
        heapq.heappop(heap)
    return None


def _dest(d: Any) -> Destination:
    return Destination(d.kind, d.target)


def _target(d: Destination) -> str:
    return f"{d.kind}:{d.target}" if d.target else d.kind




