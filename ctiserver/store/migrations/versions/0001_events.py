"""Create the append-only `events` log (as in ctiserver/store/schema.py).

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("call_id", sa.String(80)),
        sa.Column("agent_id", sa.String(40)),
        sa.Column("queue", sa.String(40)),
        sa.Column("tier", sa.String(20)),
        sa.Column("server", sa.String(40)),
        sa.Column("event_key", sa.String(80), unique=True),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_events_ts", "events", ["ts"])
    op.create_index("ix_events_call", "events", ["call_id"])
    op.create_index("ix_events_kind_ts", "events", ["kind", "ts"])


def downgrade() -> None:
    op.drop_table("events")
