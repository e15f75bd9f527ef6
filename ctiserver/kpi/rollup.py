"""Half-hour rollups of the call and leg facts: what a month's report reads instead of a million facts.

One definition: a rollup row is the output of the report's own SQL over the facts (kpi/factsql.py's
`call_sums_query` and `leg_sums_query`), run over a range of UTC half hours and grouped also by the
half hour (`bucket`) each fact belongs to. Every sum is additive, so a report adds up the rows of its
half hours and gets exactly what the same SQL over the facts gives (tests/kpi/test_kpi_rollup.py).

* Built a day at a time, only for half hours that are settled: no call in them can still be waiting
  (`window.max_call_s` has passed), so the row does not depend on the report's `now`. The leader's
  builder (kpi/rollup_job.py) rolls each half hour up as it settles; a report builds any it finds missing
  (older than the builder keeps, or dropped and not rebuilt yet). Later half hours come from the facts.
* Keyed by `cfg_key`, a digest of the settings the sums depend on (thresholds, FCR window, zone): a
  report under other settings builds its own.
* Dropped when a fact of their half hours changes: the fact sink calls `invalidate` with the buckets
  of every call and leg it rewrites, and of earlier calls of the same callers (their first-call
  resolution depends on the next call). On PostgreSQL the sink and the builder serialise on an
  advisory lock (shared for sinks, exclusive for a build), so a build never stores sums of facts a
  concurrent batch has just replaced.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import (
    and_,
    delete,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .compute import _rows, split_agent_rows
from .config import KpiConfig
from .facts import HALF_HOUR, Window
from .factsql import (
    ROLLUP_TABLES,
    agent_time_rollups,
    agent_time_sums_query,
    call_facts,
    call_rollups,
    call_sums_query,
    leg_rollups,
    leg_sums_query,
    rollup_buckets,
)
from .sqlfuncs import int_sum
from .sums import CALL_SUM_KEYS, LEG_SUM_KEYS

ROLLUP_DIMS = ("queue", "tier")
FCR_MAX_S = 31 * 86400.0  # the longest FCR window kpi.yaml allows: how far back a new call can change a fact
CHUNK_BUCKETS = 48  # half hours built per transaction
LOCK_ID = 1_400_014  # PostgreSQL advisory lock: builds exclusive, fact sinks shared



def cfg_key(cfg: KpiConfig) -> str:
    """A digest of every setting the call and leg sums depend on."""
    sl = cfg.service_level
    spec = {"sl": sl.threshold_s, "short": sl.short_abandon_s, "fcr": cfg.fcr.window_h,
            "max_call": cfg.window.max_call_s, "zone": cfg.timezone, "longest_state": cfg.window.agent_lookback_s,
            "tiers": [cfg.tier_targets.default.threshold_s,
                      sorted((k, t.threshold_s) for k, t in cfg.tier_targets.tiers.items())]}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def rollup_span(cfg: KpiConfig, win: Window, dims: Sequence[str]) -> tuple[int, int] | None:
    """The buckets [b0, b1) of `win` a report may read from rollups, or None.

    Only for groupings the rollups keep (queue, tier), a range on half-hour boundaries, and settled
    half hours (their calls cannot be waiting any more, whatever `now` the report gives)."""
    if any(d not in ROLLUP_DIMS for d in dims) or win.start % HALF_HOUR or win.end % HALF_HOUR:
        return None
    b0 = int(win.start // HALF_HOUR)
    b1 = min(int(win.end // HALF_HOUR), settled_until(cfg, win.now))
    return (b0, b1) if b1 > b0 else None


def settled_until(cfg: KpiConfig, now: float) -> int:
    """The first UTC half-hour bucket not settled at `now`: every bucket before it ended at least
    `window.max_call_s` ago, so none of its calls can still be waiting and its sums are final (until a
    fact of it changes: the fact sink then drops its rollup)."""
    return int((now - cfg.window.max_call_s) // HALF_HOUR)


def whole_half_hour_zone(win: Window) -> bool:
    """One UTC offset over the window (and its margin), a whole number of half hours: local half hour
    = UTC half hour + a constant, so agent time rolled up by local half hour maps back to UTC buckets."""
    return len(win.transitions) == 1 and win.transitions[0][1] % HALF_HOUR == 0


def margin_s(cfg: KpiConfig) -> float:
    """How far beyond a range a report's window knows the zone's offsets (as kpi/report.py sets it)."""
    return max(cfg.window.max_call_s, cfg.fcr.window_h * 3600.0, cfg.window.agent_lookback_s,
               cfg.deadlines.longest_s()) + 86400.0


async def ensure(engine: AsyncEngine, cfg: KpiConfig, b0: int, b1: int, now: float) -> int:
    """Build the rollups of the buckets in [b0, b1) that are missing; return how many were built."""
    key = cfg_key(cfg)
    rb = rollup_buckets.c
    async with engine.connect() as conn:
        have = {r[0] for r in await conn.execute(
            select(rb.bucket).where(rb.cfg_key == key, rb.bucket >= b0, rb.bucket < b1))}
    missing = [b for b in range(b0, b1) if b not in have]
    built = 0
    i = 0
    while i < len(missing):  # contiguous runs, at most CHUNK_BUCKETS each
        j = i
        while j + 1 < len(missing) and missing[j + 1] == missing[j] + 1 and j + 1 - i < CHUNK_BUCKETS:
            j += 1
        built += await _build(engine, cfg, key, missing[i], missing[j] + 1, now)
        i = j + 1
    return built


async def _build(engine: AsyncEngine, cfg: KpiConfig, key: str, b0: int, b1: int, now: float) -> int:
    win = Window.build(b0 * HALF_HOUR, b1 * HALF_HOUR, now, cfg.zone(), margin_s(cfg))
    rb = rollup_buckets.c
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text(f"SELECT pg_advisory_xact_lock({LOCK_ID})"))
            # the markers first: on SQLite this takes the write lock before the facts are read
            await conn.execute(delete(rollup_buckets).where(rb.cfg_key == key, rb.bucket >= b0, rb.bucket < b1))
            await conn.execute(insert(rollup_buckets), [{"cfg_key": key, "bucket": b} for b in range(b0, b1)])
            for table, stmt, keys in (
                    (call_rollups, call_sums_query(cfg, win, ROLLUP_DIMS, by_bucket=True), CALL_SUM_KEYS),
                    (leg_rollups, leg_sums_query(win, ROLLUP_DIMS, by_bucket=True), LEG_SUM_KEYS)):
                c = table.c
                await conn.execute(delete(table).where(c.cfg_key == key, c.bucket >= b0, c.bucket < b1))
                rows = [{"cfg_key": key, "bucket": r["d_bucket"], "hh": r["hh"], "queue": r["d_queue"],
                         "tier": r["d_tier"], **{k: int(r[k] or 0) for k in keys}}
                        for r in await _rows(conn, stmt)]
                if rows:
                    await conn.execute(insert(table), rows)
            if whole_half_hour_zone(win):  # else reports over it read agent time from the facts
                shift = win.transitions[0][1] // HALF_HOUR
                await conn.execute(delete(agent_time_rollups).where(
                    agent_time_rollups.c.cfg_key == key, agent_time_rollups.c.bucket >= b0,
                    agent_time_rollups.c.bucket < b1))
                per: dict[tuple[int, str | None], int] = {}
                for r in split_agent_rows(await _rows(conn, agent_time_sums_query(cfg, win, [])), []):
                    per[(r["hh"], r["state"])] = per.get((r["hh"], r["state"]), 0) + int(r["ms"])
                if per:
                    await conn.execute(insert(agent_time_rollups), [
                        {"cfg_key": key, "bucket": hh - shift, "hh": hh, "state": state, "ms": v}
                        for (hh, state), v in per.items()])
    except (IntegrityError, OperationalError):  # another report built them meanwhile, or the lock was busy
        return 0
    return b1 - b0


def rollup_queries(cfg: KpiConfig, b0: int, b1: int, dims: Sequence[str]) -> dict[str, Any]:
    """The calls, legs and agent time families' rows of buckets [b0, b1) from the rollups, shaped as the
    facts SQL's (agent time only when `whole_half_hour_zone`: no entity dimension reaches it here)."""
    key = cfg_key(cfg)
    out = {}
    for name, table, keys in (("calls", call_rollups, CALL_SUM_KEYS), ("legs", leg_rollups, LEG_SUM_KEYS)):
        c = table.c
        dim_cols = [c[d].label(f"d_{d}") for d in dims]
        out[name] = (select(c.hh, *dim_cols, *(int_sum(c[k]).label(k) for k in keys))  # BIGINT, no Decimals
                     .where(c.cfg_key == key, c.bucket >= b0, c.bucket < b1)
                     .group_by(c.hh, *(c[d] for d in dims)))
    a = agent_time_rollups.c
    out["agent_time"] = (select(a.hh, a.state, literal("ms").label("tag"), int_sum(a.ms).label("v"))
                         .where(a.cfg_key == key, a.bucket >= b0, a.bucket < b1).group_by(a.hh, a.state))
    return out


