"""Shift handovers (ctiserver/wfm/handover_store.py).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "wfm_handovers",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("created_ts", sa.Float(), nullable=False),
        sa.Column("outgoing", sa.String(40), nullable=False),
        sa.Column("shift_start_ts", sa.Float(), nullable=False),
        sa.Column("boundary_ts", sa.Float(), nullable=False),
        sa.Column("incoming", sa.String(200), nullable=False, server_default=""),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False, server_default=""),
        sa.Column("acked_by", sa.String(40)),
        sa.Column("acked_ts", sa.Float()),
    )
    op.create_index("ix_wfm_handovers_boundary", "wfm_handovers", ["boundary_ts"])


def downgrade() -> None:
    op.drop_table("wfm_handovers")
