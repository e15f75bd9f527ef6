"""Deferred sinks' marks (store/deferred.py): where a writer's KPI facts may lag its events after a crash.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table("sink_marks",
                    sa.Column("writer", sa.String(255), primary_key=True),
                    sa.Column("sink", sa.String(40), primary_key=True),
                    sa.Column("pending_since", sa.Float()))


def downgrade() -> None:
    op.drop_table("sink_marks")
