"""Desktop: users, sessions, dispositions, work orders and their history (as in ctiserver/web/tables.py).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("agent_no", sa.String(20), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_ts", sa.Float(), nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("agent_no", sa.String(20), sa.ForeignKey("users.agent_no", ondelete="CASCADE"), nullable=False),
        sa.Column("created_ts", sa.Float(), nullable=False),
        sa.Column("expires_ts", sa.Float(), nullable=False),
    )
    op.create_index("ix_sessions_expires", "sessions", ["expires_ts"])
    op.create_table(
        "dispositions",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("agent_no", sa.String(20), nullable=False),
        sa.Column("call_id", sa.String(80)),
        sa.Column("category", sa.String(30), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("resolved", sa.Boolean(), nullable=False),
        sa.Column("customer_account", sa.String(20)),
        sa.Column("caller_number", sa.String(32)),
    )
    op.create_index("ix_dispositions_call", "dispositions", ["call_id"])
    op.create_index("ix_dispositions_ts", "dispositions", ["ts"])
    op.create_table(
        "work_orders",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("created_ts", sa.Float(), nullable=False),
        sa.Column("updated_ts", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(20), nullable=False),
        sa.Column("call_id", sa.String(80)),
        sa.Column("incoming_number", sa.String(32), nullable=False),
        sa.Column("call_time", sa.Float(), nullable=False),
        sa.Column("category", sa.String(30), nullable=False),
        sa.Column("customer_name", sa.String(100), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("customer_account", sa.String(20)),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("unit", sa.String(100)),
        sa.Column("due_ts", sa.Float(), nullable=False),
        sa.Column("reopen_count", sa.Integer(), nullable=False),
        sa.Column("closed_ts", sa.Float()),
    )
    op.create_index("ix_work_orders_account", "work_orders", ["customer_account"])
    op.create_index("ix_work_orders_number", "work_orders", ["incoming_number"])
    op.create_index("ix_work_orders_status_due", "work_orders", ["status", "due_ts"])
    op.create_table(
        "work_order_history",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("work_order_id", Id, sa.ForeignKey("work_orders.id", ondelete="CASCADE"), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("agent_no", sa.String(20), nullable=False),
        sa.Column("from_status", sa.String(20)),
        sa.Column("to_status", sa.String(20), nullable=False),
        sa.Column("unit", sa.String(100)),
        sa.Column("note", sa.Text(), nullable=False),
    )
    op.create_index("ix_work_order_history_wo", "work_order_history", ["work_order_id"])


def downgrade() -> None:
    op.drop_table("work_order_history")
    op.drop_table("work_orders")
    op.drop_table("dispositions")
    op.drop_table("sessions")
    op.drop_table("users")
