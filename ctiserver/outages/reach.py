"""Who an outage's messages did not reach, over both channels (issue 16: "a list of customers not reached
after three tries"): the calls of its campaigns (`outage-<id>` notices, `restored-<id>` restoration) whose
attempts ran out, and its SMS (`ref outage:<id>`) that ended undelivered (failed, or handed to a call)
after their retries, as Kannel's delivery reports said.

`merge` (pure) makes one row per phone: what failed on which channel, and whether the other channel
reached it after all; the phones reached by neither come first (those are the ones to chase by hand).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import and_, select

from ..outbound.model import ContactStatus
from ..outbound.store import OutboundStore
from ..outbound.tables import campaigns, contacts
from ..sms.engine import State
from ..sms.store import SmsStore


def merge(calls: Iterable[Mapping[str, Any]], sms: Iterable[Mapping[str, Any]],
          reached_by_call: set[str], reached_by_sms: set[str]) -> list[dict[str, Any]]:
    """One row per phone that a channel did not reach: number, account, name, failed {channel: why},
    reached (by the other channel, after all); not reached anywhere first, then by number."""
    rows: dict[str, dict[str, Any]] = {}

    def row(number: str, account: str) -> dict[str, Any]:
        return rows.setdefault(number, {"number": number, "account": account, "name": "", "failed": {}})

    for c in calls:
        r = row(str(c["number"]), str(c.get("account") or ""))
        r["name"] = r["name"] or str(c.get("name") or "")
        r["failed"][f"phone:{c['what']}"] = f"{c.get('attempts', 0)} attempt(s), last {c.get('last_outcome') or '?'}"
    for m in sms:
        r = row(str(m["number"]), str(m.get("account") or ""))
        r["failed"][f"sms:{m['kind']}"] = f"{m.get('attempts', 0)} attempt(s), {m.get('error') or m.get('state')}"
    for r in rows.values():
        channels = {k.split(":", 1)[0] for k in r["failed"]}
        r["reached"] = bool(("phone" not in channels and r["number"] in reached_by_call)
                            or ("sms" not in channels and r["number"] in reached_by_sms))
    return sorted(rows.values(), key=lambda r: (r["reached"], r["number"]))


async def not_reached(oid: int, sms: SmsStore, calls: OutboundStore) -> list[dict[str, Any]]:
    """The outage's not-reached list from the stores (see `merge`)."""
    failed_calls: list[dict[str, Any]] = []
    reached_by_call: set[str] = set()
    names = {f"outage-{oid}": "outage_notice", f"restored-{oid}": "restored"}
    async with calls.engine.connect() as conn:
        found = (await conn.execute(select(campaigns.c.id, campaigns.c.name)
                                    .where(campaigns.c.name.in_(list(names))))).all()
        for camp_id, name in found:
            rows = (await conn.execute(select(contacts.c.number, contacts.c.account, contacts.c.name,
                                              contacts.c.status, contacts.c.attempts, contacts.c.last_outcome)
                                       .where(and_(contacts.c.campaign_id == camp_id,
                                                   contacts.c.status.in_([ContactStatus.DONE,
                                                                          ContactStatus.NOT_REACHED]))))).all()
            for r in rows:
                if r.status == ContactStatus.DONE:
                    reached_by_call.add(r.number)
                else:
                    failed_calls.append({"number": r.number, "account": r.account, "name": r.name,
                                         "attempts": r.attempts, "last_outcome": r.last_outcome,
                                         "what": names[name]})
    ref = f"outage:{oid}"
    failed_sms = await sms.not_reached([ref])
    delivered = {m["number"] for m in await sms.listing(ref=ref, state=State.DELIVERED, limit=1_000_000)}
    return merge(failed_calls, failed_sms, reached_by_call, delivered)
