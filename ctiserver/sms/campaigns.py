"""Campaigns with an SMS channel (issue 16: bill and arrears notices by SMS, phone or both, per campaign).

A running campaign whose spec has `channels: [sms]` or `[phone, sms]` gets one message per contact, of the
campaign's kind (sms.yaml's template), with the words its call would say (an arrears reminder: the late
fee to the day it is sent). The message's ref is `campaign:<uid>:<contact id>`: one per contact, ever,
whatever restarts. Delivery is then the SMS service's (windows, quiet hours, caps, do-not-call, reports,
retries, the fallback call). A contact of an SMS-only campaign is done (`last_outcome` sms) once its
message is stored; with both channels the dialer calls it as well.

`CampaignSms.running()` is the feature (the leader's, with the SMS sender): a round every `poll_s`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import and_, select, update

from ..clock import Clock
from ..lifecycle import TaskOwner
from ..outbound.messages import MessageError, arrears_fields, message_language
from ..outbound.model import CampaignSpec, ContactStatus, OutboundConfig, spoken
from ..outbound.store import OutboundStore
from ..outbound.tables import contacts
from .service import SmsError, SmsRequest, SmsService
from .store import sms_messages

log = logging.getLogger(__name__)


def sms_fields(spec: CampaignSpec, cfg: OutboundConfig, contact: Any, lang: str, today: Any) -> dict[str, Any]:
    """What the campaign's SMS template is filled with for one contact (MessageError when its data lacks it)."""
    variables = dict(contact.variables or {})
    fields: dict[str, Any] = {"name": contact.name or ("客户" if lang == "zh" else "customer"),
                              "account": contact.account, "area": contact.area}
    if spec.kind == "arrears_reminder":
        fields.update(arrears_fields(variables, today, cfg, lang))
    elif spec.kind == "outage_notice" and spec.outage is not None:
        o = spec.outage
        fields.update(area=contact.area or "、".join(o.areas), start=spoken(o.start, lang), end=spoken(o.end, lang),
                      reason=spoken(o.reason, lang))
    elif spec.kind == "restored" and spec.restored is not None:
        fields.update(area=contact.area or "、".join(spec.restored.areas),
                      restored_at=spoken(spec.restored.restored_at, lang))
    return fields


class CampaignSms:
    def __init__(self, sms: SmsService, store: OutboundStore, cfg: OutboundConfig, clock: Clock, *,
                 poll_s: float = 30.0) -> None:
        self.sms, self.store, self.cfg, self.clock, self.poll_s = sms, store, cfg, clock, poll_s

    async def round(self) -> int:
        """Messages for the contacts of running SMS campaigns that have none yet; how many were stored."""
        stored = 0
        for camp in await self.store.campaigns():
            if camp.state != "running" or "sms" not in camp.spec.channels:
                continue
            prefix = f"campaign:{camp.uid}:"
            async with self.store.engine.connect() as conn:
                done = {r.ref for r in await conn.execute(
                    select(sms_messages.c.ref).where(sms_messages.c.ref.startswith(prefix)))}
                people = (await conn.execute(select(contacts).where(and_(
                    contacts.c.campaign_id == camp.id, contacts.c.status == ContactStatus.PENDING)))).all()
            today = self.cfg.calendar.today(self.clock.now())
            reqs, ids = [], []
            for c in people:
                if f"{prefix}{c.id}" in done:
                    continue
                lang = message_language(camp.spec, dict(c.variables or {}))
                try:
                    req = SmsRequest(camp.spec.kind, c.number, sms_fields(camp.spec, self.cfg, c, lang, today),
                                     lang=lang, account=c.account, area=c.area, quiet=c.quiet,
                                     ref=f"{prefix}{c.id}")
                    self.sms.compose(req)
                except (MessageError, SmsError) as exc:
                    log.warning("campaign %s contact %s: no SMS: %s", camp.name, c.number, exc)
                    continue
                reqs.append(req)
                ids.append(c.id)
            if not reqs:
                continue
            await self.sms.send_many(reqs)
            stored += len(reqs)
            if "phone" not in camp.spec.channels:
                async with self.store.engine.begin() as conn:
                    await conn.execute(update(contacts).where(contacts.c.id.in_(ids)).values(
                        status=ContactStatus.DONE, last_outcome="sms", updated_ts=self.clock.now()))
        return stored

    async def _run(self, tasks: TaskOwner) -> None:
        while True:
            try:
                await self.round()
            except Exception as exc:  # the database may be away for a moment: the next round tries again
                log.warning("campaign SMS round failed: %s", exc)
            if not await tasks.idle(self.poll_s):
                return

    @asynccontextmanager
    async def running(self) -> AsyncIterator[CampaignSms]:
        async with TaskOwner("campaign SMS", grace_s=5.0) as tasks:
            if self.sms.cfg.enabled:
                tasks.spawn(self._run(tasks), name="campaign-sms")
            yield self
