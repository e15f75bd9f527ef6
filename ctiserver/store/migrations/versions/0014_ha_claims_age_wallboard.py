"""High availability: the claims by age, for the leader's prune job (ctiserver/ha/prune.py), and the
leader's live wallboard for the standbys (ctiserver/ha/wallboard.py).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Epoch = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_index("ix_ha_claims_claimed_ts", "ha_claims", ["claimed_ts"])
    op.create_table(
        "ha_wallboard",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("holder", sa.String(80), nullable=False),
        sa.Column("epoch", Epoch, nullable=False),
        sa.Column("published_ts", sa.Float(), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ha_wallboard")
    op.drop_index("ix_ha_claims_claimed_ts", table_name="ha_claims")
