"""The fact builder: folds events into fact rows, one definition for the live server, `facts rebuild`,
the simulator and the report.

Facts (docs/kpis.md, "Facts"):

* `CallFact`, one per call id: when it arrived, queued, was answered, abandoned, overflowed, called back,
  blocked, ended; counts of offers, RONAs, transfers, dispositions; caller, queue, tier, agent; talk,
  hold and ring time; how the IVR and a callback ended. Room for a QC score (`qc_score`).
* `LegFact`, one per agent-leg event (offer, answer, RONA, transfer, complete): these count in the
  half hour they happened in, with that event's queue, tier and agent.
* `SegmentFact`, one per stay in one queue (enqueue to the way out of that queue).
* `AgentInterval`, one per agent state (from its `agent.state` event to the agent's next one), with
  the not-ready reason. Room for roster adherence (`scheduled`).

Pure: no IO, no clock. A fact is a function of all the events of its call (or agent), so a store
recomputes the facts of the calls a batch touched and upserts them by id: a replayed or re-flushed
event changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from ..events import Event, Kind

HALF_HOUR = 1800

CALL_KINDS = frozenset((
    Kind.CALL_NEW, Kind.IVR_START, Kind.IVR_END, Kind.ACD_ENQUEUE, Kind.ACD_OFFER, Kind.ACD_ANSWER,
    Kind.ACD_RONA, Kind.ACD_ABANDON, Kind.ACD_OVERFLOW, Kind.ACD_BLOCKED, Kind.ACD_TRANSFER,
    Kind.ACD_TRANSFER_FAILED, Kind.ACD_COMPLETE, Kind.ACD_CALLBACK, Kind.DISPOSITION, Kind.OUT_ATTEMPT,
    Kind.CALL_END, Kind.ACD_CALLBACK_END,
))
LEG_KINDS = frozenset((Kind.ACD_OFFER, Kind.ACD_ANSWER, Kind.ACD_RONA, Kind.ACD_TRANSFER, Kind.ACD_COMPLETE))
TIMEOUT_REASONS = frozenset(("timeout", "max_wait", "tier_max_wait"))
_QUEUE_EXITS = (Kind.ACD_ANSWER, Kind.ACD_ABANDON, Kind.ACD_OVERFLOW, Kind.ACD_CALLBACK, Kind.ACD_BLOCKED)


def _row(fact: Any) -> dict[str, Any]:
    """A fact as a column -> value dict (dataclasses.asdict deep-copies; every field here is a scalar)."""
    return {name: getattr(fact, name) for name in _FIELDS[type(fact)]}


def bucket_of(ts: float) -> int:
    """The UTC half hour of `ts` (the facts tables' index; a local half hour for whole-half-hour zones)."""
    return math.floor(ts / HALF_HOUR)


def ms(seconds: float) -> int:
    """Seconds to whole milliseconds, half up: the same arithmetic as kpi/sqlfuncs.round_ms."""
    return math.floor(seconds * 1000 + 0.5)


def json_str(data: Mapping[str, Any], key: str) -> str | None:
    """A JSON string or number as text, else None (as kpi/sqlfuncs.json_str)."""
    v = data.get(key)
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else None
    return None


def json_num(data: Mapping[str, Any], key: str) -> float | None:
    v = data.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def _known(v: str | None) -> str | None:
    """Asterisk's placeholder for a withheld number is no caller (FCR would link strangers)."""
    return None if v in (None, "", "<unknown>") else v


@dataclass(slots=True)
class CallFact:
    """One call (see the module docstring). Times are epoch seconds; None: never happened."""

    call_id: str
    t0: float
    bucket: int = 0
    is_out: int = 0
    ivr: int = 0
    ivr_self: int = 0
    ivr_agent: int = 0
    t_enq: float | None = None
    t_ans: float | None = None
    t_ab: float | None = None
    t_ovf: float | None = None
    t_cb: float | None = None
    t_blk: float | None = None
    t_end: float | None = None
    ovf_timeout: int = 0
    offers: int = 0
    ronas: int = 0
    transferred: int = 0
    disposed: int = 0
    resolved: int = 0
    caller: str | None = None
    queue: str | None = None
    tier: str | None = None
    agent: str | None = None
    ring_ms: int | None = None
    talk_ms: int | None = None
    hold_ms: int | None = None
    ivr_outcome: str | None = None
    callback_outcome: str | None = None
    qc_score: float | None = None  # filled by quality control (its own issue)

    def row(self) -> dict[str, Any]:
        return _row(self)


@dataclass(slots=True)
class LegFact:
    """One agent-leg event of a call: counted in its own half hour with its own queue, tier, agent."""

    call_id: str
    seq: int  # order within the call
    ts: float
    kind: str
    agent: str | None
    queue: str | None
    tier: str | None
    ring_ms: int | None = None  # acd.answer
    talk_ms: int | None = None  # acd.complete
    hold_ms: int | None = None  # acd.complete
    bucket: int = 0

    def row(self) -> dict[str, Any]:
        return _row(self)


@dataclass(slots=True)
class SegmentFact:
    """One stay of a call in one queue: from its enqueue to the first way out after it."""

    call_id: str
    seq: int
    queue: str | None
    tier: str | None
    t_in: float
    t_out: float | None
    outcome: str | None  # answer, abandon, overflow, callback, blocked; None: still waiting or ended
    agent: str | None

    def row(self) -> dict[str, Any]:
        return _row(self)


@dataclass(slots=True)
class AgentInterval:
    """An agent's state from its `agent.state` event to the next one (t_end None: still in force)."""

    agent: str
    t_start: float
    t_end: float | None
    state: str | None
    reason: str | None
    scheduled: str | None = None  # roster adherence (its own issue): what the roster planned

    def row(self) -> dict[str, Any]:
        return _row(self)


_FIELDS: dict[type, tuple[str, ...]] = {
    t: tuple(f.name for f in fields(t)) for t in (CallFact, LegFact, SegmentFact, AgentInterval)}


@dataclass(slots=True)
class _Fold:
    """Running state of one call while its events are folded in."""

    call_id: str
    t0: float = math.inf
    f: CallFact = field(init=False)
    callers: list[str | None] = field(default_factory=lambda: [None, None, None])
    first_queue: tuple[int, str] | None = None
    first_tier: tuple[int, str] | None = None
    first_agent: tuple[int, str] | None = None
    any_queue: str | None = None
    any_tier: str | None = None
    transfers: int = 0
    failed: int = 0
    ivr_end: tuple[float, str | None] | None = None
    cb_end: tuple[float, str | None] | None = None
    events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.f = CallFact(self.call_id, math.inf)


def _first(cur: tuple[int, str] | None, ts: float, value: str | None) -> tuple[int, str]:
    cand = (ms(ts), value or "")
    return cand if cur is None or cand < cur else cur


def _tmin(cur: float | None, ts: float) -> float:
    return ts if cur is None or ts < cur else cur


def _smax(cur: str | None, v: str | None) -> str | None:
    if v is None:
        return cur
    return v if cur is None or v > cur else cur


class FactBuilder:
    """Feed events (any order) with `add`; read `call_facts()`, `leg_facts()`, `segment_facts()`,
    `agent_intervals()`. Events of one call must carry the same call id (the Asterisk Linkedid)."""

    def __init__(self) -> None:
        self._calls: dict[str, _Fold] = {}
        self._states: dict[str, list[tuple[float, int, str | None, str | None]]] = {}
        self._seq = 0

    def add(self, ev: Event) -> None:
        self._seq += 1
        if ev.kind == Kind.AGENT_STATE:
            if ev.agent_id is not None:
                data = ev.data if isinstance(ev.data, dict) else {}
                self._states.setdefault(ev.agent_id, []).append(
                    (ev.ts, self._seq, json_str(data, "state"), json_str(data, "reason")))
            return
        if ev.call_id is None or ev.kind not in CALL_KINDS:
            return
        fold = self._calls.get(ev.call_id)
        if fold is None:
            fold = self._calls[ev.call_id] = _Fold(ev.call_id)
        fold.events.append(ev)
        _fold(fold, ev)

    def add_all(self, evs: Iterable[Event]) -> FactBuilder:
        for ev in evs:
            self.add(ev)
        return self

    def forget_before(self, ts: float) -> None:
        """Drop the calls that arrived before `ts` (a live board's memory; their late events would
        otherwise start a new call)."""
        self._calls = {k: v for k, v in self._calls.items() if v.f.t0 >= ts}

    def call_ids(self) -> list[str]:
        return list(self._calls)

    def facts_of(self, call_id: str) -> tuple[CallFact | None, list[LegFact]]:
        """One call's fact (None if none of its events counts) and its leg facts, from what was added."""
        fold = self._calls.get(call_id)
        if fold is None:
            return None, []
        fact = _finish(fold) if fold.events and _has_ts(fold) else None
        return fact, legs_of(fold.events)

    def fact_of(self, call_id: str) -> CallFact | None:
        """One call's fact (None if none of its events counts, or no such call)."""
        fold = self._calls.get(call_id)
        return _finish(fold) if fold is not None and fold.events and _has_ts(fold) else None

    def forget(self, call_id: str) -> None:
        """Drop one call's events (a cache's eviction)."""
        self._calls.pop(call_id, None)

    def call_facts(self) -> list[CallFact]:
        return [_finish(fold) for fold in self._calls.values() if fold.events and _has_ts(fold)]

    def leg_facts(self) -> list[LegFact]:
        out: list[LegFact] = []
        for fold in self._calls.values():
            out += legs_of(fold.events)
        return out

    def segment_facts(self) -> list[SegmentFact]:
        out: list[SegmentFact] = []
        for fold in self._calls.values():
            out += segments_of(fold.events)
        return out

    def agent_intervals(self) -> list[AgentInterval]:
        out: list[AgentInterval] = []
        for agent, marks in self._states.items():
            out += intervals_of(agent, marks)
        return out


def _has_ts(fold: _Fold) -> bool:
    return math.isfinite(fold.f.t0)


def _fold(fold: _Fold, ev: Event) -> None:
    f, k, ts = fold.f, ev.kind, ev.ts
    data = ev.data if isinstance(ev.data, dict) else {}
    if k == Kind.ACD_CALLBACK_END:  # after the call, from the outbound side: says how its callback ended
        if fold.cb_end is None or ts >= fold.cb_end[0]:
            fold.cb_end = (ts, json_str(data, "outcome") or json_str(data, "action"))
        return
    if ts < f.t0:
        f.t0 = ts
    if ev.queue is not None:
        fold.any_queue = _smax(fold.any_queue, ev.queue)
    if ev.tier is not None:
        fold.any_tier = _smax(fold.any_tier, ev.tier)
    if k == Kind.CALL_NEW:
        fold.callers[0] = _smax(fold.callers[0], json_str(data, "caller_num"))
        if json_str(data, "direction") == "outbound":
            f.is_out = 1
    elif k == Kind.OUT_ATTEMPT:
        f.is_out = 1
    elif k == Kind.IVR_START:
        f.ivr += 1
        fold.callers[2] = _smax(fold.callers[2], json_str(data, "caller"))
    elif k == Kind.IVR_END:
        outcome = json_str(data, "outcome")
        f.ivr_self += outcome == "self_service"
        f.ivr_agent += outcome == "agent"
        if fold.ivr_end is None or ts >= fold.ivr_end[0]:
            fold.ivr_end = (ts, outcome)
    elif k == Kind.ACD_ENQUEUE:
        if json_str(data, "kind") in ("callback", "consult"):
            f.is_out = 1
        fold.callers[1] = _smax(fold.callers[1], json_str(data, "caller"))
        f.t_enq = _tmin(f.t_enq, ts)
        fold.first_queue = _first(fold.first_queue, ts, ev.queue)
        fold.first_tier = _first(fold.first_tier, ts, ev.tier)
    elif k == Kind.ACD_ANSWER:
        if (json_str(data, "kind") or "") != "callback":
            f.t_ans = _tmin(f.t_ans, ts)
        fold.first_agent = _first(fold.first_agent, ts, ev.agent_id)
        ring = json_num(data, "ring_s")
        if ring is not None:
            f.ring_ms = (f.ring_ms or 0) + ms(ring)
    elif k == Kind.ACD_ABANDON:
        f.t_ab = _tmin(f.t_ab, ts)
    elif k == Kind.ACD_OVERFLOW:
        f.t_ovf = _tmin(f.t_ovf, ts)
        f.ovf_timeout += json_str(data, "reason") in TIMEOUT_REASONS
    elif k == Kind.ACD_CALLBACK:
        f.t_cb = _tmin(f.t_cb, ts)
    elif k == Kind.ACD_BLOCKED:
        f.t_blk = _tmin(f.t_blk, ts)
    elif k == Kind.CALL_END:
        f.t_end = _tmin(f.t_end, ts)
    elif k == Kind.ACD_OFFER:
        f.offers += 1
    elif k == Kind.ACD_RONA:
        f.ronas += 1
    elif k == Kind.ACD_TRANSFER:
        fold.transfers += 1
    elif k == Kind.ACD_TRANSFER_FAILED:
        fold.failed += 1
    elif k == Kind.ACD_COMPLETE:
        talk, hold = json_num(data, "talk_s"), json_num(data, "hold_s")
        if talk is not None:
            f.talk_ms = (f.talk_ms or 0) + ms(talk)
        if hold is not None:
            f.hold_ms = (f.hold_ms or 0) + ms(hold)
    elif k == Kind.DISPOSITION:
        f.disposed += 1
        f.resolved += data.get("resolved") is True


def _strip(v: tuple[int, str] | None) -> str | None:
    return v[1] or None if v is not None else None


def _finish(fold: _Fold) -> CallFact:
    f = fold.f
    f.bucket = bucket_of(f.t0)
    f.transferred = fold.transfers - fold.failed
    c = fold.callers
    f.caller = _known(c[0]) or _known(c[1]) or _known(c[2])
    f.queue = _strip(fold.first_queue) or fold.any_queue
    f.tier = _strip(fold.first_tier) or fold.any_tier
    f.agent = _strip(fold.first_agent)
    f.ivr_outcome = fold.ivr_end[1] if fold.ivr_end else None
    f.callback_outcome = fold.cb_end[1] if fold.cb_end else None
    return replace(f)


def call_fact(evs: Iterable[Event]) -> CallFact | None:
    """The fact of one call from all its events (None if none of them counts)."""
    facts = FactBuilder().add_all(evs).call_facts()
    return facts[0] if facts else None


def legs_of(evs: Iterable[Event]) -> list[LegFact]:
    """The agent-leg facts of one call's events, in time order."""
    legs = sorted((e for e in evs if e.kind in LEG_KINDS and e.call_id is not None), key=lambda e: e.ts)
    out = []
    for i, e in enumerate(legs):
        data = e.data if isinstance(e.data, dict) else {}
        leg = LegFact(e.call_id or "", i, e.ts, e.kind, e.agent_id, e.queue, e.tier, bucket=bucket_of(e.ts))
        if e.kind == Kind.ACD_ANSWER:
            ring = json_num(data, "ring_s")
            leg.ring_ms = ms(ring) if ring is not None else None
        elif e.kind == Kind.ACD_COMPLETE:
            talk, hold = json_num(data, "talk_s"), json_num(data, "hold_s")
            leg.talk_ms = ms(talk) if talk is not None else None
            leg.hold_ms = ms(hold) if hold is not None else None
        out.append(leg)
    return out


def segments_of(evs: Iterable[Event]) -> list[SegmentFact]:
    """A call's queue stays: each `acd.enqueue` runs to the next way out (answer, abandon, ...)."""
    ordered = sorted((e for e in evs if e.call_id is not None), key=lambda e: e.ts)
    out: list[SegmentFact] = []
    open_seg: SegmentFact | None = None
    for e in ordered:
        if e.kind == Kind.ACD_ENQUEUE:
            if open_seg is not None:
                open_seg.t_out, open_seg.outcome = e.ts, "requeue"
            open_seg = SegmentFact(e.call_id or "", len(out), e.queue, e.tier, e.ts, None, None, None)
            out.append(open_seg)
        elif open_seg is not None and e.kind in _QUEUE_EXITS:
            open_seg.t_out, open_seg.outcome = e.ts, e.kind.split(".", 1)[1]
            open_seg.agent = e.agent_id if e.kind == Kind.ACD_ANSWER else None
            open_seg = None
    return out


def intervals_of(agent: str, marks: Iterable[tuple[float, int, str | None, str | None]]) -> list[AgentInterval]:
    """(ts, order, state, reason) marks of one agent -> intervals, each ending at the next mark."""
    ordered = sorted(marks)
    out = []
    for (ts, _o, state, reason), nxt in zip(ordered, [*ordered[1:], None], strict=True):
        out.append(AgentInterval(agent, ts, nxt[0] if nxt is not None else None, state, reason))
    return out
