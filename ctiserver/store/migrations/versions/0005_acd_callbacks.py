"""ACD callbacks: one durable row per callback (as in ctiserver/callbacks/store.py).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OPEN = "status IN ('pending', 'queued', 'dialing')"


def upgrade() -> None:
    op.create_table(
        "acd_callbacks",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("origin_call", sa.String(80), nullable=False),
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column("skill", sa.String(40), nullable=False),
        sa.Column("tier", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(24), nullable=False),
        sa.Column("customer", sa.JSON()),
        sa.Column("windows", sa.String(200), nullable=False),
        sa.Column("recording", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_ts", sa.Float(), nullable=False),
        sa.Column("place_ts", sa.Float(), nullable=False),
        sa.Column("due_ts", sa.Float(), nullable=False),
        sa.Column("next_ts", sa.Float(), nullable=False),
        sa.Column("engine_call", sa.String(80)),
        sa.Column("channel_id", sa.String(80)),
        sa.Column("agent_id", sa.String(40)),
        sa.Column("last_outcome", sa.String(16)),
        sa.Column("updated_ts", sa.Float(), nullable=False),
    )
    op.create_index("ix_acd_callbacks_status", "acd_callbacks", ["status", "next_ts"])
    op.create_index("ix_acd_callbacks_origin", "acd_callbacks", ["origin_call"])
    # One open callback per phone number.
    op.create_index("ux_acd_callbacks_open_number", "acd_callbacks", ["number"], unique=True,
                    sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))


def downgrade() -> None:
    op.drop_table("acd_callbacks")
