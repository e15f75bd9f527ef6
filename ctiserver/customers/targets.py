"""Campaign targets from the customer tables (defined by the IVR: `customers`, `customer_phones`).

We depend only on these column names, through lightweight `table()` constructs,
not on the IVR's module: customers(account, name, tier, area, category, arrears,
due_date, important) and customer_phones(phone, account). A customer with several
phones gives one target per phone; contact validation then drops bad numbers and
the do-not-call list as for a CSV.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Date, Numeric, String, and_, column, select, table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..outbound.contacts import CustomerTarget

customers = table(
    "customers", column("account", String), column("name", String), column("tier", String),
    column("area", String), column("category", String), column("arrears", Numeric),
    column("due_date", Date), column("important", Boolean))
phones = table("customer_phones", column("phone", String), column("account", String))


def billing_month_of(due: date | None) -> str:
    """Bills are issued for the month before the one they fall due in (due 2026-11-15: 2026-10)."""
    if due is None:
        return ""
    year, month = (due.year, due.month - 1) if due.month > 1 else (due.year - 1, 12)
    return f"{year}-{month:02d}"


def class_of(category: str | None) -> str:
    """A customer category (CRM column) as the calling-hours class: residential, else business."""
    return "residential" if (category or "residential").lower() in ("residential", "居民") else "business"


def _target(row: Any) -> CustomerTarget:
    return CustomerTarget(
        account=row.account, name=row.name or "", phone=row.phone or "", area=row.area or "",
        important=bool(row.important), tier=row.tier or "",
        customer_class=class_of(row.category),
        billing_month=billing_month_of(row.due_date),
        arrears=Decimal(str(row.arrears)) if row.arrears is not None else None, due_date=row.due_date)


class SqlCustomerSource:
    """`CustomerSource` over the customer tables."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def _query(self) -> Any:
        return (select(customers.c.account, customers.c.name, customers.c.tier, customers.c.area,
                       customers.c.category, customers.c.arrears, customers.c.due_date, customers.c.important,
                       phones.c.phone)
                .join(phones, phones.c.account == customers.c.account)
                .order_by(customers.c.important.desc(), customers.c.account, phones.c.phone))

    async def customers_in_areas(self, areas: Sequence[str]) -> Sequence[CustomerTarget]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(self._query().where(customers.c.area.in_(list(areas))))
            return [_target(r) for r in rows]

    async def customers_in_arrears(self, min_amount: Decimal, as_of: date) -> Sequence[CustomerTarget]:
        """Customers owing at least `min_amount` whose due date has passed by `as_of`."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(self._query().where(and_(
                customers.c.arrears >= min_amount, customers.c.arrears > 0,
                customers.c.due_date.is_not(None), customers.c.due_date < as_of)))
            return [_target(r) for r in rows]


async def customer_class(engine: AsyncEngine, account: str | None) -> str:
    """`business` or `residential` (the default, also for an unknown account) from the customer's category."""
    if not account:
        return "residential"
    try:
        async with engine.connect() as conn:
            category = (await conn.execute(select(customers.c.category)
                                           .where(customers.c.account == account))).scalar()
    except SQLAlchemyError:  # no customer tables in this database
        return "residential"
    return class_of(category)
