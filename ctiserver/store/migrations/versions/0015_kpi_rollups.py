"""KPI half-hour rollups of the facts (kpi/rollup.py): built by the reports on demand, dropped by the fact
sink when their facts change, so nothing needs filling after the upgrade.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CALL_SUM_KEYS = ("offered", "ivr", "ivr_contained", "wanted", "queued", "blocked", "answered", "wait_ms",
                 "within_sl", "within_tier", "abandoned", "short_abandoned", "abandon_ms", "short_abandon_ms",
                 "abandoned_ringing", "callbacks", "queued_callbacks", "abandon_callbacks", "overflowed",
                 "timed_out", "lost", "in_queue", "queue_exits", "queue_ms", "transferred", "fcr_repeat_base",
                 "fcr_no_repeat", "fcr_disp_base", "fcr_resolved", "fcr_both_base", "fcr_both",
                 "answered_offers_1", "answered_offers_2", "answered_offers_3plus")
LEG_SUM_KEYS = ("offers", "answers", "ronas", "transfers", "handled", "talk_n", "talk_ms", "hold_n", "hold_ms",
                "ring_n", "ring_ms")


def _keys() -> list[sa.Column]:
    return [sa.Column("cfg_key", sa.String(16), nullable=False), sa.Column("bucket", sa.BigInteger(), nullable=False),
            sa.Column("hh", sa.BigInteger(), nullable=False)]


def upgrade() -> None:
    for name, sums in (("call_rollups", CALL_SUM_KEYS), ("leg_rollups", LEG_SUM_KEYS)):
        op.create_table(name, *_keys(), sa.Column("queue", sa.String(40)), sa.Column("tier", sa.String(20)),
                        *(sa.Column(k, sa.BigInteger(), nullable=False) for k in sums))
        op.create_index(f"ix_{name}_key_bucket", name, ["cfg_key", "bucket"])
    op.create_table("agent_time_rollups", *_keys(), sa.Column("state", sa.String(130)),
                    sa.Column("ms", sa.BigInteger(), nullable=False))
    op.create_index("ix_agent_time_rollups_key_bucket", "agent_time_rollups", ["cfg_key", "bucket"])
    op.create_table("rollup_buckets",
                    sa.Column("cfg_key", sa.String(16), primary_key=True),
                    sa.Column("bucket", sa.BigInteger(), primary_key=True, autoincrement=False))
    op.create_index("ix_rollup_buckets_bucket", "rollup_buckets", ["bucket"])


def downgrade() -> None:
    for name in ("rollup_buckets", "agent_time_rollups", "leg_rollups", "call_rollups"):
        op.drop_table(name)
