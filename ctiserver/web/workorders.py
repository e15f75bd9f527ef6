"""Work orders (工单): the status table, overdue flags, masking, and their storage.

Pure part first (no IO): `TRANSITIONS`, `is_overdue`, `visible`, `clock_of`. Then the
repository functions, each one transaction, writing the history row together with
the change so the two can never disagree. Deadlines (dispatch, reply, their reminders) come
from the one table, workorders.yaml (ctiserver/workorders/deadlines.py), when an order is accepted and
again when a supervisor reopens it.

    open ──▶ dispatched ──▶ resolved ──▶ closed
      └──────────────────────▲  │           │
                 reopened ◀─────┴───────────┘   (customer not satisfied: a supervisor reopens it)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import false, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ..workorders.deadlines import OrderClock
from .config import DesktopConfig
from .errors import ApiError
from .tables import work_order_history, work_orders

STATUSES = ("open", "dispatched", "resolved", "closed", "reopened")
OPEN_STATUSES = frozenset({"open", "dispatched", "reopened"})

TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"dispatched", "resolved"}),
    "dispatched": frozenset({"resolved"}),
    "resolved": frozenset({"closed", "reopened"}),
    "closed": frozenset({"reopened"}),
    "reopened": frozenset({"dispatched", "resolved"}),
}


def check_transition(current: str, target: str) -> None:
    """Raise a 409 ApiError naming both states when `current -> target` is not in the table."""
    if target not in TRANSITIONS.get(current, frozenset()):
        allowed = ", ".join(sorted(TRANSITIONS.get(current, frozenset()))) or "none"
        raise ApiError(409, "illegal-transition",
                       f"a work order cannot go from {current!r} to {target!r} (allowed: {allowed})")


def deadline_values(config: DesktopConfig, category: str, accepted_ts: float) -> dict[str, Any]:
    """The deadline columns of an order of `category` accepted at `accepted_ts` (422 if it takes none)."""
    if config.workorders.rules(category) is None:
        raise ApiError(422, "no-sla-for-category",
                       f"category {category!r} takes no work order (workorders.yaml: "
                       f"{', '.join(sorted(config.workorders.categories))})")
    d = config.workorders.deadlines(category, accepted_ts)
    return {"due_ts": d.due_ts, "warn_ts": d.warn_ts, "dispatch_due_ts": d.dispatch_due_ts,
            "dispatch_warn_ts": d.dispatch_warn_ts, "alerted": ""}


def clock_of(row: dict[str, Any]) -> OrderClock:
    """The deadline engine's view of a stored order."""
    return OrderClock(id=int(row["id"]), status=row["status"], dispatch_warn_ts=row.get("dispatch_warn_ts"),
                      dispatch_due_ts=row.get("dispatch_due_ts"), warn_ts=row.get("warn_ts"),
                      due_ts=row["due_ts"], alerted=frozenset(a for a in (row.get("alerted") or "").split(",") if a))


def is_overdue(row: dict[str, Any], now: float) -> bool:
    return row["status"] in OPEN_STATUSES and now > row["due_ts"]


def may_see(row: dict[str, Any], agent_no: str, role: str, config: DesktopConfig) -> bool:
    """An anonymous order exists only for the agent who took it and the identity roles (supervisors):
    to anyone else it is not there at all, so no search, list or customer history ties it to a caller."""
    return not row.get("anonymous") or role in config.identity_roles or row.get("created_by") == agent_no


def visible(row: dict[str, Any], role: str, config: DesktopConfig, now: float) -> dict[str, Any]:
    """The work order as `role` may see it: an anonymous complainant's identity is masked for others."""
    out = dict(row)
    out["overdue"] = is_overdue(row, now)
    if row.get("anonymous") and role not in config.identity_roles:
        out["customer_name"] = "匿名 anonymous"
        out["incoming_number"] = "***"
        out["customer_account"] = None
    return out


# --- storage ----------------------------------------------------------------

async def create(engine: AsyncEngine, *, fields: dict[str, Any], agent_no: str, now: float,
                 config: DesktopConfig) -> dict[str, Any]:
    """Insert a new open work order with its SLA due time and a first history row; returns the row."""
    row = {**fields, "created_ts": now, "updated_ts": now, "created_by": agent_no, "status": "open",
           **deadline_values(config, fields["category"], fields["call_time"]),  # accepted: the call
           "reopen_count": 0, "closed_ts": None}
    async with engine.begin() as conn:
        result = await conn.execute(insert(work_orders).values(**row))
        wo_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        await conn.execute(insert(work_order_history).values(
            work_order_id=wo_id, ts=now, agent_no=agent_no, from_status=None, to_status="open",
            unit=fields.get("unit"), note="created"))
    return {"id": wo_id, **row}


