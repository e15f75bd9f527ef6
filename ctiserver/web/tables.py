"""Desktop tables on the shared metadata (migration 0003): users, sessions, dispositions, work orders."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, ForeignKey, Index, Integer, String, Table, Text

from ..store.schema import IdType, metadata

users = Table(
    "users",
    metadata,
    Column("agent_no", String(20), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("role", String(20), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_ts", Float, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),  # sha256 hex: a stolen table holds no tokens
    Column("agent_no", String(20), ForeignKey("users.agent_no", ondelete="CASCADE"), nullable=False),
    Column("created_ts", Float, nullable=False),
    Column("expires_ts", Float, nullable=False),
    Index("ix_sessions_expires", "expires_ts"),
)

dispositions = Table(
    "dispositions",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("agent_no", String(20), nullable=False),
    Column("call_id", String(80)),
    Column("category", String(30), nullable=False),
    Column("note", Text, nullable=False),
    Column("resolved", Boolean, nullable=False),
    Column("customer_account", String(20)),
    Column("caller_number", String(32)),
    Index("ix_dispositions_call", "call_id"),
    Index("ix_dispositions_ts", "ts"),
)

work_orders = Table(
    "work_orders",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("created_ts", Float, nullable=False),
    Column("updated_ts", Float, nullable=False),
    Column("created_by", String(20), nullable=False),
    Column("call_id", String(80)),
    # the five key fields the accuracy KPI is measured on
    Column("incoming_number", String(32), nullable=False),
    Column("call_time", Float, nullable=False),
    Column("category", String(30), nullable=False),
    Column("customer_name", String(100), nullable=False),
    Column("content", Text, nullable=False),
    Column("customer_account", String(20)),
    Column("anonymous", Boolean, nullable=False, default=False),
    Column("status", String(20), nullable=False),
    Column("unit", String(100)),
    Column("due_ts", Float, nullable=False),  # the reply deadline (workorders.yaml)
    Column("reopen_count", Integer, nullable=False, default=0),
    Column("closed_ts", Float),
    Column("dispatch_warn_ts", Float),
    Column("dispatch_due_ts", Float),
    Column("warn_ts", Float),  # the reply reminder
    Column("alerted", String(100), nullable=False, default="", server_default=""),
    Index("ix_work_orders_account", "customer_account"),
    Index("ix_work_orders_number", "incoming_number"),
    Index("ix_work_orders_status_due", "status", "due_ts"),
)

work_order_history = Table(
    "work_order_history",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("work_order_id", IdType, ForeignKey("work_orders.id", ondelete="CASCADE"), nullable=False),
    Column("ts", Float, nullable=False),
    Column("agent_no", String(20), nullable=False),
    Column("from_status", String(20)),
    Column("to_status", String(20), nullable=False),
    Column("unit", String(100)),
    Column("note", Text, nullable=False),
    Index("ix_work_order_history_wo", "work_order_id"),
)
