"""The `calls` family in SQL: per-call facts summed per local half hour (see docs/kpis.md, "Per-call facts").

One definition of what each figure counts (`sum_calls`), over either source of per-call facts:

    the facts table call_facts (kpi/factsql.py call_sums_query) ─┐
                                                                 ├─▶ sum_calls ─▶ one row per (half hour, dims)
    the event log, folded per call here (call_query)  ───────────┘

The report reads the facts table; `call_query` over the raw events is the definition the fact builder
(kpi/builder.py) must agree with (tests/kpi/test_kpi_facts_paths.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.sql.expression import ColumnElement

from ..events import Kind
from ..store.schema import events
from .config import KpiConfig
from .facts import Window
from .sqlfuncs import EPS, PAD, PaddedMs, count_if, dim_cols, half_hour_of, json_str, json_true, round_ms, sum_if

CALL_KINDS = (
    Kind.CALL_NEW, Kind.IVR_START, Kind.IVR_END, Kind.ACD_ENQUEUE, Kind.ACD_OFFER, Kind.ACD_ANSWER,
    Kind.ACD_RONA, Kind.ACD_ABANDON, Kind.ACD_OVERFLOW, Kind.ACD_BLOCKED, Kind.ACD_TRANSFER,
    Kind.ACD_TRANSFER_FAILED, Kind.ACD_COMPLETE, Kind.ACD_CALLBACK, Kind.DISPOSITION, Kind.OUT_ATTEMPT, Kind.CALL_END,
)
TIMEOUT_REASONS = ("timeout", "max_wait", "tier_max_wait")


def call_query(cfg: KpiConfig, win: Window, dims: Sequence[str]) -> Any:
    """One row per (half hour, dims) with sums of per-call facts (see docs/kpis.md, "Per-call facts")."""
    e = events.c
    k = e.kind
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
    return sum_calls(facts, cfg, win, dims)


def sum_calls(facts: Any, cfg: KpiConfig, win: Window, dims: Sequence[str], *, by_bucket: bool = False) -> Any:
    """Per-call facts (a CTE with the columns of call_facts and `next_t0`) summed per half hour."""
    sl = cfg.service_level
    f = facts.c
    q0 = func.coalesce(f.t_enq, f.t0)  # when the caller started waiting for an agent
    in_acd = or_(f.t_enq.is_not(None), f.t_ans.is_not(None), f.t_ab.is_not(None), f.t_ovf.is_not(None))
    wanted = or_(in_acd, f.t_blk.is_not(None), f.ivr_agent > 0)
    answered = f.t_ans.is_not(None)
    wait = f.t_ans - q0
    abandoned = and_(f.t_ans.is_(None), f.t_ab.is_not(None))
    ab_wait = f.t_ab - q0
    short_ab = and_(abandoned, ab_wait < sl.short_abandon_s - EPS)
    callback = and_(wanted, f.t_ans.is_(None), f.t_ab.is_(None), f.t_cb.is_not(None))
    overflow_lost = and_(f.t_ans.is_(None), f.t_ab.is_(None), f.t_cb.is_(None), f.t_ovf.is_not(None))
    blocked = and_(f.t_blk.is_not(None), f.t_ans.is_(None))
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
        hh, *dim_cols(dim_map, dims),
        func.count().label("offered"),
        count_if(f.ivr > 0).label("ivr"),
        count_if(and_(f.ivr_self > 0, f.ivr_agent == 0, f.t_blk.is_(None), ~in_acd)).label("ivr_contained"),
        count_if(wanted).label("wanted"),
        count_if(in_acd).label("queued"),
        count_if(blocked).label("blocked"),
        count_if(answered).label("answered"),
        sum_if(answered, round_ms(wait)).label("wait_ms"),
        count_if(and_(answered, wait <= sl.threshold_s + EPS)).label("within_sl"),
        count_if(and_(answered, wait <= tier_threshold + EPS)).label("within_tier"),
        count_if(abandoned).label("abandoned"),
        count_if(short_ab).label("short_abandoned"),
        sum_if(abandoned, round_ms(ab_wait)).label("abandon_ms"),
        sum_if(short_ab, round_ms(ab_wait)).label("short_abandon_ms"),
        count_if(and_(abandoned, f.offers > f.ronas)).label("abandoned_ringing"),
        count_if(callback).label("callbacks"),
        count_if(and_(callback, in_acd)).label("queued_callbacks"),
        count_if(and_(abandoned, f.t_cb.is_not(None))).label("abandon_callbacks"),
        count_if(overflow_lost).label("overflowed"),
        count_if(and_(overflow_lost, f.ovf_timeout > 0)).label("timed_out"),
        count_if(lost).label("lost"),
        count_if(waiting).label("in_queue"),
        count_if(and_(in_acd, exit_ts.is_not(None))).label("queue_exits"),
        sum_if(and_(in_acd, exit_ts.is_not(None)), round_ms(exit_ts - q0)).label("queue_ms"),
        count_if(and_(answered, f.transferred > 0)).label("transferred"),
        count_if(and_(answered, f.caller.is_not(None))).label("fcr_repeat_base"),
        count_if(and_(answered, f.caller.is_not(None), ~repeat)).label("fcr_no_repeat"),
        count_if(and_(answered, f.disposed > 0)).label("fcr_disp_base"),
        count_if(and_(answered, f.resolved > 0)).label("fcr_resolved"),
        count_if(and_(answered, f.caller.is_not(None), f.disposed > 0)).label("fcr_both_base"),
        count_if(and_(answered, f.caller.is_not(None), f.resolved > 0, ~repeat)).label("fcr_both"),
        count_if(and_(answered, f.offers <= 1)).label("answered_offers_1"),
        count_if(and_(answered, f.offers == 2)).label("answered_offers_2"),
        count_if(and_(answered, f.offers > 2)).label("answered_offers_3plus"),
    ]
    group = [hh, *(dim_map[d] for d in dims)]
    if by_bucket:  # the facts' UTC half hour too (`facts` has a `bucket` column): kpi/rollup.py
        cols.insert(1, f.bucket.label("d_bucket"))
        group.append(f.bucket)
    return select(*cols).where(f.t0 >= win.start, f.t0 < win.end).group_by(*group)
