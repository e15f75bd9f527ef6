"""Campaign reports from the outbound tables: progress, results, the not-reached export, attempts.

Read-only queries over one campaign (the store looks the campaign up by name and hands it in).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..calendar import Calendar
from .model import ContactStatus, Outcome
from .rules import deliver_by
from .tables import DIALING, IMPORTANT, CampaignRecord, attempts, contacts


async def status(engine: AsyncEngine, camp: CampaignRecord, calendar: Calendar | None = None,
                 now: float | None = None) -> dict[str, Any]:
    """Progress of one campaign; `deliver_by`/`overdue` when it has a working-day deadline."""
    async with engine.connect() as conn:
        by_status: dict[str, int] = dict((await conn.execute(
            select(contacts.c.status, func.count()).where(contacts.c.campaign_id == camp.id)
            .group_by(contacts.c.status))).all())
        live = (await conn.execute(select(func.count()).select_from(attempts).where(
            and_(attempts.c.campaign_id == camp.id, attempts.c.status == DIALING)))).scalar_one()
        total_attempts = (await conn.execute(select(func.count()).select_from(attempts).where(
            attempts.c.campaign_id == camp.id))).scalar_one()
    total = sum(by_status.values())
    out: dict[str, Any] = {
        "campaign": camp.name, "kind": camp.kind, "state": camp.state, "title": camp.spec.title,
        "contacts": total, "pending": by_status.get(ContactStatus.PENDING, 0),
        "done": by_status.get(ContactStatus.DONE, 0),
        "not_reached": by_status.get(ContactStatus.NOT_REACHED, 0),
        "cancelled": by_status.get(ContactStatus.CANCELLED, 0),
        "excluded": by_status.get(ContactStatus.EXCLUDED, 0), "live": live, "attempts": total_attempts,
    }
    out["finished_contacts"] = out["done"] + out["not_reached"] + out["cancelled"] + out["excluded"]
    spec = camp.spec
    if spec.data_arrived is not None and spec.deliver_within_working_days is not None:
        due = deliver_by(calendar if calendar is not None else Calendar(), spec.data_arrived,
                         spec.deliver_within_working_days)
        out["deliver_by"] = due
        out["overdue"] = bool(now is not None and now > due and (out["pending"] or out["live"]))
    return out


async def results(engine: AsyncEngine, camp: CampaignRecord) -> dict[str, Any]:
    """Per-campaign results: contacts by final state, attempts by outcome, attempts per contact."""
    async with engine.connect() as conn:
        people = (await conn.execute(
            select(contacts.c.number, contacts.c.name, contacts.c.account, contacts.c.priority,
                   contacts.c.status, contacts.c.attempts, contacts.c.last_outcome)
            .where(contacts.c.campaign_id == camp.id).order_by(contacts.c.id))).all()
        outcomes: dict[str, int] = dict((await conn.execute(
            select(attempts.c.outcome, func.count()).where(
                and_(attempts.c.campaign_id == camp.id, attempts.c.outcome.is_not(None)))
            .group_by(attempts.c.outcome))).all())
        ratings = [int(r.dtmf[-1]) for r in await conn.execute(
            select(attempts.c.dtmf).where(and_(attempts.c.campaign_id == camp.id,
                                               attempts.c.outcome == Outcome.RATED)))
                   if r.dtmf and r.dtmf[-1] in "12345"]
    final = Counter(p.last_outcome for p in people if p.status == ContactStatus.DONE)
    per_contact = Counter(p.attempts for p in people)
    important_missed = [{"number": p.number, "name": p.name, "account": p.account,
                         "status": p.status, "last_outcome": p.last_outcome}
                        for p in people if p.priority >= IMPORTANT and p.status != ContactStatus.DONE]
    return {
        "campaign": camp.name, "kind": camp.kind, "state": camp.state, "contacts": len(people),
        "reached": sum(1 for p in people if p.status == ContactStatus.DONE),
        "confirmed": final.get(Outcome.CONFIRMED, 0),
        "to_agent": final.get(Outcome.AGENT, 0),
        "rated": final.get(Outcome.RATED, 0),
        "not_reached": sum(1 for p in people if p.status == ContactStatus.NOT_REACHED),
        "pending": sum(1 for p in people if p.status == ContactStatus.PENDING),
        "cancelled": sum(1 for p in people if p.status == ContactStatus.CANCELLED),
        "excluded": sum(1 for p in people if p.status == ContactStatus.EXCLUDED),
        "machine": outcomes.get(Outcome.MACHINE, 0),
        "busy": outcomes.get(Outcome.BUSY, 0),
        "no_answer": outcomes.get(Outcome.NO_ANSWER, 0),
        "congestion": outcomes.get(Outcome.CONGESTION, 0),
        "failed": outcomes.get(Outcome.FAILED, 0),
        "lost": outcomes.get(Outcome.LOST, 0),
        "attempt_outcomes": {k: v for k, v in sorted(outcomes.items()) if k},
        "attempts": sum(p.attempts for p in people),
        "attempts_per_contact": {str(k): v for k, v in sorted(per_contact.items())},
        "average_rating": round(sum(ratings) / len(ratings), 2) if ratings else None,
        "important_not_reached": important_missed,
    }


async def not_reached(engine: AsyncEngine, camp: CampaignRecord) -> list[dict[str, Any]]:
    """The export for the billing office: contacts whose attempts ran out."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(contacts).where(and_(contacts.c.campaign_id == camp.id,
                                        contacts.c.status == ContactStatus.NOT_REACHED))
            .order_by(contacts.c.priority.desc(), contacts.c.id))
        return [{"number": r.number, "name": r.name, "account": r.account, "area": r.area,
                 "priority": r.priority, "attempts": r.attempts, "last_outcome": r.last_outcome or "",
                 **{f"var_{k}": v for k, v in (r.variables or {}).items()}} for r in rows]


async def attempts_of(engine: AsyncEngine, camp: CampaignRecord) -> list[dict[str, Any]]:
    """Every attempt of the campaign, as stored."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(attempts).where(attempts.c.campaign_id == camp.id)
                                  .order_by(attempts.c.id))
        return [dict(r._mapping) for r in rows]
