"""High availability: the leader's lease, its epochs, and the claims made under them (ctiserver/ha/pg.py).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Epoch = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ha_lease",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("holder", sa.String(80)),
        sa.Column("address", sa.String(200), nullable=False, server_default=""),
        sa.Column("epoch", Epoch, nullable=False, server_default="0"),
        sa.Column("acquired_ts", sa.Float(), nullable=False),
        sa.Column("renewed_ts", sa.Float(), nullable=False),
        sa.Column("expires_ts", sa.Float(), nullable=False),
    )
    op.create_table(
        "ha_epochs",
        sa.Column("epoch", Epoch, primary_key=True, autoincrement=False),
        sa.Column("holder", sa.String(80), nullable=False),
        sa.Column("address", sa.String(200), nullable=False, server_default=""),
        sa.Column("acquired_ts", sa.Float(), nullable=False),
        sa.Column("prev_holder", sa.String(80)),
        sa.Column("prev_renewed_ts", sa.Float()),
        sa.Column("prev_expires_ts", sa.Float()),
    )
    op.create_table(
        "ha_claims",
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("epoch", Epoch, nullable=False),
        sa.Column("holder", sa.String(80), nullable=False),
        sa.Column("claimed_ts", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name="pk_ha_claims"),
    )
    op.create_index("ix_ha_claims_epoch", "ha_claims", ["epoch"])


def downgrade() -> None:
    op.drop_table("ha_claims")
    op.drop_table("ha_epochs")
    op.drop_table("ha_lease")
