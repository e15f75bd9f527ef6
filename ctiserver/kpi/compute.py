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
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Float, and_, case, cast, func, literal, or_, select, text, true, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.expression import ColumnElement

from ..events import Kind
from ..store.schema import events
from .callsql import call_query
from .config import KpiConfig
from .facts import (
    AGENT_DIMS,
    CALL_DIMS,
    DISPOSITION_DIMS,
    HALF_HOUR_MS,
    LEG_DIMS,
    QC_DIMS,
    RATING_DIMS,
    REVISIT_DIMS,
    WORKORDER_DIMS,
    Facts,
    Window,
)
from .loop import LOOP_KINDS
from .sqlfuncs import (
    EPS,
    count_if,
    dim_cols,
    floor_div,
    half_hour_of,
    int_sum,
    json_num,
    json_str,
    json_true,
    round_ms,
    sum_if,
    utc_offset,
)

# a call inspected (sampled in its month, scored, appealed, decided) is looked for this long after it
QC_LOOKAHEAD_S = 62 * 86400
REVISIT_LOOKAHEAD_S = 31 * 86400  # a satisfaction callback due in the range is looked for this long after it

LEG_KINDS = (Kind.ACD_OFFER, Kind.ACD_ANSWER, Kind.ACD_RONA, Kind.ACD_TRANSFER, Kind.ACD_COMPLETE)
PARALLEL_QUERIES = 3
# One big aggregate per report: JIT compilation costs more than it saves (8 s of 50 s at 1M calls),
# and the per-call sorts fit in memory at 128 MB instead of spilling to disk.
PG_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL work_mem = '128MB'")


def _num(v: Any) -> int | float | None:
    if v is None:
        return None
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, bool):
        return int(v)
    return v


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
        "loop": loop_query(win),
        "qc": qc_query(win, [d for d in dims if d in QC_DIMS]),
    }


def _facts(rows: dict[str, list[dict[str, Any]]], dims: Sequence[str]) -> Facts:
    """Rows per family -> Facts; a family not queried stays empty (the caller fills it)."""
    agent_dims = [d for d in dims if d in AGENT_DIMS]
    return Facts(calls=rows.get("calls", []) + rows.get("calls_rollup", []),
                 legs=rows.get("legs", []) + rows.get("legs_rollup", []),
                 agent_time=split_agent_rows(rows.get("agent_time", []) + rows.get("agent_time_rollup", []),
                                             agent_dims),
                 dispositions=rows.get("dispositions", []), workorders=rows.get("workorders", []),
                 outbound=rows.get("outbound", []), survey=rows.get("survey", []),
                 ratings=rows.get("ratings", []), revisits=rows.get("revisits", []), loop=rows.get("loop", []),
                 qc=rows.get("qc", []))


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
        hh, *dim_cols(dim_map, dims),
        count_if(k == Kind.ACD_OFFER).label("offers"),
        count_if(k == Kind.ACD_ANSWER).label("answers"),
        count_if(k == Kind.ACD_RONA).label("ronas"),
        count_if(k == Kind.ACD_TRANSFER).label("transfers"),
        count_if(k == Kind.ACD_COMPLETE).label("handled"),
        count_if(and_(k == Kind.ACD_COMPLETE, talk.is_not(None))).label("talk_n"),
        sum_if(and_(k == Kind.ACD_COMPLETE, talk.is_not(None)), round_ms(talk)).label("talk_ms"),
        count_if(and_(k == Kind.ACD_COMPLETE, hold.is_not(None))).label("hold_n"),
        sum_if(and_(k == Kind.ACD_COMPLETE, hold.is_not(None)), round_ms(hold)).label("hold_ms"),
        count_if(and_(k == Kind.ACD_ANSWER, ring.is_not(None))).label("ring_n"),
        sum_if(and_(k == Kind.ACD_ANSWER, ring.is_not(None)), round_ms(ring)).label("ring_ms"),
    ]
    return (select(*cols)
            .where(e.ts >= win.start, e.ts < win.end, k.in_(LEG_KINDS))
            .group_by(hh, *(dim_map[d] for d in dims)))


