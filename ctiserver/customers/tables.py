"""The customer tables on the shared metadata (migration 0002): what the IVR's lookups and the desktop read.

    customers        one row per electricity account (tier, area, arrears, due date, PIN hash)
    customer_phones  numbers bound to an account (a caller from one is identified by number)
    outages          planned and fault outages per area, with expected restoration
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Date, Float, ForeignKey, Index, Integer, Numeric, String, Table

from ..store.schema import IdType, metadata

TIERS = ("vip", "priority", "normal", "blacklist")
OUTAGE_KINDS = ("planned", "fault")  # the sample file's; dispatchers also enter temporary and load_limit
ANNOUNCED = ("planned", "temporary")  # known ahead: the IVR tells callers of the next one

customers = Table(
    "customers",
    metadata,
    Column("account", String(20), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("tier", String(20), nullable=False, default="normal"),
    Column("area", String(60), nullable=False, index=True),
    Column("category", String(30), nullable=False, default="residential"),
    Column("arrears", Numeric(12, 2), nullable=False, default=0),
    Column("due_date", Date),
    Column("last_payment", Numeric(12, 2)),
    Column("last_payment_date", Date),
    Column("pin_hash", String(200)),
    Column("important", Boolean, nullable=False, default=False),
    Column("updated_ts", Float, nullable=False, default=0.0),
)

customer_phones = Table(
    "customer_phones",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("phone", String(20), nullable=False),
    Column("account", String(20), ForeignKey("customers.account", ondelete="CASCADE"), nullable=False),
    Index("ux_customer_phones", "phone", "account", unique=True),
    Index("ix_customer_phones_phone", "phone"),
)

outages = Table(
    "outages",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("area", String(60), nullable=False),
    Column("kind", String(10), nullable=False),  # planned | fault
    Column("reason", String(200), nullable=False),
    Column("start_ts", Float, nullable=False),
    Column("end_ts", Float),  # when power came back (None: not yet)
    Column("expected_restore_ts", Float),
    # the outage a dispatcher entered (ctiserver/outages/), NULL for the sample data's rows (migration 0009)
    Column("outage_id", Integer, index=True),
    Index("ix_outages_area_start", "area", "start_ts"),
)


class CustomerEdits:
    """How many times this process rewrote the customer tables: the record cache (data.py) starts afresh
    when it changes. Bumped by every writer of `customers`/`customer_phones` in this code base."""

    count = 0

    @classmethod
    def edited(cls) -> None:
        cls.count += 1

