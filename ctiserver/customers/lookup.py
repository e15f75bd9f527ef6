"""CustomerLookup over the IVR's data provider, with recent contacts from the desktop's own tables.

The pop needs the record the IVR already reads (account, name, tier, area, arrears),
the outage in the caller's area, and what happened on their recent calls: the last
dispositions and work orders for the account or number. No PIN hash ever leaves here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, Select, bindparam, column, func, or_, select, table
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import BindParameter

from ..clock import Clock
from ..store.engine import reading
from ..web.tables import dispositions, work_orders
from .data import DataProvider

RECENT = 5
_reports = table("outage_reports", column("outage_id", Integer))  # ctiserver/outages/store.py


def _history_statements() -> tuple[list[Select[Any]], list[Select[Any]]]:
    """The history's two queries, by account alone [0] or by account or phone [1]; built once (building a
    statement cost SQLAlchemy more than running it, once per call popped)."""
    d, w = dispositions.c, work_orders.c
    anonymous_call = (select(w.id).where(w.anonymous.is_(True), w.call_id.is_not(None), w.call_id == d.call_id)
                      .exists())
    account: BindParameter[str] = bindparam("account")
    phone: BindParameter[str] = bindparam("phone")
    disp, wos = [], []
    for who_d, who_w in (([d.customer_account == account], [w.customer_account == account]),
                         ([d.customer_account == account, d.caller_number == phone],
                          [w.customer_account == account, w.incoming_number == phone])):
        disp.append(select(d.ts, d.category, d.note).where(or_(*who_d), ~anonymous_call)
                    .order_by(d.ts.desc()).limit(RECENT))
        wos.append(select(w.created_ts, w.category, w.id, w.status).where(or_(*who_w), w.anonymous.is_(False))
                   .order_by(w.created_ts.desc()).limit(RECENT))
    return disp, wos


_DISPOSITIONS, _WORK_ORDERS = _history_statements()
_FIELDS = ("account", "name", "tier", "area", "category", "important", "arrears", "due_date")


class IvrCustomerLookup:
    def __init__(self, provider: DataProvider, engine: AsyncEngine, clock: Clock) -> None:
        self.provider = provider
        self.engine = engine
        self.clock = clock

    async def by_phone(self, phone: str) -> dict[str, Any] | None:
        found = await self.provider.lookup("customer_by_caller", {"number": phone}, self.clock.now())
        return await self._record(found, phone)

    async def by_account(self, account: str) -> dict[str, Any] | None:
        found = await self.provider.lookup("customer_by_account", {"account": account}, self.clock.now())
        return await self._record(found, None)

    async def _record(self, found: dict[str, Any] | None, phone: str | None) -> dict[str, Any] | None:
        if not found or not found.get("found", True):
            return None
        record = {k: found.get(k) for k in _FIELDS}
        record["outage"] = await self._outage(str(found.get("area") or ""))
        record["history"] = await self._history(str(found["account"]), phone)
        return record

    async def _outage(self, area: str) -> dict[str, Any] | None:
        if not area:
            return None
        o = await self.provider.lookup("outages", {"area": area}, self.clock.now())
        if not o:
            return None
        if o.get("active"):
            out = {"kind": o.get("kind"), "reason": o.get("reason"), "expected_restore": o.get("expected_restore")}
            if o.get("outage_id") is not None:  # entered by a dispatcher: its number and the fault calls attached
                out.update(id=o["outage_id"], reports=await self._reports(int(o["outage_id"])))
            return out
        if o.get("planned"):
            return {"kind": "planned", "reason": o.get("planned_reason"),
                    "expected_restore": f"{o.get('planned_start')} - {o.get('planned_end')}"}
        return None

    async def _reports(self, outage_id: int) -> int:
        async with reading(self.engine) as conn:
            return int((await conn.execute(select(func.count()).select_from(_reports)
                                           .where(_reports.c.outage_id == outage_id))).scalar() or 0)

    async def _history(self, account: str, phone: str | None) -> list[dict[str, Any]]:
        """The customer's recent dispositions and work orders. Anonymous complaints are not the
        customer's history: neither the order nor the disposition of its call is listed (the record
        is shown to whichever agent takes the next call; supervisors search work orders instead)."""
        by = 1 if phone else 0
        async with reading(self.engine) as conn:
            disp = await conn.execute(_DISPOSITIONS[by], {"account": account, "phone": phone})
            wos = await conn.execute(_WORK_ORDERS[by], {"account": account, "phone": phone})
            items = [{"ts": r.ts, "category": r.category, "note": r.note[:200]} for r in disp]
            items += [{"ts": r.created_ts, "category": r.category, "note": "", "workorder": r.id, "status": r.status}
                      for r in wos]
        items.sort(key=lambda x: x["ts"], reverse=True)
        return items[:RECENT]
