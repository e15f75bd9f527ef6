"""Repair orders to crews (ctiserver/repair/store.py).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "repair_orders",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("token", sa.String(32), nullable=False, unique=True),
        sa.Column("outage_id", sa.Integer()),
        sa.Column("workorder_id", sa.Integer()),
        sa.Column("crew", sa.String(20), nullable=False),
        sa.Column("area", sa.String(60), nullable=False),
        sa.Column("area_class", sa.String(10), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("dispatched_ts", sa.Float(), nullable=False),
        sa.Column("ack_ts", sa.Float()),
        sa.Column("arrived_ts", sa.Float()),
        sa.Column("reported_ts", sa.Float()),
        sa.Column("restored_ts", sa.Float()),
        sa.Column("expected_ts", sa.Float()),
        sa.Column("cause", sa.String(200), nullable=False, server_default=""),
        sa.Column("location", sa.String(200), nullable=False, server_default=""),
        sa.Column("alerted", sa.String(200), nullable=False, server_default=""),
        sa.Column("dispatched_by", sa.String(40), nullable=False, server_default=""),
        sa.Column("updated_ts", sa.Float(), nullable=False),
    )
    op.create_index("ix_repair_orders_stage", "repair_orders", ["stage"])
    op.create_index("ix_repair_orders_outage", "repair_orders", ["outage_id"])


def downgrade() -> None:
    op.drop_table("repair_orders")
