"""KPI facts: one row per call, per agent-leg event and per agent state, kept by the event store's fact sink.

After upgrading a database that already holds events, derive their facts once with
`ctiserver facts rebuild --from ... --to ...` (docs/kpis.md, "Facts").

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "call_facts",
        sa.Column("call_id", sa.String(80), primary_key=True),
        sa.Column("t0", sa.Float(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("is_out", sa.Integer(), nullable=False),
        sa.Column("ivr", sa.Integer(), nullable=False),
        sa.Column("ivr_self", sa.Integer(), nullable=False),
        sa.Column("ivr_agent", sa.Integer(), nullable=False),
        *(sa.Column(n, sa.Float()) for n in ("t_enq", "t_ans", "t_ab", "t_ovf", "t_cb", "t_blk", "t_end")),
        *(sa.Column(n, sa.Integer(), nullable=False)
          for n in ("ovf_timeout", "offers", "ronas", "transferred", "disposed", "resolved")),
        sa.Column("caller", sa.String(80)),
        sa.Column("queue", sa.String(40)),
        sa.Column("tier", sa.String(20)),
        sa.Column("agent", sa.String(40)),
        sa.Column("ring_ms", sa.BigInteger()),
        sa.Column("talk_ms", sa.BigInteger()),
        sa.Column("hold_ms", sa.BigInteger()),
        sa.Column("ivr_outcome", sa.String(40)),
        sa.Column("callback_outcome", sa.String(40)),
        sa.Column("qc_score", sa.Float()),
    )
    op.create_index("ix_call_facts_bucket", "call_facts", ["bucket"])
    op.create_index("ix_call_facts_caller_t0", "call_facts", ["caller", "t0"])
    op.create_table(
        "leg_facts",
        sa.Column("call_id", sa.String(80), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("agent", sa.String(40)),
        sa.Column("queue", sa.String(40)),
        sa.Column("tier", sa.String(20)),
        sa.Column("ring_ms", sa.BigInteger()),
        sa.Column("talk_ms", sa.BigInteger()),
        sa.Column("hold_ms", sa.BigInteger()),
    )
    op.create_index("ix_leg_facts_bucket", "leg_facts", ["bucket"])
    op.create_table(
        "agent_intervals",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("agent", sa.String(40), nullable=False),
        sa.Column("t_start", sa.Float(), nullable=False),
        sa.Column("t_end", sa.Float()),
        sa.Column("state", sa.String(40)),
        sa.Column("reason", sa.String(80)),
        sa.Column("scheduled", sa.String(40)),
    )
    op.create_index("ix_agent_intervals_agent_start", "agent_intervals", ["agent", "t_start"])
    op.create_index("ix_agent_intervals_start", "agent_intervals", ["t_start"])


def downgrade() -> None:
    for name in ("agent_intervals", "leg_facts", "call_facts"):
        op.drop_table(name)
