"""The discrete-event simulator: a virtual clock driving the real `AcdEngine`.

Why the real engine: a what-if on routing rules is only worth something if the
rules are the ones the live server runs. The loop plays the part of Asterisk and
the callers: it creates calls (Poisson arrivals, piecewise constant per half
hour), walks them through an IVR delay, enqueues them, answers the engine's
`Offer`s after a ring time (or lets them ring out: RONA), hangs up after a handle
time, abandons callers whose patience ran out, logs agents in and out on their
shifts and calls `tick` at every `next_deadline`. It collects the engine's own
Events plus the caller-side ones the call tracker and IVR would log, so the KPI
report is computed by the same SQL as for a live day.

Pure: one seeded `random.Random`, no wall clock, no IO. Same scenario and seed,
same events, bit for bit.
"""

from __future__ import annotations

import bisect
import gc
import heapq
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..acd.engine import AcdEngine
from ..acd.model import Blocked, Command, Offer, Overflow, ScheduleCallback
from ..events import Event, Kind
from .scenario import Sampler, Scenario

# loop event kinds (ties at the same instant run in push order)
_ARRIVE, _IVR_DONE, _RING, _HANGUP, _ABANDON, _LOGIN, _LOGOUT, _READY = range(8)
_RING_MISSED = frozenset({"rona", "unreachable"})
SHIFT_END = "end_of_shift"
ANSWERED, ABANDONED, OVERFLOWED = range(3)
SERVER = "sim"


@dataclass(slots=True, eq=False)
class _SimCall:
    id: str
    skill: str
    tier: str
    caller: str
    arrived: float
    queued: float = 0.0
    offer_no: int = 0
    answered: bool = False
    done: bool = False


@dataclass(slots=True)
class SimResult:
    """What a run produced: the event log plus counters the loop kept for itself."""

    events: list[Event]
    start: float  # first arrival window, epoch s
    end: float  # end of the arrival window
    finished: float  # virtual time when the last call ended
    calls: int = 0
    answered: int = 0
    abandoned: int = 0
    self_service: int = 0
    overflowed: int = 0
    blocked: int = 0
    ronas: int = 0
    callbacks: int = 0
    engine_inputs: int = 0
    unfinished: int = 0  # still waiting when nothing else could happen (no agent left on duty)
    # one (arrived, queued, left the queue, outcome) per call that entered the ACD; outcome is
    # ANSWERED / ABANDONED / OVERFLOWED. Lets tests and benchmarks check figures without SQL.
    outcomes: list[tuple[float, float, float, int]] = field(default_factory=list)

    def summary(self, threshold_s: float = 20.0, since: float = -math.inf,
                until: float = math.inf) -> dict[str, float | None]:
        """SL, ASA, abandon rate and mean queue time of calls arriving in [since, until), with the KPI
        report's definitions when short abandons are not excluded (docs/kpis.md)."""
        rows = [o for o in self.outcomes if since <= o[0] < until]
        queued = len(rows)
        answered = [o[2] - o[1] for o in rows if o[3] == ANSWERED]
        within = sum(1 for w in answered if w <= threshold_s + 1e-6)
        abandoned = sum(1 for o in rows if o[3] == ABANDONED)
        return {
            "queued": queued,
            "answered": len(answered),
            "service_level": within / queued if queued else None,
            "asa_s": sum(answered) / len(answered) if answered else None,
            "abandon_rate": abandoned / queued if queued else None,
            "avg_queue_s": sum(o[2] - o[1] for o in rows) / queued if queued else None,
        }


def _chooser(weights: dict[str, float], rng: random.Random) -> Callable[[], str]:
    names = [k for k, w in weights.items() if w > 0]
    cum = list(itertools.accumulate(weights[k] for k in names))
    total = cum[-1]
    rand = rng.random
    if len(names) == 1:
        only = names[0]
        return lambda: only
    return lambda: names[bisect.bisect_right(cum, rand() * total)]


