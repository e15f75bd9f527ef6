"""Monthly partitions of the events and the KPI facts, and dropping whole expired months.

On PostgreSQL (migration 0016) `events` and the fact tables are partitioned by RANGE on their time column,
one partition per **UTC** calendar month (`events_p2026_12`), plus a DEFAULT partition (`events_default`)
that takes any row no month partition covers (a month not created yet, a clock far in the future), so an
insert never fails for want of a partition. Why UTC and not the hotline's zone: the partition bounds are
schema, fixed by a migration that runs with nothing but a database URL, and stay in the database while
calendar.yaml may change its zone (local bounds would then overlap or leave gaps); and every other time key
stored is UTC already (the facts' and rollups' `bucket` is the UTC half hour). The calendar's zone decides
what retention keeps (`cutoff`): whole local months, so a kept month's report is complete.

The months ahead are created by the leader's daily job (`ensure_months`); rows that went to the DEFAULT
partition meanwhile move into their month when it is created. Retention (`drop_before`) DETACHes and DROPs
whole months that end at or before the cutoff: constant time, whatever a month holds. On SQLite the same
setting deletes the same rows by range, in batches (not constant time: SQLite has no partitions).

The tables, their time column and its unit (seconds, or UTC half hours for `bucket`) are listed once here,
for the running server; migration 0016 keeps its own copy, as revisions do.
"""

from __future__ import annotations

import calendar as _cal
import datetime as dt
import logging
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

HALF_HOUR = 1800
MONTHS_AHEAD = 3  # month partitions kept ready beyond the current one
LOCK_TIMEOUT_S = 10  # DDL on a partitioned table waits at most this long for its lock (then: tomorrow)
SQLITE_BATCH = 10_000  # rows per DELETE transaction on SQLite: the writer is never locked out for long


@dataclass(frozen=True, slots=True)
class Partitioned:
    table: str
    column: str
    unit: int  # seconds per unit of `column`: 1 (epoch seconds) or HALF_HOUR (`bucket`)
    group: str  # "events" or "facts": which retention setting applies


EVENTS = (Partitioned("events", "ts", 1, "events"),)
FACTS = (
    Partitioned("call_facts", "t0", 1, "facts"),
    Partitioned("leg_facts", "ts", 1, "facts"),
    Partitioned("agent_intervals", "t_start", 1, "facts"),
    Partitioned("call_rollups", "bucket", HALF_HOUR, "facts"),
    Partitioned("leg_rollups", "bucket", HALF_HOUR, "facts"),
    Partitioned("agent_time_rollups", "bucket", HALF_HOUR, "facts"),
    Partitioned("rollup_buckets", "bucket", HALF_HOUR, "facts"),
)
TABLES = EVENTS + FACTS


# --- month arithmetic (pure) -------------------------------------------------------------------------------

def month_of(ts: float) -> tuple[int, int]:
    """The UTC (year, month) of epoch seconds `ts`."""
    d = dt.datetime.fromtimestamp(ts, dt.UTC)
    return d.year, d.month


def add_months(ym: tuple[int, int], n: int) -> tuple[int, int]:
    k = ym[0] * 12 + ym[1] - 1 + n
    return k // 12, k % 12 + 1


def month_start(ym: tuple[int, int]) -> int:
    """Epoch seconds of the first instant of UTC month `ym`."""
    return _cal.timegm((ym[0], ym[1], 1, 0, 0, 0))


def partition_name(table: str, ym: tuple[int, int]) -> str:
    return f"{table}_p{ym[0]:04d}_{ym[1]:02d}"


