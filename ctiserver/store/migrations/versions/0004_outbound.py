"""Outbound: campaigns, contacts, attempts and the do-not-call list (as in ctiserver/outbound/store.py).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outbound_campaigns",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("uid", sa.String(16), nullable=False, unique=True),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_ts", sa.Float(), nullable=False),
        sa.Column("updated_ts", sa.Float(), nullable=False),
    )
    op.create_table(
        "outbound_contacts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", Id, sa.ForeignKey("outbound_campaigns.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("account", sa.String(40), nullable=False),
        sa.Column("area", sa.String(60), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("tier", sa.String(20), nullable=False),
        sa.Column("quiet", sa.String(200), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_due_ts", sa.Float(), nullable=False),
        sa.Column("last_outcome", sa.String(16)),
        sa.Column("updated_ts", sa.Float(), nullable=False),
        sa.UniqueConstraint("campaign_id", "number", name="uq_outbound_contacts_number"),
    )
    op.create_index("ix_outbound_contacts_due", "outbound_contacts", ["campaign_id", "status", "next_due_ts"])
    op.create_index("ix_outbound_contacts_account", "outbound_contacts", ["account"])
    op.create_table(
        "outbound_attempts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("campaign_id", Id, sa.ForeignKey("outbound_campaigns.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("contact_id", Id, sa.ForeignKey("outbound_contacts.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("attempt_no", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.String(80), nullable=False, unique=True),
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16)),
        sa.Column("dtmf", sa.String(20), nullable=False),
        sa.Column("started_ts", sa.Float(), nullable=False),
        sa.Column("ended_ts", sa.Float()),
        sa.UniqueConstraint("contact_id", "attempt_no", name="uq_outbound_attempts_no"),
    )
    op.create_index("ix_outbound_attempts_status", "outbound_attempts", ["status"])
    # One live attempt per phone number, whatever campaign it belongs to.
    op.create_index("ux_outbound_attempts_live_number", "outbound_attempts", ["number"], unique=True,
                    sqlite_where=sa.text("status = 'dialing'"),
                    postgresql_where=sa.text("status = 'dialing'"))
    op.create_table(
        "outbound_dnc",
        sa.Column("number", sa.String(20), primary_key=True),
        sa.Column("list", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("added_ts", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("outbound_attempts")
    op.drop_table("outbound_contacts")
    op.drop_table("outbound_campaigns")
    op.drop_table("outbound_dnc")
