"""What the customers are told as a repair order moves (issue 16): on dispatch an apology with the crew's
arrangement to every customer who reported the fault; on restoration the outage is closed and a
"power restored" message goes to the reporters and every customer the outage covers. Through the SMS
service (its rules: quiet hours, do-not-call, caps; a message not delivered falls back to a call)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, column, select, table

from ..outages.model import when
from ..outages.service import OutageService
from ..outages.store import UnknownOutage
from ..sms.service import SmsRequest, SmsService
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


def restored(sms: SmsService, outages: OutageService) -> Hook:
    async def on_restore(order: Order, row: dict[str, Any]) -> None:
        oid = row.get("outage_id")
        if oid is None:
            return
        try:
            outage = await outages.store.get(int(oid))
        except UnknownOutage:
            return
        if outage.status == "open":
            outage = (await outages.close(outage.id, f"crew:{order.crew}", order.restored_ts)).outage
        cal = outages.cfg.calendar
        at = when(order.restored_ts, cal, "zh")
        people = [(c.phone, c.account, c.name, c.area) for c in await outages.store.customers_in(outage.scope)]
        reporters = await outages.store.reporters(outage.id)
        names = await _names(outages, [r["account"] for r in reporters])
        people += [(r["number"], r["account"], names.get(r["account"], ""), order.area) for r in reporters]
        seen: set[str] = set()
        reqs = []
        for phone, account, name, area in people:
            if not phone or phone in seen:
                continue
            seen.add(phone)
            reqs.append(SmsRequest("restored", phone, {"name": name, "area": area or order.area, "restored_at": at},
                                   account=account, area=area, ref=f"repair:{order.id}"))
        if reqs:
            await sms.send_many(reqs)

    return on_restore
