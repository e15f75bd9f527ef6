"""PostgreSQL: partition the events, the KPI facts and their rollups by UTC month (declarative, RANGE).

Each table is rebuilt as a partitioned table of the same name, columns, defaults, indexes and sequences:
one partition per UTC month that holds rows (up to a year ahead of now) and for the current month and the
next three, plus a DEFAULT partition for anything else (a month not created yet: an insert never fails).
The rows move month by month straight into their partitions. A unique key on a partitioned table must hold
the partition column, so the keys gain it: events (id, ts) and UNIQUE (event_key, ts); call_facts
(call_id, t0); leg_facts (call_id, seq, ts); agent_intervals (id, t_start); rollup_buckets already holds
`bucket`. The writer's INSERT ... ON CONFLICT DO NOTHING names no key, so a replayed event (same key, same
ts) is still skipped; the fact sink replaces facts by id (DELETE, INSERT), which needs no unique key.

SQLite has no partitions: nothing changes there (retention deletes by range, ctiserver/store/retention.py).
Bounds are UTC month starts in epoch seconds (half hours for `bucket`); store/partitions.py says why UTC.
One transaction, like every migration: a big events table makes this a long one (it copies every row once).

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Sequence

from alembic import op
from sqlalchemy import text
from sqlalchemy.engine import Connection

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table, its time column, seconds per unit of that column
TABLES = (
    ("events", "ts", 1),
    ("call_facts", "t0", 1),
    ("leg_facts", "ts", 1),
    ("agent_intervals", "t_start", 1),
    ("call_rollups", "bucket", 1800),
    ("leg_rollups", "bucket", 1800),
    ("agent_time_rollups", "bucket", 1800),
    ("rollup_buckets", "bucket", 1800),
)
AHEAD = 3  # months made beyond the current one
FAR = 12  # months with rows beyond this many months from now stay in the DEFAULT partition


def _add(ym: tuple[int, int], n: int) -> tuple[int, int]:
    k = ym[0] * 12 + ym[1] - 1 + n
    return k // 12, k % 12 + 1


def _start(ym: tuple[int, int]) -> int:
    return calendar.timegm((ym[0], ym[1], 1, 0, 0, 0))


def _month(ts: float) -> tuple[int, int]:
    d = dt.datetime.fromtimestamp(ts, dt.UTC)
    return d.year, d.month


def _keys(conn: Connection, table: str) -> list[tuple[str, str, list[str]]]:
    """The table's primary and unique keys: (name, 'p' or 'u', columns in key order)."""
    rows = conn.execute(text(
        "SELECT c.conname, CAST(c.contype AS text), array_agg(a.attname ORDER BY k.n) FROM pg_constraint c "
        "CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, n) "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
        "WHERE c.conrelid = CAST(:t AS regclass) AND c.contype IN ('p', 'u') GROUP BY c.conname, c.contype "
        "ORDER BY c.contype"), {"t": table}).all()
    others = conn.execute(text(
        "SELECT conname FROM pg_constraint WHERE (conrelid = CAST(:t AS regclass) AND contype NOT IN ('p', 'u')) "
        "OR confrelid = CAST(:t AS regclass)"), {"t": table}).scalars().all()
    if others:  # none today; one added later would need handling here, not silent loss
        raise RuntimeError(f"{table}: constraints this migration does not carry over: {', '.join(others)}")
    return [(r[0], r[1], list(r[2])) for r in rows]