def cutoff(now: float, keep_months: int, zone: ZoneInfo) -> float:
    """The first instant kept: the start, in the hotline's zone, of the local month `keep_months` before
    the current one (1: last month and this one are kept)."""
    local = dt.datetime.fromtimestamp(now, zone)
    k = local.year * 12 + local.month - 1 - keep_months
    return dt.datetime(k // 12, k % 12 + 1, 1, tzinfo=zone).timestamp()


def drop_bound(cut: float) -> int:
    """Everything before this UTC month start goes: the latest UTC month start at or before `cut`. Whole
    UTC months only, so at least every local month from `cut` on is kept whole (a local month east of UTC
    starts in the previous UTC month: those hours go with that month, and a local month already expired
    may linger, in part, one month more)."""
    return month_start(month_of(cut))


def next_daily_run(now: float, zone: ZoneInfo, at_minute: int) -> float:
    """The next `at_minute` (minutes after local midnight) strictly after `now`."""
    local = dt.datetime.fromtimestamp(now, zone)
    for days in (0, 1, 2):
        day = local.date() + dt.timedelta(days=days)
        run = dt.datetime.combine(day, dt.time(at_minute // 60, at_minute % 60), tzinfo=zone).timestamp()
        if run > now:
            return run
    raise AssertionError("unreachable")  # pragma: no cover


# --- PostgreSQL ----------------------------------------------------------------------------------------------

_BOUND = re.compile(r"FROM \('?(-?[0-9.e+]+)'?\) TO \('?(-?[0-9.e+]+)'?\)")


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    lo: float | None  # in seconds; None for the DEFAULT partition
    hi: float | None


async def is_partitioned(conn: AsyncConnection, table: str) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    return bool((await conn.execute(text(
        "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "WHERE c.relname = :t AND c.relnamespace = current_schema()::regnamespace"), {"t": table})).first())


async def partitions(conn: AsyncConnection, spec: Partitioned) -> list[Partition]:
    """The partitions of `spec.table`, oldest first, the DEFAULT one last (bounds in seconds)."""
    rows = (await conn.execute(text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
        "WHERE p.relname = :t AND p.relnamespace = current_schema()::regnamespace"), {"t": spec.table})).all()
    out = []
    for name, bound in rows:
        m = _BOUND.search(bound or "")
        if m:
            out.append(Partition(name, float(m.group(1)) * spec.unit, float(m.group(2)) * spec.unit))
        else:
            out.append(Partition(name, None, None))
    return sorted(out, key=lambda p: (p.lo is None, p.lo or 0.0))


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _lock_timeout(conn: AsyncConnection) -> None:
    # DDL on the parent waits behind a long report; meanwhile every insert would queue behind the DDL.
    await conn.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_S}s'"))


async def create_month(conn: AsyncConnection, spec: Partitioned, ym: tuple[int, int]) -> int:
    """Create the partition of UTC month `ym`, moving into it the rows the DEFAULT partition holds for that
    month. Returns how many rows moved. The caller's transaction; the month must not exist yet."""
    lo, hi = month_start(ym), month_start(add_months(ym, 1))
    blo, bhi = lo // spec.unit, hi // spec.unit
    t, c, name = _q(spec.table), _q(spec.column), _q(partition_name(spec.table, ym))
    default = _q(f"{spec.table}_default")
    has_default = any(p.lo is None for p in await partitions(conn, spec))
    moved = 0
    if has_default and (await conn.execute(text(
            f"SELECT 1 FROM {default} WHERE {c} >= {blo} AND {c} < {bhi} LIMIT 1"))).first():
        await conn.execute(text(f"CREATE TABLE {name} (LIKE {t} INCLUDING DEFAULTS INCLUDING STORAGE)"))
        moved = (await conn.execute(text(
            f"WITH moved AS (DELETE FROM {default} WHERE {c} >= {blo} AND {c} < {bhi} RETURNING *) "
            f"INSERT INTO {name} SELECT * FROM moved"))).rowcount
        await conn.execute(text(f"ALTER TABLE {t} ATTACH PARTITION {name} FOR VALUES FROM ({blo}) TO ({bhi})"))
    else:
        await conn.execute(text(f"CREATE TABLE {name} PARTITION OF {t} FOR VALUES FROM ({blo}) TO ({bhi})"))
    return moved


async def ensure_months(engine: AsyncEngine, now: float, ahead: int = MONTHS_AHEAD,
                        tables: tuple[Partitioned, ...] = TABLES) -> list[str]:
    """Create the partitions of the current UTC month and the `ahead` next ones that are missing, one
    transaction per partition. Returns their names (nothing on SQLite or an unpartitioned table)."""
    made: list[str] = []
    if engine.dialect.name != "postgresql":
        return made
    months = [add_months(month_of(now), i) for i in range(ahead + 1)]
    for spec in tables:
        async with engine.begin() as conn:
            if not await is_partitioned(conn, spec.table):
                continue
            have = {p.lo for p in await partitions(conn, spec)}
        for ym in months:
            if float(month_start(ym)) in have:
                continue
            async with engine.begin() as conn:
                await _lock_timeout(conn)
                moved = await create_month(conn, spec, ym)
            made.append(partition_name(spec.table, ym))
            log.info("partitions: created %s%s", partition_name(spec.table, ym),
                     f" ({moved} row(s) moved in from {spec.table}_default)" if moved else "")
    return made


@dataclass(frozen=True, slots=True)
class Dropped:
    table: str
    what: str  # a partition's name, or "rows" (SQLite, or the DEFAULT partition's old rows)
    rows: int | None  # rows deleted (None for a dropped partition: not counted, that is the point)


async def drop_before(engine: AsyncEngine, spec: Partitioned, bound: int) -> list[Dropped]:
    """Remove every row of `spec.table` whose time is before UTC month start `bound` (seconds).

    PostgreSQL, partitioned: DETACH and DROP each month partition that ends at or before `bound` (one
    transaction each; no row is read), and delete the DEFAULT partition's older rows. SQLite (or a table not
    partitioned): DELETE by range, SQLITE_BATCH rows per transaction."""
    out: list[Dropped] = []
    b = bound // spec.unit
    t, c = _q(spec.table), _q(spec.column)
    partitioned = False
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            partitioned = await is_partitioned(conn, spec.table)
            parts = await partitions(conn, spec) if partitioned else []
    if partitioned:
        for p in parts:
            if p.hi is not None and p.hi <= bound:
                async with engine.begin() as conn:
                    await _lock_timeout(conn)
                    await conn.execute(text(f"ALTER TABLE {t} DETACH PARTITION {_q(p.name)}"))
                    await conn.execute(text(f"DROP TABLE {_q(p.name)}"))
                out.append(Dropped(spec.table, p.name, None))
        if any(p.lo is None for p in parts):
            async with engine.begin() as conn:
                n = (await conn.execute(text(
                    f"DELETE FROM {_q(spec.table + '_default')} WHERE {c} < {b}"))).rowcount
            if n:
                out.append(Dropped(spec.table, f"{spec.table}_default", n))
        return out
    total = 0
    rowid = "rowid" if engine.dialect.name == "sqlite" else "ctid"
    while True:
        async with engine.begin() as conn:
            n = (await conn.execute(text(
                f"DELETE FROM {t} WHERE {rowid} IN (SELECT {rowid} FROM {t} WHERE {c} < :b LIMIT :n)"),
                {"b": b, "n": SQLITE_BATCH})).rowcount
        total += n
        if n < SQLITE_BATCH:
            break
    if total:
        out.append(Dropped(spec.table, "rows", total))
    return out