def rest_window(win: Window, b1: int) -> Window:
    """The part of `win` after the rolled-up buckets."""
    return replace(win, start=float(b1 * HALF_HOUR))


async def invalidate(conn: AsyncConnection, buckets: Iterable[int]) -> None:
    """Drop every rollup (any settings) of `buckets`: their facts have changed."""
    bs = sorted(set(buckets))
    if not bs:
        return
    if conn.dialect.name == "postgresql":
        await conn.execute(text(f"SELECT pg_advisory_xact_lock_shared({LOCK_ID})"))
    rb = rollup_buckets.c
    for i in range(0, len(bs), 500):
        part = bs[i:i + 500]
        # usually none is rolled up yet (the batch's half hours are not settled): one indexed look, no deletes
        if (await conn.execute(select(rb.bucket).where(rb.bucket.in_(part)).limit(1))).first() is None:
            continue
        for table in ROLLUP_TABLES:
            await conn.execute(delete(table).where(table.c.bucket.in_(part)))


async def invalidate_range(conn: AsyncConnection, t0: float, t1: float) -> None:
    """Drop the rollups of every bucket of [t0, t1) (a rebuild or a retention sweep of that range)."""
    lo, hi = int(t0 // HALF_HOUR), int(-(-t1 // HALF_HOUR))
    if conn.dialect.name == "postgresql":
        await conn.execute(text(f"SELECT pg_advisory_xact_lock_shared({LOCK_ID})"))
    for table in ROLLUP_TABLES:
        await conn.execute(delete(table).where(and_(table.c.bucket >= lo, table.c.bucket < hi)))


async def invalidate_from(conn: AsyncConnection, since: float) -> None:
    """Drop the rollups from `since` on: an agent's states from then on were rewritten."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text(f"SELECT pg_advisory_xact_lock_shared({LOCK_ID})"))
    b = int(since // HALF_HOUR)
    if (await conn.execute(select(rollup_buckets.c.bucket).where(rollup_buckets.c.bucket >= b).limit(1))).first():
        for table in ROLLUP_TABLES:
            await conn.execute(delete(table).where(table.c.bucket >= b))


async def invalidate_calls(conn: AsyncConnection, ids: Sequence[str], facts: Sequence[dict[str, Any]],
                           legs: Sequence[dict[str, Any]]) -> None:
    """Before the facts of calls `ids` are replaced by `facts` and `legs` (rows): drop the rollups of every
    half hour they were or will be in, and of the callers' earlier calls (their FCR depends on the next
    call). One indexed look when nothing from the earliest such half hour on is rolled up."""
    times = [f["t0"] for f in facts] + [g["ts"] for g in legs]
    rb = rollup_buckets.c
    look = select(rb.bucket).limit(1)
    if times:
        look = look.where(rb.bucket >= int((min(times) - FCR_MAX_S) // HALF_HOUR))
    if (await conn.execute(look)).first() is None:
        return
    c = call_facts.c
    stale = {f["bucket"] for f in facts} | {g["bucket"] for g in legs}
    stale |= {r[0] for r in await conn.execute(select(c.bucket).where(c.call_id.in_(list(ids))))}
    callers = [f["caller"] for f in facts if f["caller"] and not f["is_out"]]
    if callers:
        stale |= await caller_buckets(conn, callers, min(f["t0"] for f in facts))
    await invalidate(conn, stale)


async def caller_buckets(conn: AsyncConnection, callers: Iterable[str], since: float) -> set[int]:
    """Buckets of the calls of `callers` from `since - FCR_MAX_S` on: a new call may change their FCR."""
    c = call_facts.c
    out: set[int] = set()
    cs = sorted(set(callers))
    for i in range(0, len(cs), 500):
        out |= {r[0] for r in await conn.execute(
            select(c.bucket).distinct().where(c.caller.in_(cs[i:i + 500]), c.t0 >= since - FCR_MAX_S))}
    return out
