"""Table definitions. One MetaData for the whole project; features add their tables here-by-import.

`events` is the append-only log every KPI is computed from. `ts` is epoch seconds
(float) so that bucketing by half hour is the same arithmetic on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Float, Index, Integer, MetaData, String, Table

metadata = MetaData()

# BigInteger on PostgreSQL, INTEGER PRIMARY KEY (rowid alias, autoincrement) on SQLite.
IdType = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    "events",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("call_id", String(80)),
    Column("agent_id", String(40)),
    Column("queue", String(40)),
    Column("tier", String(20)),
    Column("server", String(40)),
    # Unique per event as produced (server+seq); lets a replayed journal be written twice safely.
    Column("event_key", String(80), unique=True),
    Column("data", JSON, nullable=False, default=dict),
    Index("ix_events_ts", "ts"),
    Index("ix_events_call", "call_id"),
    Index("ix_events_kind_ts", "kind", "ts"),
)

# Deferred sinks (store/deferred.py): per writer (host and journal) and sink, the oldest event time whose
# derived rows (the KPI facts) may not be written yet; NULL when the sink has caught up.
sink_marks = Table(
    "sink_marks",
    metadata,
    Column("writer", String(255), primary_key=True),
    Column("sink", String(40), primary_key=True),
    Column("pending_since", Float),
)
