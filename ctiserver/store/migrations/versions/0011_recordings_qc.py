"""Recordings (index and access log) and QC inspection tasks (as in ctiserver/recording/store.py and
ctiserver/qc/store.py).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("spool", sa.String(120), nullable=False, unique=True),
        sa.Column("call_id", sa.String(80), nullable=False),
        sa.Column("uniqueid", sa.String(40), nullable=False),
        sa.Column("agent_id", sa.String(40), nullable=False),
        sa.Column("queue", sa.String(40)),
        sa.Column("number", sa.String(32)),
        sa.Column("customer", sa.String(40)),
        sa.Column("start_ts", sa.Float(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("codec", sa.String(20), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.String(300), nullable=False),
        sa.Column("created_ts", sa.Float(), nullable=False),
    )
    op.create_index("ix_recordings_start", "recordings", ["start_ts"])
    op.create_index("ix_recordings_call", "recordings", ["call_id"])
    op.create_index("ix_recordings_agent_start", "recordings", ["agent_id", "start_ts"])
    op.create_table(
        "recording_access",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(20), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("range", sa.String(60)),
    )
    op.create_index("ix_recording_access_rec", "recording_access", ["recording_id"])
    op.create_table(
        "qc_tasks",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("agent_id", sa.String(40), nullable=False),
        sa.Column("call_id", sa.String(80), nullable=False),
        sa.Column("recording_id", sa.Integer()),
        sa.Column("queue", sa.String(40)),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("due_ts", sa.Float(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reviewer", sa.String(20)),
        sa.Column("score", sa.Float()),
        sa.Column("passed", sa.Boolean()),
        sa.Column("fatal", sa.Boolean()),
        sa.Column("items", sa.JSON()),
        sa.Column("comments", sa.JSON()),
        sa.Column("scored_ts", sa.Float()),
        sa.Column("ack_ts", sa.Float()),
        sa.Column("appeal_text", sa.Text()),
        sa.Column("appeal_ts", sa.Float()),
        sa.Column("decision", sa.String(16)),
        sa.Column("decision_note", sa.Text()),
        sa.Column("decided_by", sa.String(20)),
        sa.Column("decided_ts", sa.Float()),
        sa.Column("created_ts", sa.Float(), nullable=False),
        sa.UniqueConstraint("month", "agent_id", "call_id", name="uq_qc_tasks_call"),
    )
    op.create_index("ix_qc_tasks_month_agent", "qc_tasks", ["month", "agent_id"])


def downgrade() -> None:
    op.drop_table("qc_tasks")
    op.drop_table("recording_access")
    op.drop_table("recordings")
