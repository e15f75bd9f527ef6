"""IVR data: customers, the phone numbers bound to them, and outages (as in ctiserver/customers/data.py).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("account", sa.String(20), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("tier", sa.String(20), nullable=False),
        sa.Column("area", sa.String(60), nullable=False),
        sa.Column("category", sa.String(30), nullable=False),
        sa.Column("arrears", sa.Numeric(12, 2), nullable=False),
        sa.Column("due_date", sa.Date()),
        sa.Column("last_payment", sa.Numeric(12, 2)),
        sa.Column("last_payment_date", sa.Date()),
        sa.Column("pin_hash", sa.String(200)),
        sa.Column("important", sa.Boolean(), nullable=False),
        sa.Column("updated_ts", sa.Float(), nullable=False),
    )
    op.create_index("ix_customers_area", "customers", ["area"])
    op.create_table(
        "customer_phones",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("account", sa.String(20), sa.ForeignKey("customers.account", ondelete="CASCADE"), nullable=False),
    )
    op.create_index("ux_customer_phones", "customer_phones", ["phone", "account"], unique=True)
    op.create_index("ix_customer_phones_phone", "customer_phones", ["phone"])
    op.create_table(
        "outages",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("area", sa.String(60), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("start_ts", sa.Float(), nullable=False),
        sa.Column("end_ts", sa.Float()),
        sa.Column("expected_restore_ts", sa.Float()),
    )
    op.create_index("ix_outages_area_start", "outages", ["area", "start_ts"])


def downgrade() -> None:
    op.drop_table("outages")
    op.drop_table("customer_phones")
    op.drop_table("customers")