async def get(engine: AsyncEngine, wo_id: int) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(work_orders).where(work_orders.c.id == wo_id))).mappings().first()
        return dict(row) if row else None


async def history(engine: AsyncEngine, wo_id: int) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(work_order_history)
                                  .where(work_order_history.c.work_order_id == wo_id)
                                  .order_by(work_order_history.c.id))
        return [dict(r) for r in rows.mappings()]


async def change_status(engine: AsyncEngine, wo_id: int, *, target: str, agent_no: str, note: str,
                        unit: str | None, now: float, config: DesktopConfig) -> tuple[dict[str, Any], str]:
    """Move a work order along the table (optimistic: the UPDATE only applies to the status we read).

    Returns the new row and the previous status. Reopening accepts the order again: its deadlines
    start from now (the API lets only supervisors reopen).
    """
    async with engine.begin() as conn:
        row = (await conn.execute(select(work_orders).where(work_orders.c.id == wo_id))).mappings().first()
        if row is None:
            raise ApiError(404, "unknown-workorder", f"no work order {wo_id}")
        current = row["status"]
        check_transition(current, target)
        if target == "dispatched" and not (unit or row["unit"]):
            raise ApiError(422, "unit-required", "dispatching needs the responsible unit")
        values: dict[str, Any] = {"status": target, "updated_ts": now}
        if unit:
            values["unit"] = unit
        if target == "closed":
            values["closed_ts"] = now
        if target == "reopened":
            values["reopen_count"] = row["reopen_count"] + 1
            values["closed_ts"] = None
            if config.workorders.rules(row["category"]) is not None:
                values.update(deadline_values(config, row["category"], now))
        done = await conn.execute(update(work_orders)
                                  .where(work_orders.c.id == wo_id, work_orders.c.status == current)
                                  .values(**values))
        if done.rowcount != 1:
            raise ApiError(409, "concurrent-change", f"work order {wo_id} changed meanwhile; reload and retry")
        await conn.execute(insert(work_order_history).values(
            work_order_id=wo_id, ts=now, agent_no=agent_no, from_status=current, to_status=target,
            unit=unit, note=note))
    return {**dict(row), **values}, current


async def list_for(engine: AsyncEngine, *, account: str | None, number: str | None, status: str | None,
                   overdue_at: float | None, limit: int, anonymous_of: str | None = None,
                   all_anonymous: bool = True) -> list[dict[str, Any]]:
    """Work orders by customer account or calling number (or overdue ones), newest first.

    Without `all_anonymous`, anonymous orders are left out except those taken by `anonymous_of`
    (see `may_see`): in the query itself, so a search's results and its limit never hold them."""
    q = select(work_orders)
    if not all_anonymous:
        mine = work_orders.c.created_by == anonymous_of if anonymous_of is not None else false()
        q = q.where(or_(work_orders.c.anonymous.is_(False), mine))
    if account is not None:
        q = q.where(work_orders.c.customer_account == account)
    if number is not None:
        q = q.where(work_orders.c.incoming_number == number)
    if status is not None:
        q = q.where(work_orders.c.status == status)
    if overdue_at is not None:
        q = q.where(work_orders.c.status.in_(sorted(OPEN_STATUSES)), work_orders.c.due_ts < overdue_at)
    q = q.order_by(work_orders.c.id.desc()).limit(limit)
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(q)).mappings()]


async def open_orders(engine: AsyncEngine, *, limit: int = 10_000) -> list[dict[str, Any]]:
    """Orders not yet replied (open, dispatched, reopened): what reminders and escalations are about."""
    q = (select(work_orders).where(work_orders.c.status.in_(sorted(OPEN_STATUSES)))
         .order_by(work_orders.c.due_ts).limit(limit))
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(q)).mappings()]


async def mark_alerted(engine: AsyncEngine, wo_id: int, *, due_ts: float, was: str, now: str) -> bool:
    """Record the alerts sent for an order's current deadlines (optimistic: only if neither its alerts nor
    its deadline changed meanwhile, e.g. by a reopen); False if they did."""
    async with engine.begin() as conn:
        done = await conn.execute(update(work_orders)
                                  .where(work_orders.c.id == wo_id, work_orders.c.alerted == was,
                                         work_orders.c.due_ts == due_ts)
                                  .values(alerted=now))
        return bool(done.rowcount == 1)
