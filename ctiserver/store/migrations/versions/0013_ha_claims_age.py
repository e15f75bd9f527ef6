"""High availability: the claims by age, for the leader's prune job (ctiserver/ha/prune.py).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_ha_claims_claimed_ts", "ha_claims", ["claimed_ts"])


def downgrade() -> None:
    op.drop_index("ix_ha_claims_claimed_ts", table_name="ha_claims")
