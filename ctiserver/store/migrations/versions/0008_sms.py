"""SMS messages: one row per message, stored before it is sent (as in ctiserver/sms/store.py).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sms_messages",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("created_ts", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("account", sa.String(40), nullable=False, server_default=""),
        sa.Column("area", sa.String(80), nullable=False, server_default=""),
        sa.Column("quiet", sa.String(100), nullable=False, server_default=""),
        sa.Column("lang", sa.String(8), nullable=False, server_default="zh"),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("coding", sa.Integer(), nullable=False),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(80), nullable=False, server_default=""),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("due_ts", sa.Float(), nullable=False),
        sa.Column("accepted_ts", sa.Float()),
        sa.Column("final_ts", sa.Float()),
        sa.Column("last_dlr", sa.Integer()),
        sa.Column("error", sa.String(200), nullable=False, server_default=""),
    )
    op.create_index("ix_sms_state_due", "sms_messages", ["state", "due_ts"])
    op.create_index("ix_sms_account", "sms_messages", ["account", "kind"])
    op.create_index("ix_sms_ref", "sms_messages", ["ref"])


def downgrade() -> None:
    op.drop_table("sms_messages")
