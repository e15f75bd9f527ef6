"""What the customers are told as a repair order moves (issue 16): on dispatch an apology with the crew's
arrangement to every customer who reported the fault; on restoration the outage is closed, so "power
restored" goes to the reporters and every customer the outage covers (SMS; a call too for the important
ones), and the work orders behind the repair get their satisfaction callback. Through the SMS service
(its rules: quiet hours, do-not-call, caps; a message not delivered falls back to a call)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import String, column, select, table

from ..outages.model import Customer, when
from ..outages.service import OutageService
from ..outages.store import UnknownOutage
from ..sms.service import SmsRequest, SmsService
from ..web.tables import work_orders
from .engine import Order
from .model import CrewsConfig
from .service import Hook

customers = table("customers", column("account", String), column("name", String), column("area", String))


async def _names(svc: OutageService, accounts: list[str]) -> dict[str, str]:
    accounts = [a for a in set(accounts) if a]
    if not accounts:
        return {}
    async with svc.store.engine.connect() as conn:
        rows = await conn.execute(select(customers.c.account, customers.c.name)
                                  .where(customers.c.account.in_(accounts)))
        return {r.account: r.name or "" for r in rows}


def apology(sms: SmsService, outages: OutageService, crews: CrewsConfig, arrive_due: Any) -> Hook:
    """`arrive_due(order) -> ts`: the arrival deadline the apology promises."""

    async def on_dispatch(order: Order, row: dict[str, Any]) -> None:
        oid = row.get("outage_id")
        if oid is None:
            return
        reporters = await outages.store.reporters(int(oid))
        try:
            outage = await outages.store.get(int(oid))
        except UnknownOutage:
            return
        crew = crews.crew(order.crew)
        cal = outages.cfg.calendar
        names = await _names(outages, [r["account"] for r in reporters])
        seen: set[str] = set()
        reqs = []
        for r in reporters:
            if not r["number"] or r["number"] in seen:
                continue
            seen.add(r["number"])
            reqs.append(SmsRequest("repair_apology", r["number"], {
                "name": names.get(r["account"], ""), "area": order.area, "crew": crew.team if crew else order.crew,
                "crew_phone": crew.phone if crew else "", "arrive_by": when(arrive_due(order), cal, "zh"),
                "restore_by": when(outage.expected_restore_ts, cal, "zh")},
                account=r["account"], area=order.area, ref=f"repair:{order.id}"))
        if reqs:
            await sms.send_many(reqs)

    return on_dispatch


def restored(outages: OutageService) -> Hook:
    """Restoration closes the order's outage, and so tells its customers and those who reported the fault
    (OutageService.close: SMS to all, a call to the important ones); an outage a dispatcher closed already
    told them then."""

    async def on_restore(order: Order, row: dict[str, Any]) -> None:
        oid = row.get("outage_id")
        if oid is None:
            return
        try:
            outage = await outages.store.get(int(oid))
        except UnknownOutage:
            return
        if outage.status != "open":
            return
        reporters = await outages.store.reporters(outage.id)
        names = await _names(outages, [r["account"] for r in reporters])
        also = [Customer(r["account"] or "", names.get(r["account"], ""), r["number"] or "", order.area, False)
                for r in reporters if r["number"]]
        await outages.close(outage.id, f"crew:{order.crew}", order.restored_ts, also_tell=also)

    return on_restore


CallbackRequest = Callable[..., Awaitable[None]]


def satisfaction(outages: OutageService, request_callback: CallbackRequest) -> Hook:
    """A finished repair order's satisfaction callback (回访): each work order behind it (the order's own and
    those of the fault calls attached to its outage) goes to outbound's callback rules (who is called, by
    an agent or the survey campaign, is theirs to decide: outbound.yaml callbacks)."""

    async def on_restore(order: Order, row: dict[str, Any]) -> None:
        ids = [int(row["workorder_id"])] if row.get("workorder_id") else []
        if row.get("outage_id") is not None:
            ids += [int(r["workorder_id"]) for r in await outages.store.reporters(int(row["outage_id"]))
                    if r.get("workorder_id")]
        ids = list(dict.fromkeys(ids))
        if not ids:
            return
        async with outages.store.engine.connect() as conn:
            found = (await conn.execute(select(work_orders).where(work_orders.c.id.in_(ids)))).all()
        for wo in found:
            await request_callback(workorder_id=wo.id, number=wo.incoming_number, category=wo.category,
                                   account=wo.customer_account, requested=True, anonymous=bool(wo.anonymous),
                                   call_id=wo.call_id, agent_id=wo.created_by)

    return on_restore