def _partition(conn: Connection, table: str, col: str, unit: int, now: float) -> None:
    old = f"{table}_unpartitioned"
    keys = _keys(conn, table)
    indexes = conn.execute(text(
        "SELECT pg_get_indexdef(x.indexrelid) FROM pg_index x WHERE x.indrelid = CAST(:t AS regclass) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"), {"t": table}).scalars().all()
    sequences = [(c, s) for c, s in conn.execute(text(
        "SELECT attname, pg_get_serial_sequence(:t, attname) FROM pg_attribute "
        "WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped"), {"t": table}).all() if s]
    conn.execute(text(f'ALTER TABLE "{table}" RENAME TO "{old}"'))
    conn.execute(text(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS INCLUDING STORAGE '
                      f'INCLUDING COMMENTS) PARTITION BY RANGE ("{col}")'))
    current = _month(now)
    last = _add(current, FAR)
    months = {_add(current, i) for i in range(AHEAD + 1)}
    for (lo,) in conn.execute(text(
            f'SELECT DISTINCT CAST(EXTRACT(EPOCH FROM date_trunc(\'month\', to_timestamp("{col}" * {unit}) '
            f'AT TIME ZONE \'UTC\')) AS bigint) FROM "{old}"')).all():
        ym = _month(float(lo))
        if ym < last:
            months.add(ym)
    for ym in sorted(months):
        lo, hi = _start(ym) // unit, _start(_add(ym, 1)) // unit
        part = f"{table}_p{ym[0]:04d}_{ym[1]:02d}"
        conn.execute(text(f'CREATE TABLE "{part}" PARTITION OF "{table}" FOR VALUES FROM ({lo}) TO ({hi})'))
        conn.execute(text(f'INSERT INTO "{part}" SELECT * FROM "{old}" WHERE "{col}" >= {lo} AND "{col}" < {hi}'))
    conn.execute(text(f'CREATE TABLE "{table}_default" PARTITION OF "{table}" DEFAULT'))
    conn.execute(text(f'INSERT INTO "{table}_default" SELECT o.* FROM "{old}" o WHERE ('
                      + " AND ".join(f'NOT (o."{col}" >= {_start(ym) // unit} AND o."{col}" < '
                                     f'{_start(_add(ym, 1)) // unit})' for ym in sorted(months)) + ")"))
    before = conn.execute(text(f'SELECT count(*) FROM "{old}"')).scalar()
    after = conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar()
    if before != after:
        raise RuntimeError(f"{table}: {before} rows before partitioning, {after} after")
    for column, seq in sequences:  # the ids go on from where they were
        conn.execute(text(f'ALTER SEQUENCE {seq} OWNED BY "{table}"."{column}"'))
    conn.execute(text(f'DROP TABLE "{old}"'))
    for name, kind, cols in keys:
        cols = cols if col in cols else [*cols, col]
        what = "PRIMARY KEY" if kind == "p" else "UNIQUE"
        conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {what} ('
                          + ", ".join(f'"{c}"' for c in cols) + ")"))
    for ddl in indexes:
        conn.execute(text(ddl))
    conn.execute(text(f'ANALYZE "{table}"'))


def _unpartition(conn: Connection, table: str, col: str) -> None:
    old = f"{table}_partitioned"
    keys = _keys(conn, table)
    indexes = conn.execute(text(
        "SELECT pg_get_indexdef(x.indexrelid) FROM pg_index x WHERE x.indrelid = CAST(:t AS regclass) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)"), {"t": table}).scalars().all()
    sequences = [(c, s) for c, s in conn.execute(text(
        "SELECT attname, pg_get_serial_sequence(:t, attname) FROM pg_attribute "
        "WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped"), {"t": table}).all() if s]
    conn.execute(text(f'ALTER TABLE "{table}" RENAME TO "{old}"'))
    conn.execute(text(f'CREATE TABLE "{table}" (LIKE "{old}" INCLUDING DEFAULTS INCLUDING STORAGE '
                      f'INCLUDING COMMENTS)'))
    conn.execute(text(f'INSERT INTO "{table}" SELECT * FROM "{old}"'))
    for column, seq in sequences:
        conn.execute(text(f'ALTER SEQUENCE {seq} OWNED BY "{table}"."{column}"'))
    conn.execute(text(f'DROP TABLE "{old}" CASCADE'))
    for name, kind, cols in keys:
        if table != "rollup_buckets":  # its key held `bucket` from the start; the others gained the column
            cols = [c for c in cols if c != col]
        what = "PRIMARY KEY" if kind == "p" else "UNIQUE"
        conn.execute(text(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {what} ('
                          + ", ".join(f'"{c}"' for c in cols) + ")"))
    for ddl in indexes:
        conn.execute(text(ddl.replace(" ON ONLY ", " ON ", 1)))


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    now = float(conn.execute(text("SELECT EXTRACT(EPOCH FROM now())")).scalar() or 0.0)
    for table, col, unit in TABLES:
        _partition(conn, table, col, unit, now)


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    for table, col, _unit in TABLES:
        _unpartition(conn, table, col)