def agent_time_query(cfg: KpiConfig, win: Window, dims: Sequence[str]) -> Any:
    """Agent state time per (half hour, [agent], state) in ms.

    A state lasts from its agent.state event to the agent's next one (LEAD), at most
    `agent_lookback_s`, clipped to the report range and to `now` for the state still in force; logged_out time
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
    e_end = case((or_(st.c.t_next.is_(None), st.c.t_next > cap), cap), else_=st.c.t_next)
    e_clip = case((e_end > st.c.ts + lookback, st.c.ts + lookback), else_=e_end)  # at most `lookback` long
    iv0 = (
        select(st.c.agent, st.c.state, s_clip.label("s"), e_clip.label("e"))
        .where(e_clip > s_clip, or_(st.c.state.is_(None), st.c.state != "logged_out"))
    ).subquery("iv0")
    return sum_state_time(iv0, win, dims, "agent_intervals")


def sum_state_time(iv0: Any, win: Window, dims: Sequence[str], name: str) -> Any:
    """State intervals (a subquery of agent, state, s, e in epoch seconds) split at local half-hour edges and
    summed: (hh, [agent], state, tag, v) rows, tag `ms` for pieces and `mark` for runs of whole half hours
    (see `agent_time_query`). `name`: the intervals' CTE (it must not shadow a table the query reads)."""
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
    ).cte(name)
    c = iv.c
    dims_of = dim_cols({"agent": c.agent}, dims)
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
    return (select(p.hh, *keys, p.state, p.tag, int_sum(p.v).label("v"))
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
    return (select(hh, *dim_cols(dim_map, dims), category.label("category"), func.count().label("n"),
                   count_if(json_true(e.data, "resolved")).label("resolved"))
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
    return (select(hh, *dim_cols(dim_map, dims), func.count().label("opened"),
                   count_if(closed).label("closed"),
                   count_if(and_(closed, w.due_ts.is_not(None), w.t_close <= w.due_ts + EPS)).label("closed_on_time"),
                   int_sum(w.reopened).label("reopened"))
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

    def attempts_where(cond: Any) -> Any:
        """Attempts (by channel id) with a result meeting `cond`: a later report upgrades an attempt's
        outcome with a second `outbound.result` (answered, then confirmed; `lost` at a restart, then what
        Asterisk says after all), and the attempt still counts once."""
        return func.count(func.distinct(case((and_(is_result, cond), e.call_id))))

    per = (
        select(
            campaign.label("campaign"),
            contact.label("contact"),
            func.min(case((k == Kind.OUT_ATTEMPT, e.ts))).label("t_first"),
            count_if(k == Kind.OUT_ATTEMPT).label("attempts"),
            attempts_where(true()).label("results"),
            attempts_where(outcome.in_(ob.reached_outcomes)).label("reached_attempts"),
            attempts_where(outcome.in_(ob.machine_outcomes)).label("machine"),
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
                   int_sum(p.attempts).label("attempts"), int_sum(p.results).label("results"),
                   int_sum(p.reached_attempts).label("reached_attempts"),
                   int_sum(p.machine).label("machine"),
                   int_sum(p.reached).label("reached"), int_sum(p.confirmed).label("confirmed"))
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
    return (select(hh, *dim_cols(dim_map, dims), count_if(valid).label("responses"),
                    sum_if(valid, cast(rating, BigInteger)).label("score_sum"))
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
    return (select(hh, *dim_cols(dim_map, dims), func.count().label("due"), int_sum(r.done).label("done"))
            .where(r.t_due >= win.start, r.t_due < win.end)
            .group_by(hh, *(dim_map[d] for d in dims)))


def loop_query(win: Window) -> Any:
    """The outage and repair loop per half hour (kpi/loop.py says what is counted)."""
    e = events.c
    sms, rep = e.kind == Kind.SMS, e.kind == Kind.REPAIR
    kind, step = json_str(e.data, "kind"), json_str(e.data, "step")
    delivered = json_str(e.data, "state") == "delivered"
    on_time = json_true(e.data, "on_time")
    first_report = and_(rep, step == "report", json_num(e.data, "expected_ts").is_not(None))
    hh = half_hour_of(e.ts, win).label("hh")
    return (select(hh,
                   count_if(and_(sms, kind == "outage_notice")).label("notice_sms"),
                   count_if(and_(sms, kind == "outage_notice", delivered)).label("notice_sms_delivered"),
                   count_if(and_(sms, kind == "restored")).label("restored_sms"),
                   count_if(and_(sms, kind == "restored", delivered)).label("restored_sms_delivered"),
                   count_if(and_(rep, step == "arrive")).label("arrivals"),
                   count_if(and_(rep, step == "arrive", on_time)).label("arrivals_on_time"),
                   count_if(first_report).label("reports"),
                   count_if(and_(first_report, on_time)).label("reports_on_time"),
                   count_if(and_(rep, step == "restore")).label("restorations"))
            .where(e.kind.in_(LOOP_KINDS), e.ts >= win.start, e.ts < win.end)
            .group_by(hh))


def qc_query(win: Window, dims: Sequence[str]) -> Any:
    """Quality inspection (质检, docs/qc.md): each inspected call once, with its final score and verdict (a
    revised decision's, else the reviewer's) and whether the reviewer found a fatal error, in the half hour
    of the call (`call_ts`; else when it was scored) and by the agent and queue of the call."""
    e = events.c
    action = json_str(e.data, "action")
    scored = action == "scored"
    revised = and_(action == "decided", json_str(e.data, "decision") == "revised")
    score = json_num(e.data, "score")
    task = json_num(e.data, "task")
    passed = case((json_true(e.data, "passed"), 1), else_=0)
    per = (
        select(task.label("task"),
               func.min(case((scored, func.coalesce(json_num(e.data, "call_ts"), e.ts)))).label("t_call"),
               func.max(case((scored, e.agent_id))).label("agent"),
               func.max(case((scored, e.queue))).label("queue"),
               func.max(case((scored, score))).label("scored"),
               func.max(case((revised, score))).label("revised"),
               func.max(case((scored, passed))).label("scored_passed"),
               func.max(case((revised, passed))).label("revised_passed"),
               func.max(case((scored, case((json_true(e.data, "fatal"), 1), else_=0)))).label("fatal"))
        .where(e.kind == Kind.QC, e.ts >= win.start, e.ts < win.end + QC_LOOKAHEAD_S, task.is_not(None))
        .group_by(task)
    ).subquery("inspected")
    q = per.c
    dim_map = {"queue": q.queue, "agent": q.agent}
    hh = half_hour_of(q.t_call, win).label("hh")
    return (select(hh, *dim_cols(dim_map, dims), func.count().label("qc_inspected"),
                   func.sum(cast(func.coalesce(q.revised, q.scored), Float)).label("qc_score_sum"),
                   func.sum(func.coalesce(q.revised_passed, q.scored_passed)).label("qc_passed"),
                   func.sum(q.fatal).label("qc_fatal"))
            .where(q.t_call >= win.start, q.t_call < win.end, q.scored.is_not(None))
            .group_by(hh, *(dim_map[d] for d in dims)))
