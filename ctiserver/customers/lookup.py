"""CustomerLookup over the IVR's data provider, with recent contacts from the desktop's own tables.

The pop needs the record the IVR already reads (account, name, tier, area, arrears),
the outage in the caller's area, and what happened on their recent calls: the last
dispositions and work orders for the account or number. No PIN hash ever leaves here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Integer, column, func, or_, select, table
from sqlalchemy.ext.asyncio import AsyncEngine

from ..clock import Clock
from ..store.engine import reading
from ..web.tables import dispositions, work_orders
from .data import DataProvider

RECENT = 5
_reports = table("outage_reports", column("outage_id", Integer))  # ctiserver/outages/store.py
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
        who_d = [dispositions.c.customer_account == account]
        who_w = [work_orders.c.customer_account == account]
        if phone:
            who_d.append(dispositions.c.caller_number == phone)
            who_w.append(work_orders.c.incoming_number == phone)
        anonymous_call = (select(work_orders.c.id)
                          .where(work_orders.c.anonymous.is_(True), work_orders.c.call_id.is_not(None),
                                 work_orders.c.call_id == dispositions.c.call_id)
                          .exists())
        async with reading(self.engine) as conn:
            disp = (await conn.execute(select(dispositions.c.ts, dispositions.c.category, dispositions.c.note)
                                       .where(or_(*who_d), ~anonymous_call)
                                       .order_by(dispositions.c.ts.desc()).limit(RECENT)))
            wos = (await conn.execute(select(work_orders.c.created_ts, work_orders.c.category, work_orders.c.id,
                                             work_orders.c.status)
                                      .where(or_(*who_w), work_orders.c.anonymous.is_(False))
                                      .order_by(work_orders.c.created_ts.desc()).limit(RECENT)))
            items = [{"ts": r.ts, "category": r.category, "note": r.note[:200]} for r in disp]
            items += [{"ts": r.created_ts, "category": r.category, "note": "", "workorder": r.id, "status": r.status}
                      for r in wos]
        items.sort(key=lambda x: x["ts"], reverse=True)
        return items[:RECENT]
