"""An announced outage's notices, through the two channels: SMS (ctiserver/sms/) at the lead time, and a
notice campaign (ctiserver/outbound/) that calls the important customers. Shared by the server and the
CLI: both only write rows (the SMS service's sender and the dialer of the running server send them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from ..outbound.model import CampaignSpec, ContactIn, OutageParams, Spoken
from ..outbound.store import OutboundStore
from ..sms.service import SmsRequest, SmsService
from .model import Notice, Outage, OutagesConfig, when

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
    """The important customers' notice calls: a campaign `outage-<id>` (kind outage_notice), started."""

    async def arrange(outage: Outage, notices: Sequence[Notice]) -> str | None:
        if not notices:
            return None
        zh, en = _words(outage, cfg, "zh"), _words(outage, cfg, "en")
        areas = list(dict.fromkeys([*outage.scope.areas, *(n.customer.area for n in notices if n.customer.area)]))
        spec = CampaignSpec(name=f"outage-{outage.id}", kind="outage_notice", title=f"停电通知 {outage.cause}"[:80],
                            priority=90, outage=OutageParams(
                                areas=areas or ["—"], start=Spoken(zh=zh["start"], en=en["start"]),
                                end=Spoken(zh=zh["end"], en=en["end"]), reason=outage.cause))
        people = [ContactIn(number=n.customer.phone, name=n.customer.name, account=n.customer.account,
                            area=n.customer.area, priority=IMPORTANT_PRIORITY) for n in notices]
        await store.import_contacts(spec, people, now())
        await store.change_state(spec.name, "start", now())
        return spec.name

    return arrange
