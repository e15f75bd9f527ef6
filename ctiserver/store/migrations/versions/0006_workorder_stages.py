"""Work-order stages: the dispatch deadline and its reminder, the reply reminder, and the alerts sent.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("work_orders") as batch:
        batch.add_column(sa.Column("dispatch_warn_ts", sa.Float()))
        batch.add_column(sa.Column("dispatch_due_ts", sa.Float()))
        batch.add_column(sa.Column("warn_ts", sa.Float()))
        # reminders/escalations already sent for the current deadlines, e.g. "reply.reminder,reply.escalation"
        batch.add_column(sa.Column("alerted", sa.String(100), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("work_orders") as batch:
        for name in ("alerted", "warn_ts", "dispatch_due_ts", "dispatch_warn_ts"):
            batch.drop_column(name)
