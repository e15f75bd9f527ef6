"""Outages entered, changed and closed by dispatchers; what follows from each (the feature's service).

    add ─▶ store (record, audit, the IVR's rows: live for the next call) ─▶ warnings (notice period)
        └─ planned / temporary: notices (model.notice_plan): SMS through the SMS service at the lead
           time, and the important customers' calls handed to `call_notices` (the outbound campaign)
    update ─▶ store (audit: what changed)       close ─▶ store (end time; the IVR stops announcing it)
        └─ `restoration`: "power restored" to its customers (SMS to all, a call to the important ones)
    a fault call from a customer it covers ─▶ attach_report (the count the agent sees)
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..clock import Clock
from ..events import Event, Kind
from .model import (
    Customer,
    Notice,
    Outage,
    OutageChange,
    OutageIn,
    OutagesConfig,
    merged,
    notice_plan,
    warnings_for,
    when,
)
from .store import OutageStore

log = logging.getLogger(__name__)

CallNotices = Callable[[Outage, Sequence[Notice]], Awaitable[str | None]]
Restoration = Callable[[Outage, Sequence[Customer]], Awaitable[dict[str, int]]]


@dataclass
class Saved:
    outage: Outage
    warnings: list[str] = field(default_factory=list)
    notices: dict[str, int] = field(default_factory=dict)  # channel -> customers told (or to be)

    def public(self) -> dict[str, Any]:
        from .store import public

        return {"outage": public(self.outage), "warnings": self.warnings, "notices": self.notices}


class OutageService:
    def __init__(self, store: OutageStore, cfg: OutagesConfig, clock: Clock, *,
                 sms: Callable[[Outage, Sequence[Notice]], Awaitable[int]] | None = None,
                 call_notices: CallNotices | None = None, emit: Callable[[Event], None] | None = None,
                 restoration: Restoration | None = None) -> None:
        self.store, self.cfg, self.clock = store, cfg, clock
        self.restoration = restoration
        self.emit = emit
        self.sms = sms
        self.call_notices = call_notices

    async def add(self, o: OutageIn, user: str) -> Saved:
        now = self.clock.now()
        saved = Saved(await self.store.add(o, user, now), warnings_for(o.kind, o.start_ts, now, self.cfg))
        self._event(saved.outage, "add", user)
        for w in saved.warnings:
            log.warning("outage %s: %s", saved.outage.id, w)
        if o.kind in ("planned", "temporary"):
            saved.notices = await self._notify(saved.outage, now)
        return saved

    async def _notify(self, outage: Outage, now: float) -> dict[str, int]:
        plan = notice_plan(outage, await self.store.customers_in(outage.scope), now, self.cfg)
        counts: dict[str, int] = {}
        sms = [n for n in plan if n.channel == "sms"]
        calls = [n for n in plan if n.channel == "phone"]
        if sms and self.sms is not None:
            try:
                counts["sms"] = await self.sms(outage, sms)
            except Exception as exc:  # the outage is saved; the notices are logged as missing
                log.error("outage %s: SMS notices not queued: %s", outage.id, exc)
        if calls and self.call_notices is not None:
            try:
                campaign = await self.call_notices(outage, calls)
                counts["phone"] = len(calls) if campaign else 0
            except Exception as exc:
                log.error("outage %s: notice calls not arranged: %s", outage.id, exc)
        return counts

    async def update(self, oid: int, change: OutageChange, user: str) -> Saved:
        now = self.clock.now()
        old = await self.store.get(oid)
        new = merged(old, change)
        changed = change.model_dump(exclude_none=True)
        saved = Saved(await self.store.update(oid, new, user, now, changed))
        self._event(saved.outage, "update", user)
        if change.start_ts is not None:
            saved.warnings = warnings_for(new.kind, new.start_ts, now, self.cfg)
        return saved

    async def close(self, oid: int, user: str, end_ts: float | None = None, *,
                    also_tell: Sequence[Customer] = ()) -> Saved:
        """Closed (once: a closed outage raises OutageClosed); its customers, and `also_tell` (those who
        reported the fault), are told the power is back."""
        now = self.clock.now()
        saved = Saved(await self.store.close(oid, user, now, end_ts if end_ts is not None else now))
        self._event(saved.outage, "close", user)
        if self.restoration is not None:
            try:
                people = [*await self.store.customers_in(saved.outage.scope), *also_tell]
                saved.notices = await self.restoration(saved.outage, people)
            except Exception as exc:  # the outage is closed; the notices are logged as missing
                log.error("outage %s: restoration notices not sent: %s", oid, exc)
        return saved

    def _event(self, outage: Outage, action: str, user: str) -> None:
        if self.emit is not None:
            self.emit(Event(Kind.OUTAGE, self.clock.now(), data={
                "id": outage.id, "action": action, "kind": outage.kind, "user": user,
                "areas": outage.scope.areas, "start_ts": outage.start_ts,
                "expected_restore_ts": outage.expected_restore_ts, "end_ts": outage.end_ts}))

    async def attach(self, outage: Outage, *, call_id: str = "", account: str = "", number: str = "",
                     workorder_id: int | None = None) -> int:
        """A fault call from a customer inside `outage`: attached to it; the count of reports now."""
        n = await self.store.attach_report(outage.id, self.clock.now(), call_id=call_id, account=account,
                                           number=number, workorder_id=workorder_id)
        if self.emit is not None:
            self.emit(Event(Kind.OUTAGE_REPORT, self.clock.now(), call_id=call_id or None,
                            data={"outage": outage.id, "reports": n, "account": account}))
        return n

    async def attach_workorder(self, oid: int, workorder_id: int, *, call_id: str = "", account: str = "",
                               number: str = "") -> int:
        """An agent attaches a work order to an open outage (the desktop's outage form); the count of reports."""
        n, changed = await self.store.attach_workorder(oid, self.clock.now(), workorder_id, call_id=call_id,
                                                       account=account, number=number)
        if changed and self.emit is not None:
            self.emit(Event(Kind.OUTAGE_REPORT, self.clock.now(), call_id=call_id or None,
                            data={"outage": oid, "reports": n, "account": account, "workorder": workorder_id}))
        return n

    async def listing(self, status: str | None = None) -> list[Outage]:
        return await self.store.listing(status=status)

    async def for_customer(self, *, area: str = "", account: str = "") -> Outage | None:
        return await self.store.open_for(area=area, account=account, now=self.clock.now())

    def fields(self, outage: Outage, lang: str) -> dict[str, str]:
        """What a notice or a message says about the outage."""
        cal = self.cfg.calendar
        end = outage.end_ts or outage.expected_restore_ts
        return {"reason": outage.cause, "start": when(outage.start_ts, cal, lang), "end": when(end, cal, lang),
                "expected_restore": when(outage.expected_restore_ts, cal, lang)}
