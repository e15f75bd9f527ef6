"""An announced outage's notices, through the two channels: SMS (ctiserver/sms/) at the lead time, and a
notice campaign (ctiserver/outbound/) that calls the important customers. Shared by the server and the
CLI: both only write rows (the SMS service's sender and the dialer of the running server send them).

When an outage is closed, its customers are told the power is back the same two ways: a "restored" SMS to
every one of them, and a call to the important ones (hospitals, the VIP tier: `important` in the customer
data), a campaign `restored-<id>` of kind restored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from ..outbound.model import CampaignSpec, ContactIn, OutageParams, RestoredParams, Spoken
from ..outbound.store import OutboundStore
from ..sms.service import SmsRequest, SmsService
from .model import Customer, Notice, Outage, OutagesConfig, when

IMPORTANT_PRIORITY = 10  # outbound.store.IMPORTANT: reported by name when missed


def _words(outage: Outage, cfg: OutagesConfig, lang: str) -> dict[str, str]:
    end = outage.end_ts or outage.expected_restore_ts
    return {"reason": outage.cause, "start": when(outage.start_ts, cfg.calendar, lang),
            "end": when(end, cfg.calendar, lang)}


def sms_notices(sms: SmsService, cfg: OutagesConfig) -> Callable[[Outage, Sequence[Notice]], Awaitable[int]]:
    """SMS notices as stored messages, due at the lead time (`ref` outage:<id>)."""

    async def send(outage: Outage, notices: Sequence[Notice]) -> int:
        reqs = [SmsRequest("outage_notice", n.customer.phone,
                           {**_words(outage, cfg, n.customer.lang), "name": n.customer.name, "area": n.customer.area},
                           lang=n.customer.lang, account=n.customer.account, area=n.customer.area,
                           ref=f"outage:{outage.id}", due=n.due) for n in notices]
        return len(await sms.send_many(reqs)) if reqs else 0

    return send


def call_notices(store: OutboundStore, cfg: OutagesConfig,
                 now: Callable[[], float]) -> Callable[[Outage, Sequence[Notice]], Awaitable[str | None]]:
    """The important customers' notice calls: a campaign `outage-<id>` (kind outage_notice), started; each
    contact is not called before its notice's time (the lead time, inside the notice windows)."""

    async def arrange(outage: Outage, notices: Sequence[Notice]) -> str | None:
        if not notices:
            return None
        zh, en = _words(outage, cfg, "zh"), _words(outage, cfg, "en")
        areas = list(dict.fromkeys([*outage.scope.areas, *(n.customer.area for n in notices if n.customer.area)]))
        spec = CampaignSpec(name=f"outage-{outage.id}", kind="outage_notice", title=f"停电通知 {outage.cause}"[:80],
                            priority=90, windows=list(cfg.notices.windows), outage=OutageParams(
                                areas=areas or ["—"], start=Spoken(zh=zh["start"], en=en["start"]),
                                end=Spoken(zh=zh["end"], en=en["end"]), reason=outage.cause))
        people = [ContactIn(number=n.customer.phone, name=n.customer.name, account=n.customer.account,
                            area=n.customer.area, priority=IMPORTANT_PRIORITY, not_before=n.due) for n in notices]
        await store.import_contacts(spec, people, now())
        await store.change_state(spec.name, "start", now())
        return spec.name

    return arrange


Restoration = Callable[[Outage, Sequence[Customer]], Awaitable[dict[str, int]]]


def restoration_notices(sms: SmsService | None, store: OutboundStore, cfg: OutagesConfig,
                        now: Callable[[], float]) -> Restoration:
    """"Power restored" to the customers of a closed outage: SMS to all, a call to the important ones
    (one message per phone; the counts per channel)."""

    async def tell(outage: Outage, people: Sequence[Customer]) -> dict[str, int]:
        at = outage.end_ts if outage.end_ts is not None else now()
        unique: list[Customer] = []
        seen: set[str] = set()
        for c in sorted(people, key=lambda c: not c.important):  # an important entry of a phone wins
            if c.phone and c.phone not in seen:
                seen.add(c.phone)
                unique.append(c)
        counts: dict[str, int] = {}
        if sms is not None and unique:
            reqs = [SmsRequest("restored", c.phone, {"name": c.name, "area": c.area or "、".join(outage.scope.areas),
                                                     "restored_at": when(at, cfg.calendar, c.lang)},
                               lang=c.lang, account=c.account, area=c.area, ref=f"outage:{outage.id}")
                    for c in unique]
            counts["sms"] = len(await sms.send_many(reqs))
        important = [c for c in unique if c.important]
        if important:
            areas = list(dict.fromkeys([*outage.scope.areas, *(c.area for c in important if c.area)]))
            # hospitals and the like run day and night: told at any hour (outbound.yaml's quiet hours still hold)
            spec = CampaignSpec(name=f"restored-{outage.id}", kind="restored", title=f"恢复供电 {outage.cause}"[:80],
                                priority=90, windows=["00:00-24:00"], restored=RestoredParams(
                                    areas=areas or ["—"], restored_at=Spoken(zh=when(at, cfg.calendar, "zh"),
                                                                             en=when(at, cfg.calendar, "en"))))
            people_in = [ContactIn(number=c.phone, name=c.name, account=c.account, area=c.area,
                                   priority=IMPORTANT_PRIORITY) for c in important]
            await store.import_contacts(spec, people_in, now())
            await store.change_state(spec.name, "start", now())
            counts["phone"] = len(important)
        return counts

    return tell