def simulate(sc: Scenario, seed: int | None = None, *, keep_events: bool = True) -> SimResult:
    """Run the scenario to the end (every caller served, gone, or stranded); see the module docstring.

    The cyclic garbage collector is paused meanwhile: a run builds millions of acyclic objects
    (events, their data dicts) and the collector's repeated scans of them were a quarter of the
    time at 100,000 calls. It is restored (and nothing else about the process changes) on return.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        return _simulate(sc, seed, keep_events)
    finally:
        if paused:
            gc.enable()


def _simulate(sc: Scenario, seed: int | None, keep_events: bool) -> SimResult:
    spec = sc.spec
    rng = random.Random(spec.seed if seed is None else seed)
    engine = AcdEngine(sc.acd)
    res = SimResult([], sc.start_ts, sc.end_ts, sc.start_ts)
    events = res.events
    keep = events.append if keep_events else None

    pick_skill = _chooser(spec.skills, rng)
    pick_tier = _chooser(spec.tiers, rng)
    default_ht = spec.handle_time.sampler(rng)
    ht_by_skill: dict[str, Sampler] = {s: d.sampler(rng) for s, d in spec.handle_time_by_skill.items()}
    handle = {s: ht_by_skill.get(s, default_ht) for s in sc.acd.skills}
    patience = spec.patience.sampler(rng) if spec.patience is not None else None
    ring_time = spec.ring_time.sampler(rng)
    ivr_time = spec.ivr.time.sampler(rng) if spec.ivr is not None else None
    ivr_self = spec.ivr.self_service if spec.ivr is not None else 0.0
    rona_p = spec.rona_probability
    ring_timeout = sc.acd.ring_timeout_s
    recovery = spec.rona_recovery.sampler(rng)
    rand = rng.random

    heap: list[tuple[float, int, int, Any]] = []
    seq = itertools.count()
    push = heapq.heappush

    def at(t: float, kind: int, obj: Any) -> None:
        push(heap, (t, next(seq), kind, obj))

    # staffing: config agents for the whole run, groups on their shifts
    leaving: set[str] = set()
    if spec.config_agents:
        for a in sc.acd.agents:
            at(sc.start_ts, _LOGIN, a.id)
    for g in spec.agents:
        windows = sc.shift_windows(g.shifts)
        for i in range(1, g.count + 1):
            aid = f"{g.prefix}{i}"
            engine.add_agent(aid, dict(g.skills))
            for lo, hi in windows:
                at(lo, _LOGIN, aid)
                if math.isfinite(hi):
                    at(hi, _LOGOUT, aid)

    calls: dict[str, _SimCall] = {}
    n_calls = itertools.count(1)
    state = engine.call_state

    slot = [-math.inf, -math.inf, 0.0]  # [start, edge, rate] of the current half hour

    def next_arrival(t: float) -> float | None:
        """Piecewise-constant Poisson: an exponential gap at this half hour's rate, restarted at
        each half-hour edge (memoryless, so exact)."""
        while t < sc.end_ts:
            if not slot[0] <= t < slot[1]:
                slot[2], slot[1] = sc.rate_at(t)
                slot[0] = t
            rate, edge = slot[2], slot[1]
            if rate > 0:
                t_next = t + rng.expovariate(rate)
                if t_next < edge:
                    return t_next if t_next < sc.end_ts else None
            t = edge
        return None

    first = next_arrival(sc.start_ts)
    if first is not None:
        at(first, _ARRIVE, None)

    def end_call(c: _SimCall, now: float) -> None:
        c.done = True
        del calls[c.id]
        if keep is not None:
            keep(Event(Kind.CALL_END, now, c.id, None, None, None, SERVER,
                       {"duration_s": now - c.arrived, "answered": c.answered}))

    def run(cmds: list[Command], now: float) -> None:
        for cmd in cmds:
            if type(cmd) is Event:
                if keep is not None:
                    keep(cmd)
                if cmd.kind == Kind.AGENT_STATE and cmd.data["state"] == "not_ready":
                    if cmd.agent_id in leaving:
                        leaving.discard(cmd.agent_id)
                        at(now, _LOGOUT, cmd.agent_id)
                    elif cmd.data["reason"] in _RING_MISSED:
                        at(now + recovery(), _READY, cmd.agent_id)
            elif type(cmd) is Offer:
                c = calls[cmd.call_id]
                c.offer_no += 1
                res.engine_inputs += 1
                run(engine.ring_started(cmd.call_id, now, timeout_owned=True), now)
                if rona_p and rand() < rona_p:
                    at(now + cmd.ring_timeout_s, _RING, (c, c.offer_no, False))
                else:
                    at(now + min(ring_time(), ring_timeout * 0.99), _RING, (c, c.offer_no, True))
            elif type(cmd) is Overflow or type(cmd) is Blocked:
                gone = calls.get(cmd.call_id)
                if gone is not None:
                    if type(cmd) is Overflow:
                        res.overflowed += 1
                        res.outcomes.append((gone.arrived, gone.queued, now, OVERFLOWED))
                    else:
                        res.blocked += 1
                    end_call(gone, now)
            elif type(cmd) is ScheduleCallback:
                res.callbacks += 1

    def enqueue(c: _SimCall, now: float) -> None:
        res.engine_inputs += 1
        c.queued = now
        run(engine.enqueue(c.id, c.skill, c.tier, c.caller, now), now)
        if patience is not None and not c.done:
            at(now + patience(), _ABANDON, c)

    now = sc.start_ts
    while True:
        dl = engine.next_deadline()
        if heap and (dl is None or heap[0][0] < dl):
            now, _, kind, obj = heapq.heappop(heap)
        elif dl is not None:
            now = dl
            res.engine_inputs += 1
            run(engine.tick(now), now)
            continue
        else:
            break
        if kind == _RING:
            c, offer_no, ok = obj
            if c.done or c.offer_no != offer_no or state(c.id) != "offered":
                continue  # the caller left, or this ring was already cancelled
            res.engine_inputs += 1
            if ok:
                run(engine.ring_answered(c.id, now), now)
                c.answered = True
                res.answered += 1
                res.outcomes.append((c.arrived, c.queued, now, ANSWERED))
                skill = c.skill
                at(now + handle[skill](), _HANGUP, c)
            else:
                res.ronas += 1
                run(engine.ring_failed(c.id, now, "noanswer"), now)
        elif kind == _HANGUP:
            c = obj
            res.engine_inputs += 1
            run(engine.call_ended(c.id, now), now)
            end_call(c, now)
        elif kind == _ABANDON:
            c = obj
            if c.done or c.answered or state(c.id) not in ("waiting", "offered"):
                continue
            res.engine_inputs += 1
            res.abandoned += 1
            res.outcomes.append((c.arrived, c.queued, now, ABANDONED))
            run(engine.abandon(c.id, now), now)
            end_call(c, now)
        elif kind == _ARRIVE:
            nxt = next_arrival(now)
            if nxt is not None:
                at(nxt, _ARRIVE, None)
            n = next(n_calls)
            c = _SimCall(f"sim-{n}", pick_skill(), pick_tier(), f"139{rng.randrange(10**8):08d}", now)
            calls[c.id] = c
            res.calls += 1
            if keep is not None:
                keep(Event(Kind.CALL_NEW, now, c.id, None, None, None, SERVER,
                           {"uniqueid": c.id, "channel": f"Local/{c.caller}@hotline", "caller_num": c.caller,
                            "caller_name": "", "exten": "95598", "context": "hotline",
                            "direction": "inbound"}))
            if ivr_time is not None:
                if keep is not None:
                    keep(Event(Kind.IVR_START, now, c.id, None, None, c.tier, SERVER,
                               {"tree": "sim", "version": 0, "caller": c.caller}))
                at(now + ivr_time(), _IVR_DONE, c)
            else:
                enqueue(c, now)
        elif kind == _IVR_DONE:
            c = obj
            if ivr_self and rand() < ivr_self:
                res.self_service += 1
                if keep is not None:
                    keep(Event(Kind.IVR_END, now, c.id, None, None, c.tier, SERVER,
                               {"outcome": "self_service", "node": "sim"}))
                end_call(c, now)
            else:
                if keep is not None:
                    keep(Event(Kind.IVR_END, now, c.id, None, c.skill, c.tier, SERVER,
                               {"outcome": "agent", "node": "sim"}))
                enqueue(c, now)
        elif kind == _LOGIN:
            aid = obj
            leaving.discard(aid)
            if engine.agent_state(aid)[0] == "logged_out":
                res.engine_inputs += 1
                run(engine.login(aid, now, ready=True), now)
        elif kind == _READY:
            aid = obj
            st, reason = engine.agent_state(aid)
            if st == "not_ready" and reason in _RING_MISSED and aid not in leaving:
                res.engine_inputs += 1
                run(engine.set_ready(aid, now), now)
        elif kind == _LOGOUT:
            aid = obj
            st = engine.agent_state(aid)[0]
            res.engine_inputs += 1
            if st in ("available", "not_ready", "wrap_up"):
                run(engine.logout(aid, now), now)
            elif st != "logged_out":  # busy: leave after this call and its wrap-up
                leaving.add(aid)
                run(engine.set_not_ready(aid, SHIFT_END, now), now)
    res.finished = now
    res.unfinished = len(calls)
    return res
