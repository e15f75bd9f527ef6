"""Outages as live data (ctiserver/outages/store.py): the outage, its audit trail, the fault calls attached
to it; the IVR's `outages` rows say which entered outage they come from (`outage_id`).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outage_records",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("cause", sa.String(200), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("start_ts", sa.Float(), nullable=False),
        sa.Column("expected_restore_ts", sa.Float()),
        sa.Column("end_ts", sa.Float()),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("created_ts", sa.Float(), nullable=False),
        sa.Column("updated_ts", sa.Float(), nullable=False),
    )
    op.create_index("ix_outage_records_status", "outage_records", ["status", "start_ts"])
    op.create_table(
        "outage_audit",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("outage_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("user", sa.String(40), nullable=False),
        sa.Column("action", sa.String(12), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_outage_audit_outage", "outage_audit", ["outage_id"])
    op.create_table(
        "outage_reports",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("outage_id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("call_id", sa.String(80), nullable=False, server_default=""),
        sa.Column("account", sa.String(20), nullable=False, server_default=""),
        sa.Column("number", sa.String(32), nullable=False, server_default=""),
        sa.Column("workorder_id", sa.Integer()),
    )
    op.create_index("ix_outage_reports_outage", "outage_reports", ["outage_id"])
    with op.batch_alter_table("outages") as batch:
        batch.add_column(sa.Column("outage_id", sa.Integer()))
    op.create_index("ix_outages_outage_id", "outages", ["outage_id"])


def downgrade() -> None:
    op.drop_index("ix_outages_outage_id", "outages")
    with op.batch_alter_table("outages") as batch:
        batch.drop_column("outage_id")
    for name in ("outage_reports", "outage_audit", "outage_records"):
        op.drop_table(name)
