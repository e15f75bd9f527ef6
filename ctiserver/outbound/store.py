"""Campaigns, contacts and attempts in the database (SQLite or PostgreSQL), and the queries over them.

Crash safety rests on three rules kept here:
* an attempt row (status `dialing`, our ChannelId) is committed BEFORE the call is
  dialed, in the same transaction that bumps the contact's attempt count, and only
  if the count is still what the scheduler saw and the campaign is still running;
* a partial unique index allows one `dialing` attempt per phone number, so even a
  second dialer process could not call one number twice at once;
* an outcome is written once; a later, more specific report (Hangup said answered,
  the dialplan then says confirmed) may upgrade it, a duplicate is ignored.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..calendar import Calendar
from ..store.engine import reading
from ..store.schema import metadata
from . import reports
from .model import (
    OUTCOME_RANK,
    REACHED,
    TRANSITIONS,
    CampaignSpec,
    ContactIn,
    ContactStatus,
    Dial,
    FrequencyCap,
    Outcome,
    State,
)
from .rules import Delivery, after_outcome
from .scheduler import CampaignView, Exclusion, LiveAttempt, Snapshot, contact_view
from .tables import (
    DIALING,
    ENDED,
    TABLES,
    AttemptConflict,
    CampaignExists,
    CampaignRecord,
    CampaignStateError,
    Finished,
    InFlight,
    OutboundError,
    UnknownCampaign,
    attempts,
    campaign_record,
    campaigns,
    contacts,
    dnc,
)

__all__ = ["TABLES", "AttemptConflict", "CampaignExists", "CampaignRecord", "CampaignStateError", "Claim",
           "Finished", "InFlight", "OutboundError", "OutboundStore", "UnknownCampaign", "attempts", "campaigns",
           "contacts", "dnc"]

# claims an action (kind, key) under the HA leader's epoch inside the caller's transaction (ctiserver/ha/)
Claim = Callable[[AsyncConnection, str, str], Awaitable[None]]

class OutboundStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._specs: dict[int, CampaignSpec] = {}
        self._ids: dict[str, int] = {}  # campaign name -> id (names and ids never change)

    async def create_tables(self) -> None:
        """For tests and first runs without Alembic; production uses `ctiserver db upgrade`."""
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda sync: metadata.create_all(sync, tables=list(TABLES)))

    # --- campaigns --------------------------------------------------------------------------
    async def create_campaign(self, spec: CampaignSpec, now: float) -> CampaignRecord:
        uid = secrets.token_hex(4)
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(campaigns).values(
                    name=spec.name, uid=uid, kind=spec.kind, state=State.DRAFT, priority=spec.priority,
                    spec=spec.model_dump(mode="json"), created_ts=now, updated_ts=now))
        except IntegrityError:
            raise CampaignExists(f"campaign {spec.name!r} already exists") from None
        return await self.campaign(spec.name)

    async def campaign(self, name: str) -> CampaignRecord:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(campaigns).where(campaigns.c.name == name))).first()
        if row is None:
            raise UnknownCampaign(f"no campaign named {name!r}")
        return campaign_record(row)

    async def campaigns(self) -> list[CampaignRecord]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(campaigns).order_by(campaigns.c.id))).all()
        return [campaign_record(r) for r in rows]

    async def running(self) -> list[str]:
        """Names of running campaigns, highest priority first."""
        async with reading(self.engine) as conn:
            rows = await conn.execute(select(campaigns.c.name).where(campaigns.c.state == State.RUNNING)
                                      .order_by(campaigns.c.priority.desc(), campaigns.c.id))
            return [r.name for r in rows]

    async def change_state(self, name: str, action: str, now: float) -> str:
        """start | pause | resume | stop | finish; an illegal move raises naming the state and action."""
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(campaigns.c.id, campaigns.c.state)
                                      .where(campaigns.c.name == name))).first()
            if row is None:
                raise UnknownCampaign(f"no campaign named {name!r}")
            new = TRANSITIONS.get((row.state, action))
            if new is None:
                raise CampaignStateError(f"cannot {action} campaign {name!r}: it is {row.state}")
            res = await conn.execute(update(campaigns)
                                     .where(and_(campaigns.c.id == row.id, campaigns.c.state == row.state))
                                     .values(state=new, updated_ts=now))
            if res.rowcount != 1:
                raise CampaignStateError(f"campaign {name!r} changed state meanwhile; try again")
            if new == State.STOPPED:
                await conn.execute(update(contacts)
                                   .where(and_(contacts.c.campaign_id == row.id,
                                               contacts.c.status == ContactStatus.PENDING))
                                   .values(status=ContactStatus.CANCELLED, updated_ts=now))
        return new

    async def finish_campaigns(self, now: float) -> list[str]:
        """Running campaigns with nothing pending and nothing in a call become `finished`."""
        done: list[str] = []
        async with self.engine.begin() as conn:
            rows = (await conn.execute(select(campaigns.c.id, campaigns.c.name)
                                       .where(campaigns.c.state == State.RUNNING))).all()
            for r in rows:
                pending = (await conn.execute(
                    select(func.count()).select_from(contacts)
                    .where(and_(contacts.c.campaign_id == r.id,
                                contacts.c.status == ContactStatus.PENDING)))).scalar_one()
                live = (await conn.execute(
                    select(func.count()).select_from(attempts)
                    .where(and_(attempts.c.campaign_id == r.id, attempts.c.status == DIALING)))).scalar_one()
                if pending == 0 and live == 0:
                    await conn.execute(update(campaigns).where(campaigns.c.id == r.id)
                                       .values(state=State.FINISHED, updated_ts=now))
                    done.append(r.name)
        return done

    # --- contacts and lists -------------------------------------------------------------------
    async def numbers_in(self, name: str) -> set[str]:
        camp = await self.campaign(name)
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(contacts.c.number).where(contacts.c.campaign_id == camp.id))
            return {r.number for r in rows}

    async def excluded_numbers(self) -> dict[str, str]:
        """Do-not-call and blacklist numbers: number -> list name."""
        async with self.engine.connect() as conn:
            return {r.number: r.list for r in await conn.execute(select(dnc.c.number, dnc.c.list))}

    async def listed(self, numbers: Sequence[str]) -> dict[str, str]:
        """Which of `numbers` are on the do-not-call list or the blacklist now: number -> list."""
        async with self.engine.connect() as conn:
            return await self._listed(conn, list(numbers))

    async def add_to_list(self, numbers: Sequence[str], list_name: str, reason: str, now: float) -> int:
        if list_name not in ("dnc", "blacklist"):
            raise OutboundError(f"unknown list {list_name!r}: use dnc or blacklist")
        have = await self.excluded_numbers()
        new = sorted({n for n in numbers if n not in have})
        if new:
            async with self.engine.begin() as conn:
                await conn.execute(insert(dnc), [{"number": n, "list": list_name, "reason": reason,
                                                  "added_ts": now} for n in new])
        return len(new)

    async def add_contacts(self, name: str, people: Sequence[ContactIn], now: float) -> int:
        """All in one transaction: either every contact is stored or none is."""
        camp = await self.campaign(name)
        if camp.state in (State.STOPPED, State.FINISHED):
            raise CampaignStateError(f"cannot add contacts to campaign {name!r}: it is {camp.state}")
        if not people:
            return 0
        try:
            async with self.engine.begin() as conn:
                await self._insert_contacts(conn, camp.id, people, now)
        except IntegrityError:
            raise OutboundError(f"campaign {name!r} already holds some of these numbers; "
                                "nothing was imported") from None
        return len(people)

    async def import_contacts(self, spec: CampaignSpec, people: Sequence[ContactIn], now: float) -> bool:
        """Create the campaign if it does not exist yet and store `people` in it, in ONE transaction:
        a failed import leaves neither a campaign nor a contact behind. True if the campaign is new."""
        try:
            async with self.engine.begin() as conn:
                row = (await conn.execute(select(campaigns.c.id, campaigns.c.state)
                                          .where(campaigns.c.name == spec.name))).first()
                if row is None:
                    camp_id = (await conn.execute(insert(campaigns).values(
                        name=spec.name, uid=secrets.token_hex(4), kind=spec.kind, state=State.DRAFT,
                        priority=spec.priority, spec=spec.model_dump(mode="json"), created_ts=now,
                        updated_ts=now).returning(campaigns.c.id))).scalar_one()
                elif row.state in (State.STOPPED, State.FINISHED):
                    raise CampaignStateError(f"cannot add contacts to campaign {spec.name!r}: it is {row.state}")
                else:
                    camp_id = row.id
                await self._insert_contacts(conn, camp_id, people, now)
        except IntegrityError:
            raise OutboundError(f"campaign {spec.name!r} was created meanwhile or already holds some of these "
                                "numbers; nothing was imported") from None
        return row is None

    @staticmethod
    async def _insert_contacts(conn: AsyncConnection, campaign_id: int, people: Sequence[ContactIn],
                               now: float) -> None:
        rows = [{"campaign_id": campaign_id, "number": p.number, "name": p.name, "account": p.account,
                 "area": p.area, "priority": p.priority, "tier": p.tier, "quiet": p.quiet,
                 "variables": dict(p.variables), "status": ContactStatus.PENDING, "attempts": 0,
                 "next_due_ts": p.not_before, "updated_ts": now} for p in people]
        for i in range(0, len(rows), 1000):
            await conn.execute(insert(contacts), rows[i:i + 1000])

    # --- the scheduler's view -----------------------------------------------------------------
    async def snapshot(self, now: float, caps: Sequence[FrequencyCap] = (), *, campaign: str | None = None,
                       limit: int = 5000, offset: int = 0) -> Snapshot:
        """What the scheduler needs: campaigns, one page of due pending contacts (of `campaign`, or of
        all running campaigns), every live attempt, and recent deliveries of those contacts' accounts."""
        async with self.engine.connect() as conn:
            camp_rows = (await conn.execute(select(campaigns))).all()
            views = []
            names: dict[int, str] = {}
            kinds: dict[int, str] = {}
            for r in camp_rows:
                names[r.id], kinds[r.id] = r.name, r.kind
                if r.state in (State.RUNNING, State.PAUSED):
                    views.append(CampaignView.from_spec(self._spec(r.id, r.spec), r.uid, r.state))
            running_ids = [r.id for r in camp_rows if r.state == State.RUNNING
                           and (campaign is None or r.name == campaign)
                           and "phone" in self._spec(r.id, r.spec).channels]  # an SMS-only campaign calls nobody
            due: list[Any] = []
            later: float | None = None
            truncated = False
            if running_ids:
                pending = and_(contacts.c.campaign_id.in_(running_ids),
                               contacts.c.status == ContactStatus.PENDING)
                c = contacts.c
                due = list((await conn.execute(
                    select(c.id, c.campaign_id, c.number, c.account, c.area, c.priority, c.quiet, c.attempts,
                           c.next_due_ts)
                    .join(campaigns, campaigns.c.id == c.campaign_id)
                    .where(and_(pending, c.next_due_ts <= now))
                    .order_by(campaigns.c.priority.desc(), c.priority.desc(), c.next_due_ts, c.id)
                    .limit(limit + 1).offset(offset))).all())
                later = (await conn.execute(select(func.min(c.next_due_ts))
                                            .where(and_(pending, c.next_due_ts > now)))).scalar()
                if len(due) > limit:
                    due, truncated = due[:limit], True
            live_rows = (await conn.execute(
                select(attempts.c.campaign_id, attempts.c.contact_id, attempts.c.number, contacts.c.account)
                .join(contacts, contacts.c.id == attempts.c.contact_id)
                .where(attempts.c.status == DIALING))).all()
            deliveries: list[Delivery] = []
            accounts = sorted({r.account for r in due if r.account})
            if caps and accounts:
                span = max(c.per_days for c in caps) * 86400
                counted = [*REACHED, Outcome.MACHINE]
                for i in range(0, len(accounts), 500):
                    rows = await conn.execute(
                        select(contacts.c.account, campaigns.c.kind, attempts.c.ended_ts)
                        .join(contacts, contacts.c.id == attempts.c.contact_id)
                        .join(campaigns, campaigns.c.id == attempts.c.campaign_id)
                        .where(and_(attempts.c.outcome.in_(counted), attempts.c.ended_ts > now - span,
                                    contacts.c.account.in_(accounts[i:i + 500]))))
                    deliveries += [Delivery(r.account, r.kind, float(r.ended_ts)) for r in rows]
            listed = await self._listed(conn, sorted({r.number for r in due}))
        people = [contact_view(r.id, names[r.campaign_id], r.number, r.account, r.area, r.priority, r.quiet,
                               r.attempts, float(r.next_due_ts)) for r in due]
        live = [LiveAttempt(names[r.campaign_id], r.contact_id, r.number, r.account or "") for r in live_rows]
        return Snapshot(views, people, live, deliveries, later, truncated, listed)

    @staticmethod
    async def _listed(conn: AsyncConnection, numbers: Sequence[str]) -> dict[str, str]:
        """Which of `numbers` are on the do-not-call list or the blacklist now: number -> list."""
        out: dict[str, str] = {}
        for i in range(0, len(numbers), 500):
            rows = await conn.execute(select(dnc.c.number, dnc.c.list).where(dnc.c.number.in_(numbers[i:i + 500])))
            out.update({r.number: r.list for r in rows})
        return out

    async def exclude_contacts(self, exclusions: Sequence[Exclusion], now: float) -> int:
        """Take contacts whose number is listed now out of their campaigns (status `excluded`, the list
        as last outcome); only pending contacts with no call in progress. Returns how many moved."""
        moved = 0
        async with self.engine.begin() as conn:
            for x in exclusions:
                live = select(attempts.c.id).where(and_(attempts.c.contact_id == x.contact,
                                                        attempts.c.status == DIALING)).exists()
                res = await conn.execute(update(contacts).where(and_(
                    contacts.c.id == x.contact, contacts.c.status == ContactStatus.PENDING, ~live))
                    .values(status=ContactStatus.EXCLUDED, last_outcome=x.list, updated_ts=now))
                moved += res.rowcount
        return moved

    def _spec(self, campaign_id: int, raw: Any) -> CampaignSpec:
        spec = self._specs.get(campaign_id)
        if spec is None:
            spec = self._specs[campaign_id] = CampaignSpec.model_validate(raw)
        return spec

    # --- attempts -------------------------------------------------------------------------------
    async def begin_attempt(self, dial: Dial, now: float, claim: Claim | None = None) -> None:
        """Write the attempt before dialing; AttemptConflict if the plan went stale meanwhile.

        `claim` (HA, ctiserver/ha/): the Originate is claimed under the leader's epoch in the same
        transaction; a node that no longer leads (or an attempt claimed before) gets AttemptConflict."""
        camp_id = self._ids.get(dial.campaign)
        if camp_id is None:
            camp_id = self._ids[dial.campaign] = (await self.campaign(dial.campaign)).id
        running = select(campaigns.c.id).where(and_(campaigns.c.id == camp_id,
                                                    campaigns.c.state == State.RUNNING)).exists()
        listed = select(dnc.c.number).where(dnc.c.number == dial.number).exists()
        try:
            async with self.engine.begin() as conn:
                res = await conn.execute(
                    update(contacts)
                    .where(and_(contacts.c.id == dial.contact, contacts.c.campaign_id == camp_id,
                                contacts.c.status == ContactStatus.PENDING,
                                contacts.c.attempts == dial.attempt_no - 1, running, ~listed))
                    .values(attempts=dial.attempt_no, updated_ts=now))
                if res.rowcount != 1:
                    raise AttemptConflict(f"contact {dial.contact} is no longer due for attempt "
                                          f"{dial.attempt_no}, campaign {dial.campaign!r} is not running, "
                                          f"or {dial.number} was just put on the do-not-call list")
                await conn.execute(insert(attempts).values(
                    campaign_id=camp_id, contact_id=dial.contact, attempt_no=dial.attempt_no,
                    channel_id=dial.channel_id, number=dial.number, status=DIALING, dtmf="", started_ts=now))
                if claim is not None:
                    try:
                        await claim(conn, "originate", dial.channel_id)
                    except RuntimeError as exc:  # Fenced, AlreadyClaimed: the transaction rolls back
                        raise AttemptConflict(f"{dial.channel_id}: {exc}") from None
        except IntegrityError:
            raise AttemptConflict(f"number {dial.number} already has a live attempt "
                                  f"(or {dial.channel_id} exists)") from None

    async def void_attempt(self, channel_id: str) -> bool:
        """Undo an attempt whose Originate certainly never went out; False if it is not `dialing`."""
        async with self.engine.begin() as conn:
            row = (await conn.execute(select(attempts.c.id, attempts.c.contact_id, attempts.c.attempt_no)
                                      .where(and_(attempts.c.channel_id == channel_id,
                                                  attempts.c.status == DIALING)))).first()
            if row is None:
                return False
            await conn.execute(attempts.delete().where(attempts.c.id == row.id))
            await conn.execute(update(contacts)
                               .where(and_(contacts.c.id == row.contact_id, contacts.c.attempts == row.attempt_no))
                               .values(attempts=row.attempt_no - 1))
        return True

    async def finish_attempt(self, channel_id: str, outcome: str, dtmf: str, now: float, *,
                             ended: bool = True) -> Finished | None:
        """Write an outcome and move the contact on; None for unknown channels and for reports that
        change no outcome. `ended=False` is a verdict while the call goes on (AMD said machine, the
        customer went to an agent): the attempt keeps counting as live until a report that ends it."""
        if outcome not in OUTCOME_RANK:
            raise OutboundError(f"unknown outcome {outcome!r}")
        dtmf = "".join(ch for ch in (dtmf or "") if ch in "0123456789*#")[:20]
        async with self.engine.begin() as conn:
            row = (await conn.execute(
                select(attempts, contacts.c.status.label("c_status"), contacts.c.attempts.label("c_attempts"),
                       contacts.c.tier, contacts.c.variables, campaigns.c.name.label("camp_name"),
                       campaigns.c.kind, campaigns.c.spec)
                .join(contacts, contacts.c.id == attempts.c.contact_id)
                .join(campaigns, campaigns.c.id == attempts.c.campaign_id)
                .where(attempts.c.channel_id == channel_id))).first()
            if row is None:
                return None
            upgraded = row.outcome is not None
            better = OUTCOME_RANK[outcome] > OUTCOME_RANK.get(row.outcome or "", -1)
            ends = ended and row.status == DIALING
            if not better and not ends:
                return None
            values: dict[str, Any] = {"status": ENDED, "ended_ts": now} if ends else {}
            if better:
                values.update(outcome=outcome, dtmf=dtmf or row.dtmf)
            await conn.execute(update(attempts).where(attempts.c.id == row.id).values(**values))
            if not better:
                return None  # the call is over; what it was is already written
            status = await self._move_contact(conn, row, outcome, now, upgraded)
        return Finished(row.camp_name, row.kind, row.contact_id, row.number, row.attempt_no, channel_id,
                        outcome, dtmf or row.dtmf, status, row.tier or "", dict(row.variables or {}),
                        upgraded, str(row.c_status))

    async def _move_contact(self, conn: AsyncConnection, row: Any, outcome: str, now: float,
                            upgraded: bool) -> str:
        status = row.c_status
        if status == ContactStatus.CANCELLED:
            await conn.execute(update(contacts).where(contacts.c.id == row.contact_id)
                               .values(last_outcome=outcome, updated_ts=now))
            return str(status)
        latest = row.attempt_no == row.c_attempts
        if upgraded and not latest:
            if outcome not in REACHED:  # a later attempt already decides this contact's fate
                return str(status)
            decision_status, next_due = ContactStatus.DONE, None
        else:
            policy = self._spec(row.campaign_id, row.spec).retry
            decision = after_outcome(policy, row.c_attempts, outcome, now)
            decision_status, next_due = decision.status, decision.next_due
        values: dict[str, Any] = {"status": decision_status, "last_outcome": outcome, "updated_ts": now}
        if next_due is not None:
            values["next_due_ts"] = next_due
        await conn.execute(update(contacts).where(contacts.c.id == row.contact_id).values(**values))
        return decision_status

    async def in_flight(self) -> list[InFlight]:
        async with reading(self.engine) as conn:
            rows = await conn.execute(
                select(attempts.c.channel_id, campaigns.c.name, attempts.c.contact_id, attempts.c.attempt_no,
                       attempts.c.started_ts)
                .join(campaigns, campaigns.c.id == attempts.c.campaign_id)
                .where(attempts.c.status == DIALING).order_by(attempts.c.id))
            return [InFlight(r.channel_id, r.name, r.contact_id, r.attempt_no, float(r.started_ts))
                    for r in rows]

    async def contact_variables(self, contact_id: int) -> tuple[dict[str, Any], str, str, str, str]:
        """(variables, name, account, area, tier) of one contact, for building its message."""
        async with self.engine.connect() as conn:
            r = (await conn.execute(select(contacts.c.variables, contacts.c.name, contacts.c.account,
                                           contacts.c.area, contacts.c.tier)
                                    .where(contacts.c.id == contact_id))).first()
        if r is None:
            raise OutboundError(f"no contact {contact_id}")
        return dict(r.variables or {}), r.name, r.account, r.area, r.tier

    # --- reports (reports.py) -------------------------------------------------------------------------
    async def status(self, name: str, calendar: Calendar | None = None, now: float | None = None) -> dict[str, Any]:
        """Progress of one campaign; `deliver_by`/`overdue` when it has a working-day deadline."""
        return await reports.status(self.engine, await self.campaign(name), calendar, now)

    async def results(self, name: str) -> dict[str, Any]:
        """Per-campaign results: contacts by final state, attempts by outcome, attempts per contact."""
        return await reports.results(self.engine, await self.campaign(name))

    async def not_reached(self, name: str) -> list[dict[str, Any]]:
        """The export for the billing office: contacts whose attempts ran out."""
        return await reports.not_reached(self.engine, await self.campaign(name))

    async def attempts_of(self, name: str) -> list[dict[str, Any]]:
        return await reports.attempts_of(self.engine, await self.campaign(name))
