"""SQL over the event log: per-call, per-leg and per-agent facts, summed per local half hour.

Why half hours: every grouping a manager asks for (hour, day, week, month, time
band) is a union of local half hours, and every figure a KPI needs is a count or
a sum, so the database does the heavy work once per half hour and dimension and
Python only adds up rows (metrics.py; the facts and their window are in facts.py).
Durations are summed as integer milliseconds, so SQLite and PostgreSQL give
bit-identical totals.

Attribution: call facts belong to the half hour the call arrived in (its first
event), even if it is answered after midnight; agent-leg events (offer, answer,
RONA, transfer, complete) to the half hour they happened in; agent state time
is split across the half hours it spans.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Float, and_, case, cast, func, literal, or_, select, text, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.expression import ColumnElement

from ..events import Kind
from ..store.schema import events
from .config import KpiConfig
from .facts import (
    AGENT_DIMS,
    CALL_DIMS,
    DISPOSITION_DIMS,
    HALF_HOUR,
    HALF_HOUR_MS,
    LEG_DIMS,
    RATING_DIMS,
    REVISIT_DIMS,
    WORKORDER_DIMS,
    Facts,
    Window,
)
from .sqlfuncs import PAD, PaddedMs, floor_div, json_num, json_str, json_true, round_ms

EPS = 1e-6  # float timestamps: "answered within 20 s" tolerates 1 µs of representation error

REVISIT_LOOKAHEAD_S = 31 * 86400  # a satisfaction callback due in the range is looked for this long after it

CALL_KINDS = (
    Kind.CALL_NEW, Kind.IVR_START, Kind.IVR_END, Kind.ACD_ENQUEUE, Kind.ACD_OFFER, Kind.ACD_ANSWER,
    Kind.ACD_RONA, Kind.ACD_ABANDON, Kind.ACD_OVERFLOW, Kind.ACD_BLOCKED, Kind.ACD_TRANSFER,
    Kind.ACD_TRANSFER_FAILED, Kind.ACD_COMPLETE, Kind.ACD_CALLBACK, Kind.DISPOSITION, Kind.OUT_ATTEMPT, Kind.CALL_END,
)
LEG_KINDS = (Kind.ACD_OFFER, Kind.ACD_ANSWER, Kind.ACD_RONA, Kind.ACD_TRANSFER, Kind.ACD_COMPLETE)
PARALLEL_QUERIES = 3
# One big aggregate per report: JIT compilation costs more than it saves (8 s of 50 s at 1M calls),
# and the per-call sorts fit in memory at 128 MB instead of spilling to disk.
PG_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL work_mem = '128MB'")
TIMEOUT_REASONS = ("timeout", "max_wait", "tier_max_wait")


def utc_offset(ts: ColumnElement[Any] | Any, win: Window) -> Any:
    """The zone's UTC offset in whole seconds at `ts` (a literal, or an SQL CASE over its changes)."""
    if len(win.transitions) == 1:
        return literal(win.transitions[0][1])
    pairs = zip(win.transitions[1:], win.transitions[:-1], strict=True)
    whens = [(ts < since, prev) for (since, _o), (_s, prev) in pairs]
    return case(*whens, else_=win.transitions[-1][1])


def local_seconds(ts: ColumnElement[Any] | Any, win: Window) -> ColumnElement[Any]:
    """Epoch seconds shifted to local wall-clock seconds."""
    if len(win.transitions) == 1:
        return ts + win.transitions[0][1]
    return ts + utc_offset(ts, win)


def half_hour_of(ts: Any, win: Window) -> ColumnElement[int]:
    return floor_div(local_seconds(ts, win), HALF_HOUR)


def _cnt(cond: ColumnElement[bool]) -> ColumnElement[Any]:
    return _isum(case((cond, 1), else_=0))


def _sum(cond: ColumnElement[bool], value: Any) -> ColumnElement[Any]:
    return _isum(case((cond, value), else_=0))


def _isum(value: Any) -> ColumnElement[Any]:
    """SUM of integers as BIGINT (PostgreSQL would widen SUM(bigint) to NUMERIC)."""
    return cast(func.sum(value), BigInteger)


