"""SMS messages in the database (SQLite or PostgreSQL): one row per message, stored before it is sent.

A message is written (state `queued`) in the same call that accepts it, so a gateway that is down, or a
server restart, only delays it. State changes are conditional on the state and attempt count read
before them: two writers (the sender and a delivery report) cannot both win.
A crash after the gateway accepted a message and before its row says so sends it again at the next
start: at least once, never lost.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text, and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ..outbound.rules import Delivery
from ..store.engine import reading
from ..store.schema import IdType, metadata
from .engine import FINAL, State
from .engine import Message as EngineMessage

sms_messages = Table(
    "sms_messages",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("created_ts", Float, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("number", String(32), nullable=False),
    Column("account", String(40), nullable=False, server_default=""),
    Column("area", String(80), nullable=False, server_default=""),
    Column("quiet", String(100), nullable=False, server_default=""),
    Column("lang", String(8), nullable=False, server_default="zh"),
    Column("text", Text, nullable=False),
    Column("coding", Integer, nullable=False),
    Column("parts", Integer, nullable=False),
    Column("ref", String(80), nullable=False, server_default=""),  # what it is about: outage:7, workorder:12
    Column("token", String(32), nullable=False),  # in the delivery-report URL: a report cannot be forged
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("due_ts", Float, nullable=False),
    Column("accepted_ts", Float),
    Column("final_ts", Float),
    Column("last_dlr", Integer),
    Column("error", String(200), nullable=False, server_default=""),
    Index("ix_sms_state_due", "state", "due_ts"),
    Index("ix_sms_account", "account", "kind"),
    Index("ix_sms_ref", "ref"),
)
TABLES = (sms_messages,)


@dataclass(frozen=True, slots=True)
class NewSms:
    kind: str
    number: str
    text: str
    coding: int
    parts: int
    lang: str = "zh"
    account: str = ""
    area: str = ""
    quiet: str = ""
    ref: str = ""
    due: float | None = None  # not before (None: now), e.g. an outage notice's lead time


@dataclass(frozen=True, slots=True)
class SmsRow:
    """A stored message: the engine's view plus what the sender and the reports need."""

    msg: EngineMessage
    text: str
    coding: int
    parts: int
    lang: str
    token: str
    ref: str
    created_ts: float

    @property
    def id(self) -> int:
        return self.msg.id


def _row(r: Any) -> SmsRow:
    msg = EngineMessage(id=r.id, number=r.number, kind=r.kind, state=r.state, attempts=r.attempts, due=r.due_ts,
                        account=r.account, area=r.area, quiet=r.quiet, error=r.error)
    return SmsRow(msg, r.text, r.coding, r.parts, r.lang, r.token, r.ref, r.created_ts)


class SmsStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create_tables(self) -> None:
        """For tests without Alembic; the server migrates (revision 0008)."""
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda sync: metadata.create_all(sync, tables=list(TABLES)))

    async def add(self, items: Sequence[NewSms], now: float) -> list[int]:
        """Store messages (one transaction), due now or at their own `due`; their ids in order."""
        ids: list[int] = []
        async with self.engine.begin() as conn:
            for it in items:
                res = await conn.execute(insert(sms_messages).values(
                    created_ts=now, kind=it.kind, number=it.number, account=it.account, area=it.area,
                    quiet=it.quiet, lang=it.lang, text=it.text, coding=it.coding, parts=it.parts, ref=it.ref,
                    token=secrets.token_hex(8), state=State.QUEUED, attempts=0,
                    due_ts=now if it.due is None else max(now, it.due), error=""))
                key = res.inserted_primary_key
                assert key is not None
                ids.append(int(key[0]))
        return ids

    async def get(self, msg_id: int) -> SmsRow | None:
        async with self.engine.connect() as conn:
            r = (await conn.execute(select(sms_messages).where(sms_messages.c.id == msg_id))).first()
        return _row(r) if r is not None else None

    async def due(self, now: float, limit: int) -> list[SmsRow]:
        """Queued messages due now, and accepted ones whose delivery report is overdue; oldest first."""
        c = sms_messages.c
        q = (select(sms_messages).where(and_(c.state.in_([State.QUEUED, State.ACCEPTED]), c.due_ts <= now))
             .order_by(c.due_ts, c.id).limit(limit))
        async with reading(self.engine) as conn:
            return [_row(r) for r in await conn.execute(q)]

    async def next_due(self) -> float | None:
        c = sms_messages.c
        async with reading(self.engine) as conn:
            return (await conn.execute(select(func.min(c.due_ts))
                                       .where(c.state.in_([State.QUEUED, State.ACCEPTED])))).scalar()

    async def history(self, accounts: Sequence[str], since: float) -> list[Delivery]:
        """Messages that count against the caps: accepted or delivered since `since`."""
        accounts = [a for a in set(accounts) if a]
        if not accounts:
            return []
        c = sms_messages.c
        q = select(c.account, c.kind, c.accepted_ts).where(and_(
            c.account.in_(accounts), c.accepted_ts.is_not(None), c.accepted_ts > since,
            c.state.in_([State.ACCEPTED, State.DELIVERED])))
        async with self.engine.connect() as conn:
            return [Delivery(r.account, r.kind, r.accepted_ts) for r in await conn.execute(q)]

    async def save(self, before: EngineMessage, after: EngineMessage, now: float, *, dlr: int | None = None) -> bool:
        """Write `after` if the row is still `before` (state and attempts); False if someone else moved it."""
        c = sms_messages.c
        values: dict[str, Any] = {"state": after.state, "attempts": after.attempts, "due_ts": after.due,
                                  "error": after.error[:200]}
        if after.state == State.ACCEPTED and before.state != State.ACCEPTED:
            values["accepted_ts"] = now
        if after.state in FINAL and after.state != before.state:
            values["final_ts"] = now
        if dlr is not None:
            values["last_dlr"] = dlr
        async with self.engine.begin() as conn:
            res = await conn.execute(update(sms_messages).where(and_(
                c.id == before.id, c.state == before.state, c.attempts == before.attempts)).values(**values))
        return bool(res.rowcount)

    async def listing(self, *, ref: str | None = None, state: str | None = None, number: str | None = None,
                      limit: int = 200) -> list[dict[str, Any]]:
        """Messages newest first, for the API and the CLI."""
        c = sms_messages.c
        q = select(sms_messages).order_by(c.id.desc()).limit(limit)
        if ref is not None:
            q = q.where(c.ref == ref)
        if state is not None:
            q = q.where(c.state == state)
        if number is not None:
            q = q.where(c.number == number)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [{"id": r.id, "kind": r.kind, "number": r.number, "account": r.account, "ref": r.ref, "lang": r.lang,
                 "text": r.text, "parts": r.parts, "state": r.state, "attempts": r.attempts,
                 "created_ts": r.created_ts, "accepted_ts": r.accepted_ts, "final_ts": r.final_ts,
                 "error": r.error} for r in rows]

    async def counts(self, since: float, until: float) -> dict[str, int]:
        """Messages created in [since, until) by state (the delivered/failed KPI)."""
        c = sms_messages.c
        q = (select(c.state, func.count()).where(and_(c.created_ts >= since, c.created_ts < until))
             .group_by(c.state))
        async with self.engine.connect() as conn:
            return {r[0]: int(r[1]) for r in await conn.execute(q)}

    async def not_reached(self, refs: Sequence[str]) -> list[dict[str, Any]]:
        """Messages about `refs` that ended undelivered (fallback or failed)."""
        c = sms_messages.c
        q = select(c.id, c.number, c.account, c.kind, c.ref, c.attempts, c.state, c.error).where(and_(
            c.ref.in_(list(refs)), or_(c.state == State.FALLBACK, c.state == State.FAILED)))
        async with self.engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(q)]
