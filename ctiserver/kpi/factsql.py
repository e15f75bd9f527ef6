"""The facts tables and the SQL that sums them per half hour: the database path of the report.

`call_facts` (one row per call), `leg_facts` (one per agent-leg event) and `agent_intervals` (one per
agent state) hold what kpi/builder.py folds out of the events; `bucket` (the UTC half hour) is indexed,
so a range reads only its own rows. The queries return the same rows as kpi/sums.py computes in
Python, and kpi/metrics.py turns either into KPIs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql.expression import ColumnElement

from ..events import Kind
from ..store.schema import IdType, metadata
from .builder import HALF_HOUR
from .compute import EPS, _cnt, _dim_cols, _isum, _sum, half_hour_of, utc_offset
from .config import KpiConfig
from .facts import HALF_HOUR_MS, Window
from .sqlfuncs import floor_div, round_ms

call_facts = Table(
    "call_facts", metadata,
    Column("call_id", String(80), primary_key=True),
    Column("t0", Float, nullable=False),
    Column("bucket", BigInteger, nullable=False),
    Column("is_out", Integer, nullable=False),
    Column("ivr", Integer, nullable=False),
    Column("ivr_self", Integer, nullable=False),
    Column("ivr_agent", Integer, nullable=False),
    *(Column(n, Float) for n in ("t_enq", "t_ans", "t_ab", "t_ovf", "t_cb", "t_blk", "t_end")),
    *(Column(n, Integer, nullable=False) for n in ("ovf_timeout", "offers", "ronas", "transferred", "disposed",
                                                   "resolved")),
    Column("caller", String(80)),
    Column("queue", String(40)),
    Column("tier", String(20)),
    Column("agent", String(40)),
    Column("ring_ms", BigInteger),
    Column("talk_ms", BigInteger),
    Column("hold_ms", BigInteger),
    Column("ivr_outcome", String(40)),
    Column("callback_outcome", String(40)),
    Column("qc_score", Float),
    Index("ix_call_facts_bucket", "bucket"),
    Index("ix_call_facts_caller_t0", "caller", "t0"),
)

leg_facts = Table(
    "leg_facts", metadata,
    Column("call_id", String(80), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("ts", Float, nullable=False),
    Column("bucket", BigInteger, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("agent", String(40)),
    Column("queue", String(40)),
    Column("tier", String(20)),
    Column("ring_ms", BigInteger),
    Column("talk_ms", BigInteger),
    Column("hold_ms", BigInteger),
    Index("ix_leg_facts_bucket", "bucket"),
)

agent_intervals = Table(
    "agent_intervals", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("agent", String(40), nullable=False),
    Column("t_start", Float, nullable=False),
    Column("t_end", Float),
    Column("state", String(40)),
    Column("reason", String(80)),
    Column("scheduled", String(40)),
    Index("ix_agent_intervals_agent_start", "agent", "t_start"),
    Index("ix_agent_intervals_start", "t_start"),
)

FACT_TABLES = (call_facts, leg_facts, agent_intervals)


def _bucket_range(col: Any, lo: float, hi: float) -> ColumnElement[bool]:
    """The buckets [lo, hi) can touch: lets the index on `bucket` do the work."""
    return and_(col >= int(lo // HALF_HOUR), col <= int(hi // HALF_HOUR))


def call_sums_query(cfg: KpiConfig, win: Window, dims: Sequence[str]) -> Any:
    """The `calls` family over call_facts (kpi/sums.call_sums in SQL)."""
    c = call_facts.c
    lookahead = cfg.fcr.window_h * 3600.0 + 1.0
    base = (
        select(c.call_id, c.t0, c.ivr, c.ivr_self, c.ivr_agent, c.t_enq, c.t_ans, c.t_ab, c.t_ovf, c.t_cb,
               c.t_blk, c.t_end, c.ovf_timeout, c.offers, c.ronas, c.transferred, c.disposed, c.resolved,
               c.caller, c.queue, c.tier, c.agent,
               func.lead(c.t0).over(partition_by=c.caller, order_by=(c.t0, c.call_id)).label("next_t0"))
        .where(c.is_out == 0, _bucket_range(c.bucket, win.start, win.end + lookahead),
               c.t0 >= win.start, c.t0 < win.end + lookahead)
    ).cte("call_facts_in_range")
    return sum_calls(base, cfg, win, dims)


def sum_calls(facts: Any, cfg: KpiConfig, win: Window, dims: Sequence[str]) -> Any:
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
        _cnt(and_(answered, f.offers <= 1)).label("answered_offers_1"),
        _cnt(and_(answered, f.offers == 2)).label("answered_offers_2"),
        _cnt(and_(answered, f.offers > 2)).label("answered_offers_3plus"),
    ]
    group = [hh, *(dim_map[d] for d in dims)]
    return select(*cols).where(f.t0 >= win.start, f.t0 < win.end).group_by(*group)


def leg_sums_query(win: Window, dims: Sequence[str]) -> Any:
    """The `legs` family over leg_facts (kpi/sums.leg_sums in SQL)."""
    g = leg_facts.c
    k = g.kind
    dim_map = {"queue": g.queue, "tier": g.tier, "agent": g.agent}
    hh = half_hour_of(g.ts, win).label("hh")
    done = k == Kind.ACD_COMPLETE
    ans = k == Kind.ACD_ANSWER
    cols = [
        hh, *_dim_cols(dim_map, dims),
        _cnt(k == Kind.ACD_OFFER).label("offers"),
        _cnt(ans).label("answers"),
        _cnt(k == Kind.ACD_RONA).label("ronas"),
        _cnt(k == Kind.ACD_TRANSFER).label("transfers"),
        _cnt(done).label("handled"),
        _cnt(and_(done, g.talk_ms.is_not(None))).label("talk_n"),
        _sum(and_(done, g.talk_ms.is_not(None)), g.talk_ms).label("talk_ms"),
        _cnt(and_(done, g.hold_ms.is_not(None))).label("hold_n"),
        _sum(and_(done, g.hold_ms.is_not(None)), g.hold_ms).label("hold_ms"),
        _cnt(and_(ans, g.ring_ms.is_not(None))).label("ring_n"),
        _sum(and_(ans, g.ring_ms.is_not(None)), g.ring_ms).label("ring_ms"),
    ]
    return (select(*cols)
            .where(_bucket_range(g.bucket, win.start, win.end), g.ts >= win.start, g.ts < win.end)
            .group_by(hh, *(dim_map[d] for d in dims)))


def agent_time_sums_query(cfg: KpiConfig, win: Window, dims: Sequence[str]) -> Any:
    """The `agent_time` family over agent_intervals: (hh, [agent], state, tag, v) rows, as
    kpi/compute.agent_time_query returns them (expand them with compute.split_agent_rows)."""
    a = agent_intervals.c
    cap = min(win.end, win.now)
    s_clip = case((a.t_start < win.start, win.start), else_=a.t_start)
    e_clip = case((or_(a.t_end.is_(None), a.t_end > cap), cap), else_=a.t_end)
    iv0 = (
        select(a.agent, case((and_(a.state == "not_ready", a.reason.is_not(None), a.reason != ""),
                              a.state + ":" + a.reason), else_=a.state).label("state"),
               s_clip.label("s"), e_clip.label("e"))
        .where(a.t_start >= win.start - cfg.window.agent_lookback_s, a.t_start < cap, e_clip > s_clip,
               or_(a.state.is_(None), a.state != "logged_out"))
    ).subquery("iv0")
    off_ms = utc_offset(iv0.c.s, win) * 1000
    iv1 = select(iv0.c.agent, iv0.c.state, (round_ms(iv0.c.s) + off_ms).label("ls"),
                 (round_ms(iv0.c.e) + off_ms).label("le")).subquery("iv1")
    iv = select(iv1.c.agent, iv1.c.state, iv1.c.ls, iv1.c.le,
                floor_div(iv1.c.ls, HALF_HOUR_MS).label("b0"),
                floor_div(iv1.c.le - 1, HALF_HOUR_MS).label("b1")).cte("agent_iv")
    c = iv.c
    dims_of = _dim_cols({"agent": c.agent}, dims)
    slot = cast(literal(HALF_HOUR_MS), BigInteger)
    def part(hh: Any, value: Any, tag: str, cond: ColumnElement[bool]) -> Any:
        return select(hh.label("hh"), *dims_of, c.state.label("state"), literal(tag).label("tag"),
                      value.label("v")).where(cond)

    parts = union_all(
        part(c.b0, c.le - c.ls, "ms", c.b0 == c.b1),
        part(c.b0, (c.b0 + 1) * slot - c.ls, "ms", c.b0 < c.b1),
        part(c.b1, c.le - c.b1 * slot, "ms", c.b0 < c.b1),
        part(c.b0 + 1, literal(1), "mark", c.b1 - c.b0 >= 2),
        part(c.b1, literal(-1), "mark", c.b1 - c.b0 >= 2),
    ).subquery("parts")
    p = parts.c
    keys = [p[f"d_{d}"] for d in dims]
    return (select(p.hh, *keys, p.state, p.tag, _isum(p.v).label("v"))
            .group_by(p.hh, *keys, p.state, p.tag))
