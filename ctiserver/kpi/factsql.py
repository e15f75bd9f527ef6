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
    func,
    or_,
    select,
)
from sqlalchemy.sql.expression import ColumnElement

from ..events import Kind
from ..store.schema import IdType, metadata
from .builder import HALF_HOUR
from .callsql import sum_calls
from .compute import sum_state_time
from .config import KpiConfig
from .facts import Window
from .sqlfuncs import count_if, dim_cols, half_hour_of, sum_if
from .sums import CALL_SUM_KEYS, LEG_SUM_KEYS

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

# Half-hour rollups of the facts (kpi/rollup.py builds and reads them): the rows of call_sums_query,
# leg_sums_query and agent_time_sums_query grouped by UTC half hour too, under a digest of the settings.
call_rollups = Table(
    "call_rollups", metadata,
    Column("cfg_key", String(16), nullable=False),
    Column("bucket", BigInteger, nullable=False),
    Column("hh", BigInteger, nullable=False),
    Column("queue", String(40)),
    Column("tier", String(20)),
    *(Column(k, BigInteger, nullable=False) for k in CALL_SUM_KEYS),
    Index("ix_call_rollups_key_bucket", "cfg_key", "bucket"),
)

leg_rollups = Table(
    "leg_rollups", metadata,
    Column("cfg_key", String(16), nullable=False),
    Column("bucket", BigInteger, nullable=False),
    Column("hh", BigInteger, nullable=False),
    Column("queue", String(40)),
    Column("tier", String(20)),
    *(Column(k, BigInteger, nullable=False) for k in LEG_SUM_KEYS),
    Index("ix_leg_rollups_key_bucket", "cfg_key", "bucket"),
)

agent_time_rollups = Table(  # agent state time (ms) per UTC half hour and state, whole half hours expanded
    "agent_time_rollups", metadata,
    Column("cfg_key", String(16), nullable=False),
    Column("bucket", BigInteger, nullable=False),
    Column("hh", BigInteger, nullable=False),
    Column("state", String(130)),
    Column("ms", BigInteger, nullable=False),
    Index("ix_agent_time_rollups_key_bucket", "cfg_key", "bucket"),
)

rollup_buckets = Table(  # which half hours have been rolled up, under which settings
    "rollup_buckets", metadata,
    Column("cfg_key", String(16), primary_key=True),
    Column("bucket", BigInteger, primary_key=True, autoincrement=False),
    Index("ix_rollup_buckets_bucket", "bucket"),  # the fact sink's look: is any of its half hours rolled up?
)

ROLLUP_TABLES = (call_rollups, leg_rollups, agent_time_rollups, rollup_buckets)
FACT_TABLES = (call_facts, leg_facts, agent_intervals, *ROLLUP_TABLES)


def _bucket_range(col: Any, lo: float, hi: float) -> ColumnElement[bool]:
    """The buckets [lo, hi) can touch: lets the index on `bucket` do the work."""
    return and_(col >= int(lo // HALF_HOUR), col <= int(hi // HALF_HOUR))


def call_sums_query(cfg: KpiConfig, win: Window, dims: Sequence[str], *, by_bucket: bool = False) -> Any:
    """The `calls` family over call_facts (kpi/sums.call_sums in SQL); `by_bucket` also groups by the
    facts' UTC half hour (`d_bucket`, for kpi/rollup.py)."""
    c = call_facts.c
    lookahead = cfg.fcr.window_h * 3600.0 + 1.0
    base = (
        select(c.call_id, c.t0, c.bucket, c.ivr, c.ivr_self, c.ivr_agent, c.t_enq, c.t_ans, c.t_ab, c.t_ovf, c.t_cb,
               c.t_blk, c.t_end, c.ovf_timeout, c.offers, c.ronas, c.transferred, c.disposed, c.resolved,
               c.caller, c.queue, c.tier, c.agent,
               func.lead(c.t0).over(partition_by=c.caller, order_by=(c.t0, c.call_id)).label("next_t0"))
        .where(c.is_out == 0, _bucket_range(c.bucket, win.start, win.end + lookahead),
               c.t0 >= win.start, c.t0 < win.end + lookahead)
    ).cte("call_facts_in_range")
    return sum_calls(base, cfg, win, dims, by_bucket=by_bucket)


def leg_sums_query(win: Window, dims: Sequence[str], *, by_bucket: bool = False) -> Any:
    """The `legs` family over leg_facts (kpi/sums.leg_sums in SQL); `by_bucket` as in call_sums_query."""
    g = leg_facts.c
    k = g.kind
    dim_map = {"queue": g.queue, "tier": g.tier, "agent": g.agent}
    hh = half_hour_of(g.ts, win).label("hh")
    done = k == Kind.ACD_COMPLETE
    ans = k == Kind.ACD_ANSWER
    cols = [
        hh, *dim_cols(dim_map, dims),
        count_if(k == Kind.ACD_OFFER).label("offers"),
        count_if(ans).label("answers"),
        count_if(k == Kind.ACD_RONA).label("ronas"),
        count_if(k == Kind.ACD_TRANSFER).label("transfers"),
        count_if(done).label("handled"),
        count_if(and_(done, g.talk_ms.is_not(None))).label("talk_n"),
        sum_if(and_(done, g.talk_ms.is_not(None)), g.talk_ms).label("talk_ms"),
        count_if(and_(done, g.hold_ms.is_not(None))).label("hold_n"),
        sum_if(and_(done, g.hold_ms.is_not(None)), g.hold_ms).label("hold_ms"),
        count_if(and_(ans, g.ring_ms.is_not(None))).label("ring_n"),
        sum_if(and_(ans, g.ring_ms.is_not(None)), g.ring_ms).label("ring_ms"),
    ]
    group = [hh, *(dim_map[d] for d in dims)]
    if by_bucket:
        cols.insert(1, g.bucket.label("d_bucket"))
        group.append(g.bucket)
    return (select(*cols)
            .where(_bucket_range(g.bucket, win.start, win.end), g.ts >= win.start, g.ts < win.end)
            .group_by(*group))


def agent_time_sums_query(cfg: KpiConfig, win: Window, dims: Sequence[str]) -> Any:
    """The `agent_time` family over agent_intervals: (hh, [agent], state, tag, v) rows, as
    kpi/compute.agent_time_query returns them (expand them with compute.split_agent_rows)."""
    a = agent_intervals.c
    cap = min(win.end, win.now)
    s_clip = case((a.t_start < win.start, win.start), else_=a.t_start)
    e_end = case((or_(a.t_end.is_(None), a.t_end > cap), cap), else_=a.t_end)
    longest = cfg.window.agent_lookback_s  # a state counts for at most this long (sums.agent_time_sums)
    e_clip = case((e_end > a.t_start + longest, a.t_start + longest), else_=e_end)
    iv0 = (
        select(a.agent, case((and_(a.state == "not_ready", a.reason.is_not(None), a.reason != ""),
                              a.state + ":" + a.reason),
                             (and_(a.state == "on_call", a.reason == "direct"), a.state + ":" + a.reason),
                             else_=a.state).label("state"),
               s_clip.label("s"), e_clip.label("e"))
        .where(a.t_start >= win.start - cfg.window.agent_lookback_s, a.t_start < cap, e_clip > s_clip,
               or_(a.state.is_(None), a.state != "logged_out"))
    ).subquery("iv0")
    return sum_state_time(iv0, win, dims, "agent_iv")