def _num(v: Any) -> int | float | None:
    if v is None:
        return None
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, bool):
        return int(v)
    return v


def _dim_cols(mapping: Mapping[str, ColumnElement[Any]], dims: Sequence[str]) -> list[ColumnElement[Any]]:
    return [mapping[d].label(f"d_{d}") for d in dims]


def family_queries(cfg: KpiConfig, win: Window, dims: Sequence[str]) -> dict[str, Any]:
    """One aggregate statement per family; `dims` are the entity dimensions asked for."""
    return {
        "calls": call_query(cfg, win, [d for d in dims if d in CALL_DIMS]),
        "legs": leg_query(win, [d for d in dims if d in LEG_DIMS]),
        "agent_time": agent_time_query(cfg, win, [d for d in dims if d in AGENT_DIMS]),
        "dispositions": disposition_query(win, [d for d in dims if d in DISPOSITION_DIMS]),
        "workorders": workorder_query(cfg, win, [d for d in dims if d in WORKORDER_DIMS]),
        "outbound": outbound_query(cfg, win),
        "survey": survey_query(win),
        "ratings": rating_query(win, [d for d in dims if d in RATING_DIMS]),
        "revisits": revisit_query(win, [d for d in dims if d in REVISIT_DIMS]),
    }


def _facts(rows: dict[str, list[dict[str, Any]]], dims: Sequence[str]) -> Facts:
    """Rows per family -> Facts; a family not queried stays empty (the caller fills it)."""
    agent_dims = [d for d in dims if d in AGENT_DIMS]
    return Facts(calls=rows.get("calls", []), legs=rows.get("legs", []),
                 agent_time=split_agent_rows(rows.get("agent_time", []), agent_dims),
                 dispositions=rows.get("dispositions", []), workorders=rows.get("workorders", []),
                 outbound=rows.get("outbound", []), survey=rows.get("survey", []),
                 ratings=rows.get("ratings", []), revisits=rows.get("revisits", []))


Queries = dict[str, Any]


async def fetch_facts(conn: AsyncConnection, cfg: KpiConfig, win: Window, dims: Sequence[str],
                      queries: Queries | None = None) -> Facts:
    """Run every family's query (`queries`, default: all over the events), one after the other."""
    queries = family_queries(cfg, win, dims) if queries is None else queries
    rows = {name: await _rows(conn, q) for name, q in queries.items()}
    return _facts(rows, dims)


async def fetch_facts_parallel(engine: AsyncEngine, cfg: KpiConfig, win: Window,
                               dims: Sequence[str], queries: Queries | None = None) -> Facts:
    """Same as fetch_facts, each family on its own pooled connection, so a server database uses
    several cores at once. SQLite gains nothing from it and runs them in turn."""
    if engine.dialect.name == "sqlite":
        async with engine.connect() as conn:
            return await fetch_facts(conn, cfg, win, dims, queries)

    gate = asyncio.Semaphore(PARALLEL_QUERIES)  # leave pooled connections for the event writer

    async def one(q: Any) -> list[dict[str, Any]]:
        async with gate, engine.connect() as conn:
            for setting in PG_SETTINGS:  # SET LOCAL: ends with this read-only transaction
                await conn.execute(text(setting))
            return await _rows(conn, q)

    queries = family_queries(cfg, win, dims) if queries is None else queries
    results = await asyncio.gather(*(one(q) for q in queries.values()))
    return _facts(dict(zip(queries, results, strict=True)), dims)


async def _rows(conn: AsyncConnection, stmt: Any) -> list[dict[str, Any]]:
    result = await conn.execute(stmt)
    keys = list(result.keys())
    out = []
    for row in result:
        out.append({k: (_num(v) if type(v) is Decimal else v) for k, v in zip(keys, row, strict=True)})
    return out


def call_query(cfg: KpiConfig, win: Window, dims: Sequence[str]) -> Any:
    """One row per (half hour, dims) with sums of per-call facts (see docs/kpis.md, "Per-call facts")."""
    e = events.c
    k = e.kind
    sl = cfg.service_level
    lookback = cfg.window.max_call_s
    lookahead = max(cfg.window.max_call_s, cfg.fcr.window_h * 3600.0)

    def first_ts(kind: str) -> ColumnElement[Any]:
        return func.min(e.ts).filter(k == kind)

    def first_value(kind: str, value: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.min(PaddedMs(e.ts) + func.coalesce(value, "")).filter(k == kind)

    def n(cond: ColumnElement[bool]) -> ColumnElement[Any]:
        # FILTER (WHERE ...) skips rows instead of feeding a CASE to every aggregate: much cheaper.
        return func.count().filter(cond)

    per_call = (
        select(
            e.call_id.label("call_id"),
            func.min(e.ts).label("t0"),
            # not an inbound customer call: campaign calls, callbacks the ACD queued for the outbound
            # side, and an agent's warm-transfer (consultation) leg queued at a desk
            n(or_(k == Kind.OUT_ATTEMPT,
                  and_(k == Kind.CALL_NEW, json_str(e.data, "direction") == "outbound"),
                  and_(k == Kind.ACD_ENQUEUE, json_str(e.data, "kind").in_(("callback", "consult"))))
              ).label("is_out"),
            n(k == Kind.IVR_START).label("ivr"),
            n(and_(k == Kind.IVR_END, json_str(e.data, "outcome") == "self_service")).label("ivr_self"),
            n(and_(k == Kind.IVR_END, json_str(e.data, "outcome") == "agent")).label("ivr_agent"),
            first_ts(Kind.ACD_ENQUEUE).label("t_enq"),
            # an agent taking a kept place's callback is not an answer of the waiting caller: the call
            # stays a deferred callback (its outcome is in the acd-callback outbound figures)
            func.min(e.ts).filter(k == Kind.ACD_ANSWER,
                                  func.coalesce(json_str(e.data, "kind"), "") != "callback").label("t_ans"),
            first_ts(Kind.ACD_ABANDON).label("t_ab"),
            first_ts(Kind.ACD_OVERFLOW).label("t_ovf"),
            first_ts(Kind.ACD_CALLBACK).label("t_cb"),
            first_ts(Kind.ACD_BLOCKED).label("t_blk"),
            first_ts(Kind.CALL_END).label("t_end"),
            n(and_(k == Kind.ACD_OVERFLOW, json_str(e.data, "reason").in_(TIMEOUT_REASONS))).label("ovf_timeout"),
            n(k == Kind.ACD_OFFER).label("offers"),
            n(k == Kind.ACD_RONA).label("ronas"),
            # a transfer that could not complete brought the caller back: not a transfer
            (n(k == Kind.ACD_TRANSFER) - n(k == Kind.ACD_TRANSFER_FAILED)).label("transferred"),
            n(k == Kind.DISPOSITION).label("disposed"),
            n(and_(k == Kind.DISPOSITION, json_true(e.data, "resolved"))).label("resolved"),
            func.max(json_str(e.data, "caller_num")).filter(k == Kind.CALL_NEW).label("caller1"),
            func.max(json_str(e.data, "caller")).filter(k == Kind.ACD_ENQUEUE).label("caller2"),
            func.max(json_str(e.data, "caller")).filter(k == Kind.IVR_START).label("caller3"),
            first_value(Kind.ACD_ENQUEUE, e.queue).label("first_queue"),
            first_value(Kind.ACD_ENQUEUE, e.tier).label("first_tier"),
            first_value(Kind.ACD_ANSWER, e.agent_id).label("first_agent"),
            func.max(e.queue).label("any_queue"),
            func.max(e.tier).label("any_tier"),
        )
        .where(e.ts >= win.start - lookback, e.ts < win.end + lookahead, k.in_(CALL_KINDS),
               e.call_id.is_not(None))
        .group_by(e.call_id)
    ).cte("per_call")
    c = per_call.c

    def stripped(col: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.nullif(func.substr(col, PAD + 1), "")

    def known(col: ColumnElement[Any]) -> ColumnElement[Any]:
        # Asterisk's placeholder for a withheld or not-yet-set number is no caller (FCR would link strangers)
        return func.nullif(func.nullif(col, ""), "<unknown>")

    caller = func.coalesce(known(c.caller1), known(c.caller2), known(c.caller3))
    facts = (
        select(
            c.call_id, c.t0, c.ivr, c.ivr_self, c.ivr_agent, c.t_enq, c.t_ans, c.t_ab, c.t_ovf, c.t_cb,
            c.t_blk, c.t_end, c.ovf_timeout, c.offers, c.ronas, c.transferred, c.disposed, c.resolved,
            caller.label("caller"),
            func.coalesce(stripped(c.first_queue), c.any_queue).label("queue"),
            func.coalesce(stripped(c.first_tier), c.any_tier).label("tier"),
            stripped(c.first_agent).label("agent"),
            func.lead(c.t0).over(partition_by=caller, order_by=(c.t0, c.call_id)).label("next_t0"),
        )
        .where(c.is_out == 0)
    ).cte("call_facts")
    f = facts.c

    q0 = func.coalesce(f.t_enq, f.t0)  # when the caller started waiting for an agent
    in_acd = or_(f.t_enq.is_not(None), f.t_ans.is_not(None), f.t_ab.is_not(None), f.t_ovf.is_not(None))
    wanted = or_(in_acd, f.t_blk.is_not(None), f.ivr_agent > 0)
    answered = f.t_ans.is_not(None)
    wait = f.t_ans - q0
    abandoned = and_(f.t_ans.is_(None), f.t_ab.is_not(None))
    ab_wait = f.t_ab - q0
    short_ab = and_(abandoned, ab_wait < sl.short_abandon_s - EPS)
    # A callback scheduled instead of an answer (kept place, overflow or door to callback):
    # deferred, not lost.
    callback = and_(wanted, f.t_ans.is_(None), f.t_ab.is_(None), f.t_cb.is_not(None))
    overflow_lost = and_(f.t_ans.is_(None), f.t_ab.is_(None), f.t_cb.is_(None), f.t_ovf.is_not(None))
    blocked = and_(f.t_blk.is_not(None), f.t_ans.is_(None))
    # Still waiting when the report runs: no way out of the queue yet, the call has not ended, and it
    # is recent enough to be alive. Neither answered nor lost (yet).
    waiting = and_(in_acd, f.t_ans.is_(None), f.t_ab.is_(None), f.t_ovf.is_(None), f.t_cb.is_(None),
                   f.t_end.is_(None), f.t0 >= win.now - cfg.window.max_call_s)
    lost = and_(wanted, f.t_ans.is_(None), or_(f.t_cb.is_(None), f.t_ab.is_not(None)), ~waiting)
    exit_ts = case(
        (f.t_ans.is_not(None), f.t_ans), (f.t_ab.is_not(None), f.t_ab),
        (f.t_ovf.is_not(None), f.t_ovf), else_=f.t_cb)
    tier_whens = [(f.tier == name, t.threshold_s) for name, t in sorted(cfg.tier_targets.tiers.items())]
    tier_threshold: Any = (case(*tier_whens, else_=cfg.tier_targets.default.threshold_s)
                           if tier_whens else literal(cfg.tier_targets.default.threshold_s))
    repeat = and_(f.caller.is_not(None), f.next_t0.is_not(None),
                  f.next_t0 - f.t0 <= cfg.fcr.window_h * 3600.0 + EPS)
    dim_map = {"queue": f.queue, "tier": f.tier, "agent": f.agent}
    hh = half_hour_of(f.t0, win).label("hh")
    cols = [
        hh, *_dim_cols(dim_map, dims),
        func.count().label("offered"),
        _cnt(f.ivr > 0).label("ivr"),
        _cnt(and_(f.ivr_self > 0, f.ivr_agent == 0, f.t_blk.is_(None), ~in_acd)).label("ivr_contained"),
        _cnt(wanted).label("wanted"),
        _cnt(in_acd).label("queued"),
        _cnt(blocked).label("blocked"),
        _cnt(answered).label("answered"),
        _sum(answered, round_ms(wait)).label("wait_ms"),
        _cnt(and_(answered, wait <= sl.threshold_s + EPS)).label("within_sl"),
        _cnt(and_(answered, wait <= tier_threshold + EPS)).label("within_tier"),
        _cnt(abandoned).label("abandoned"),
        _cnt(short_ab).label("short_abandoned"),
        _sum(abandoned, round_ms(ab_wait)).label("abandon_ms"),
        _sum(short_ab, round_ms(ab_wait)).label("short_abandon_ms"),
        _cnt(and_(abandoned, f.offers > f.ronas)).label("abandoned_ringing"),
        _cnt(callback).label("callbacks"),
        _cnt(and_(callback, in_acd)).label("queued_callbacks"),
        _cnt(and_(abandoned, f.t_cb.is_not(None))).label("abandon_callbacks"),
        _cnt(overflow_lost).label("overflowed"),
        _cnt(and_(overflow_lost, f.ovf_timeout > 0)).label("timed_out"),
        _cnt(lost).label("lost"),
        _cnt(waiting).label("in_queue"),
        _cnt(and_(in_acd, exit_ts.is_not(None))).label("queue_exits"),
        _sum(and_(in_acd, exit_ts.is_not(None)), round_ms(exit_ts - q0)).label("queue_ms"),
        _cnt(and_(answered, f.transferred > 0)).label("transferred"),
        _cnt(and_(answered, f.caller.is_not(None))).label("fcr_repeat_base"),
        _cnt(and_(answered, f.caller.is_not(None), ~repeat)).label("fcr_no_repeat"),
        _cnt(and_(answered, f.disposed > 0)).label("fcr_disp_base"),
        _cnt(and_(answered, f.resolved > 0)).label("fcr_resolved"),
        _cnt(and_(answered, f.caller.is_not(None), f.disposed > 0)).label("fcr_both_base"),
        _cnt(and_(answered, f.caller.is_not(None), f.resolved > 0, ~repeat)).label("fcr_both"),
    ]
    group = [hh, *(dim_map[d] for d in dims)]
    return (select(*cols).where(f.t0 >= win.start, f.t0 < win.end).group_by(*group))


def leg_query(win: Window, dims: Sequence[str]) -> Any:
    """Agent-leg events summed per half hour they happened in."""
    e = events.c
    k = e.kind
    ring = json_num(e.data, "ring_s")
    talk = json_num(e.data, "talk_s")
    hold = json_num(e.data, "hold_s")
    dim_map = {"queue": e.queue, "tier": e.tier, "agent": e.agent_id}
    hh = half_hour_of(e.ts, win).label("hh")
    cols = [
        hh, *_dim_cols(dim_map, dims),
        _cnt(k == Kind.ACD_OFFER).label("offers"),
        _cnt(k == Kind.ACD_ANSWER).label("answers"),
        _cnt(k == Kind.ACD_RONA).label("ronas"),
        _cnt(k == Kind.ACD_TRANSFER).label("transfers"),
        _cnt(k == Kind.ACD_COMPLETE).label("handled"),
        _cnt(and_(k == Kind.ACD_COMPLETE, talk.is_not(None))).label("talk_n"),
        _sum(and_(k == Kind.ACD_COMPLETE, talk.is_not(None)), round_ms(talk)).label("talk_ms"),
        _cnt(and_(k == Kind.ACD_COMPLETE, hold.is_not(None))).label("hold_n"),
        _sum(and_(k == Kind.ACD_COMPLETE, hold.is_not(None)), round_ms(hold)).label("hold_ms"),
        _cnt(and_(k == Kind.ACD_ANSWER, ring.is_not(None))).label("ring_n"),
        _sum(and_(k == Kind.ACD_ANSWER, ring.is_not(None)), round_ms(ring)).label("ring_ms"),
    ]
    return (select(*cols)
            .where(e.ts >= win.start, e.ts < win.end, k.in_(LEG_KINDS))
            .group_by(hh, *(dim_map[d] for d in dims)))


def agent_time_query(cfg: KpiConfig, win: Window, dims: Sequence[str]) -> Any:
    """Agent state time per (half hour, [agent], state) in ms.

    A state lasts from its agent.state event to the agent's next one (LEAD), clipped
    to the report range and to `now` for the state still in force; logged_out time
    is not kept. Splitting at half-hour edges without a join: the first query sums
    each interval's head piece, tail piece (or the whole of a short one); the second
    returns +1/-1 marks where runs of whole half hours start and stop, which
    `expand_coverage` turns into 1800 s per covered half hour. Both read one CTE.
    """
    e = events.c
    cap = min(win.end, win.now)
    lookback = cfg.window.agent_lookback_s
    st = (
        select(
            e.agent_id.label("agent"),
            e.ts.label("ts"),
            json_str(e.data, "state").label("state"),
            func.lead(e.ts).over(partition_by=e.agent_id, order_by=(e.ts, e.id)).label("t_next"),
        )
        .where(e.kind == Kind.AGENT_STATE, e.ts >= win.start - lookback, e.ts < cap,
               e.agent_id.is_not(None))
    ).subquery("st")
    s_clip = case((st.c.ts < win.start, win.start), else_=st.c.ts)
    e_clip = case((or_(st.c.t_next.is_(None), st.c.t_next > cap), cap), else_=st.c.t_next)
    iv0 = (
        select(st.c.agent, st.c.state, s_clip.label("s"), e_clip.label("e"))
        .where(e_clip > s_clip, or_(st.c.state.is_(None), st.c.state != "logged_out"))
    ).subquery("iv0")
    # Both ends in whole UTC milliseconds, shifted by the offset in force at the start: a state that
    # ends exactly at the range end ends exactly on a half-hour edge, with no 1 ms crumbs.
    off_ms = utc_offset(iv0.c.s, win) * 1000
    iv1 = (
        select(iv0.c.agent, iv0.c.state, (round_ms(iv0.c.s) + off_ms).label("ls"),
               (round_ms(iv0.c.e) + off_ms).label("le"))
    ).subquery("iv1")
    iv = (
        select(iv1.c.agent, iv1.c.state, iv1.c.ls, iv1.c.le,
               floor_div(iv1.c.ls, HALF_HOUR_MS).label("b0"),
               floor_div(iv1.c.le - 1, HALF_HOUR_MS).label("b1"))
    ).cte("agent_intervals")
    c = iv.c
    dims_of = _dim_cols({"agent": c.agent}, dims)
    slot = cast(literal(HALF_HOUR_MS), BigInteger)
    def part(hh: Any, value: Any, tag: str, cond: ColumnElement[bool]) -> Any:
        return select(hh.label("hh"), *dims_of, c.state.label("state"), literal(tag).label("tag"),
                      value.label("v")).where(cond)

    parts = union_all(
        part(c.b0, c.le - c.ls, "ms", c.b0 == c.b1),  # inside one half hour
        part(c.b0, (c.b0 + 1) * slot - c.ls, "ms", c.b0 < c.b1),  # head piece
        part(c.b1, c.le - c.b1 * slot, "ms", c.b0 < c.b1),  # tail piece
        part(c.b0 + 1, literal(1), "mark", c.b1 - c.b0 >= 2),  # whole half hours start...
        part(c.b1, literal(-1), "mark", c.b1 - c.b0 >= 2),  # ...and stop
    ).subquery("parts")
    p = parts.c
    keys = [p[f"d_{d}"] for d in dims]
    return (select(p.hh, *keys, p.state, p.tag, _isum(p.v).label("v"))
            .group_by(p.hh, *keys, p.state, p.tag))


def split_agent_rows(rows: list[dict[str, Any]], dims: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of agent_time_query -> (hh, dims, state, ms) rows, whole half hours expanded."""
    pieces = [{**{k: v for k, v in r.items() if k not in ("tag", "v")}, "ms": r["v"]}
              for r in rows if r["tag"] == "ms"]
    marks = [{**{k: v for k, v in r.items() if k not in ("tag", "v")}, "delta": r["v"]}
             for r in rows if r["tag"] == "mark"]
    return pieces + expand_coverage(marks, dims)


def expand_coverage(marks: list[dict[str, Any]], dims: Sequence[str]) -> list[dict[str, Any]]:
    """+1/-1 marks per (half hour, dims, state) -> rows of whole covered half hours (1800 s each)."""
    runs: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
    for r in marks:
        key = (*(r[f"d_{d}"] for d in dims), r["state"])
        runs.setdefault(key, []).append((int(r["hh"]), int(r["delta"])))
    out: list[dict[str, Any]] = []
    for key, points in runs.items():
        points.sort()
        level = 0
        for (hh, delta), nxt in zip(points, [*points[1:], None], strict=True):
            level += delta
            if level and nxt is not None:
                for h in range(hh, nxt[0]):
                    row = {"hh": h, "state": key[-1], "ms": level * HALF_HOUR_MS}
                    row.update({f"d_{d}": v for d, v in zip(dims, key[:-1], strict=True)})
                    out.append(row)
    return out


def disposition_query(win: Window, dims: Sequence[str]) -> Any:
    e = events.c
    dim_map = {"queue": e.queue, "tier": e.tier, "agent": e.agent_id}
    category = func.coalesce(json_str(e.data, "category"), "(none)")
    hh = half_hour_of(e.ts, win).label("hh")
    return (select(hh, *_dim_cols(dim_map, dims), category.label("category"), func.count().label("n"),
                   _cnt(json_true(e.data, "resolved")).label("resolved"))
            .where(e.kind == Kind.DISPOSITION, e.ts >= win.start, e.ts < win.end)
            .group_by(hh, *(dim_map[d] for d in dims), category))


def workorder_query(cfg: KpiConfig, win: Window, dims: Sequence[str]) -> Any:
    """Work orders opened in the range; closed on time = first closed by the reply deadline the order got
    when it was opened (the open event's due_ts, from workorders.yaml); reopened = reopened at least once."""
    e = events.c
    wo = cfg.workorders
    action = json_str(e.data, "action")
    max_due = cfg.deadlines.longest_s()
    per = (
        select(
            json_str(e.data, "id").label("wid"),
            func.min(case((action.in_(wo.open_actions), e.ts))).label("t_open"),
            func.min(case((action.in_(wo.closed_actions), e.ts))).label("t_close"),
            func.max(case((action.in_(wo.open_actions), json_num(e.data, "due_ts")))).label("due_ts"),
            func.max(case((action.in_(wo.reopened_actions), 1), else_=0)).label("reopened"),
            func.max(case((action.in_(wo.open_actions), e.agent_id))).label("agent"),
        )
        .where(e.kind == Kind.WORKORDER, e.ts >= win.start, e.ts < win.end + max_due,
               json_str(e.data, "id").is_not(None))
        .group_by(json_str(e.data, "id"))
    ).subquery("wo")
    w = per.c
    dim_map = {"agent": w.agent}
    hh = half_hour_of(w.t_open, win).label("hh")
    closed = w.t_close.is_not(None)
    return (select(hh, *_dim_cols(dim_map, dims), func.count().label("opened"),
                   _cnt(closed).label("closed"),
                   _cnt(and_(closed, w.due_ts.is_not(None), w.t_close <= w.due_ts + EPS)).label("closed_on_time"),
                   _isum(w.reopened).label("reopened"))
            .where(w.t_open >= win.start, w.t_open < win.end)
            .group_by(hh, *(dim_map[d] for d in dims)))


def outbound_query(cfg: KpiConfig, win: Window) -> Any:
    """Per campaign contact: first attempt (attributes the contact), attempts, reached, confirmed."""
    e = events.c
    k = e.kind
    ob = cfg.outbound
    outcome = json_str(e.data, "outcome")
    campaign = json_str(e.data, "campaign")
    contact = json_str(e.data, "contact")
    is_result = k == Kind.OUT_RESULT
    per = (
        select(
            campaign.label("campaign"),
            contact.label("contact"),
            func.min(case((k == Kind.OUT_ATTEMPT, e.ts))).label("t_first"),
            _cnt(k == Kind.OUT_ATTEMPT).label("attempts"),
            _cnt(is_result).label("results"),
            _cnt(and_(is_result, outcome.in_(ob.reached_outcomes))).label("reached_attempts"),
            _cnt(and_(is_result, outcome.in_(ob.machine_outcomes))).label("machine"),
            func.max(case((and_(is_result, outcome.in_(ob.reached_outcomes)), 1), else_=0)).label("reached"),
            func.max(case((and_(is_result, outcome.in_(ob.confirmed_outcomes)), 1),
                          else_=0)).label("confirmed"),
        )
        .where(k.in_((Kind.OUT_ATTEMPT, Kind.OUT_RESULT)), e.ts >= win.start,
               e.ts < win.end + cfg.window.max_call_s, campaign.is_not(None), contact.is_not(None))
        .group_by(campaign, contact)
    ).subquery("per_contact")
    p = per.c
    hh = half_hour_of(p.t_first, win).label("hh")
    return (select(hh, p.campaign.label("d_campaign"), func.count().label("contacts"),
                   _isum(p.attempts).label("attempts"), _isum(p.results).label("results"),
                   _isum(p.reached_attempts).label("reached_attempts"),
                   _isum(p.machine).label("machine"),
                   _isum(p.reached).label("reached"), _isum(p.confirmed).label("confirmed"))
            .where(p.t_first >= win.start, p.t_first < win.end)
            .group_by(hh, p.campaign))


def survey_query(win: Window) -> Any:
    e = events.c
    rating = json_num(e.data, "rating")
    campaign = func.coalesce(json_str(e.data, "campaign"), "")
    hh = half_hour_of(e.ts, win).label("hh")
    return (select(hh, campaign.label("d_campaign"), cast(rating, Float).label("rating"),
                   func.count().label("n"))
            .where(e.kind == Kind.SURVEY_RATING, e.ts >= win.start, e.ts < win.end)
            .group_by(hh, campaign, rating))


def rating_query(win: Window, dims: Sequence[str]) -> Any:
    """Satisfaction scores (IVR after the call, survey campaigns) per half hour they were given, by the
    queue, tier and agent of the call rated (the event's columns). Only 1..5 counts."""
    e = events.c
    rating = json_num(e.data, "rating")
    valid = rating.in_((1, 2, 3, 4, 5))
    dim_map = {"queue": e.queue, "tier": e.tier, "agent": e.agent_id}
    hh = half_hour_of(e.ts, win).label("hh")
    return (select(hh, *_dim_cols(dim_map, dims), _cnt(valid).label("responses"),
                    _sum(valid, cast(rating, BigInteger)).label("score_sum"))
            .where(e.kind == Kind.SURVEY_RATING, e.ts >= win.start, e.ts < win.end)
            .group_by(hh, *(dim_map[d] for d in dims)))


def revisit_query(win: Window, dims: Sequence[str]) -> Any:
    """Satisfaction callbacks (回访) of closed work orders, per order: due when selected (attributed to
    that half hour and to the order's queue and agent), done when the customer was reached."""
    e = events.c
    action = json_str(e.data, "action")
    wid = json_str(e.data, "id")
    due = action == "due"
    per = (
        select(wid.label("wid"),
               func.min(case((due, e.ts))).label("t_due"),
               func.max(case((due, e.queue))).label("queue"),
               func.max(case((due, e.agent_id))).label("agent"),
               func.max(case((action == "done", 1), else_=0)).label("done"))
        .where(e.kind == Kind.WORKORDER_CALLBACK, e.ts >= win.start, e.ts < win.end + REVISIT_LOOKAHEAD_S,
               wid.is_not(None))
        .group_by(wid)
    ).subquery("revisits")
    r = per.c
    dim_map = {"queue": r.queue, "agent": r.agent}
    hh = half_hour_of(r.t_due, win).label("hh")
    return (select(hh, *_dim_cols(dim_map, dims), func.count().label("due"), _isum(r.done).label("done"))
            .where(r.t_due >= win.start, r.t_due < win.end)
            .group_by(hh, *(dim_map[d] for d in dims)))
