"""The SQL edge of the shift handover: what it is built from, and the handovers kept (migration 0013).

Inputs come from the tables their features own (work orders, outages, ACD callbacks) and from the
event log (the shift's ratings, repair escalations, VIP abandons), read as they are now; the pure
core (handover.py) decides what of it is handed over.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import JSON, Column, Float, Index, String, Table, Text, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from ..callbacks.store import callbacks
from ..events import Event, Kind
from ..outages.store import outage_records, outage_reports
from ..store.schema import IdType, events, metadata
from ..web.tables import sessions, work_orders
from ..web.workorders import open_orders
from .handover import CALLBACK_OPEN, Boundary, HandoverInputs

handovers = Table(
    "wfm_handovers",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("created_ts", Float, nullable=False),
    Column("outgoing", String(40), nullable=False),  # the signed-in leader who handed over
    Column("shift_start_ts", Float, nullable=False),
    Column("boundary_ts", Float, nullable=False),
    Column("incoming", String(200), nullable=False, server_default=""),  # the roster's incoming leaders
    Column("note", Text, nullable=False, server_default=""),
    Column("content", JSON, nullable=False),
    Column("search_text", Text, nullable=False, server_default=""),  # lower-cased note + content, for search
    Column("acked_by", String(40)),
    Column("acked_ts", Float),
    Index("ix_wfm_handovers_boundary", "boundary_ts"),
)

NOTABLE_KINDS = (Kind.SURVEY_RATING, Kind.REPAIR_ALERT, Kind.ACD_ABANDON)


class HandoverGone(LookupError):
    pass


class HandoverTaken(ValueError):
    """Already acknowledged."""


async def gather(engine: AsyncEngine, events_engine: AsyncEngine, b: Boundary) -> HandoverInputs:
    """What the store holds now for the handover of `b`."""
    orders = await open_orders(engine)
    async with engine.connect() as conn:
        taken = [dict(r) for r in (await conn.execute(
            select(work_orders).where(work_orders.c.created_ts >= b.shift_start, work_orders.c.created_ts < b.at)
            .order_by(work_orders.c.created_ts))).mappings()]
        outage_rows = [dict(r) for r in (await conn.execute(
            select(outage_records).where(outage_records.c.status == "open"))).mappings()]
        counts = {int(k): int(v) for k, v in (await conn.execute(
            select(outage_reports.c.outage_id, func.count()).group_by(outage_reports.c.outage_id))).all()}
        cbs = [dict(r) for r in (await conn.execute(
            select(callbacks.c.id, callbacks.c.number, callbacks.c.skill, callbacks.c.tier, callbacks.c.reason,
                   callbacks.c.status, callbacks.c.attempts, callbacks.c.due_ts, callbacks.c.next_ts)
            .where(callbacks.c.status.in_(sorted(CALLBACK_OPEN))))).mappings()]
    for o in outage_rows:
        o["scope"] = json.loads(o["scope"]) if isinstance(o["scope"], str) else o["scope"]
        o["reports"] = counts.get(int(o["id"]), 0)
    async with events_engine.connect() as conn:
        rows = (await conn.execute(
            select(events.c.kind, events.c.ts, events.c.call_id, events.c.agent_id, events.c.queue, events.c.tier,
                   events.c.data)
            .where(events.c.kind.in_([str(k) for k in NOTABLE_KINDS]), events.c.ts >= b.shift_start,
                   events.c.ts < b.at).order_by(events.c.ts))).all()
    evs = [Event(k, float(ts), cid, aid, q, t, None, d if isinstance(d, dict) else {})
           for k, ts, cid, aid, q, t, d in rows]
    return HandoverInputs(orders, taken, outage_rows, cbs, evs)


def _doc(r: Any) -> dict[str, Any]:
    content = json.loads(r.content) if isinstance(r.content, str) else r.content
    return {"id": int(r.id), "created_ts": r.created_ts, "outgoing": r.outgoing, "shift_start_ts": r.shift_start_ts,
            "boundary_ts": r.boundary_ts, "incoming": [x for x in r.incoming.split(",") if x], "note": r.note,
            "content": content, "acked_by": r.acked_by, "acked_ts": r.acked_ts}


async def save(engine: AsyncEngine, *, user: str, note: str, content: dict[str, Any], text: str,
               now: float) -> dict[str, Any]:
    b = content["boundary"]
    async with engine.begin() as conn:
        res = await conn.execute(insert(handovers).values(
            created_ts=now, outgoing=user, shift_start_ts=b["shift_start"], boundary_ts=b["at"],
            incoming=",".join(b["incoming"]), note=note, content=content, search_text=text.lower()))
        hid = int(res.inserted_primary_key[0])  # type: ignore[index]
    return await get(engine, hid)


async def get(engine: AsyncEngine, hid: int) -> dict[str, Any]:
    async with engine.connect() as conn:
        r = (await conn.execute(select(handovers).where(handovers.c.id == hid))).first()
    if r is None:
        raise HandoverGone(f"no handover {hid}")
    return _doc(r)


async def acknowledge(engine: AsyncEngine, hid: int, user: str, now: float) -> dict[str, Any]:
    """Record the incoming leader's acknowledgement (once)."""
    async with engine.begin() as conn:
        done = await conn.execute(update(handovers).where(handovers.c.id == hid, handovers.c.acked_ts.is_(None))
                                  .values(acked_by=user, acked_ts=now))
    if done.rowcount != 1:
        doc = await get(engine, hid)  # HandoverGone when there is none
        raise HandoverTaken(f"handover {hid} was acknowledged by {doc['acked_by']} already")
    return await get(engine, hid)


async def search(engine: AsyncEngine, *, text: str = "", since: float | None = None, until: float | None = None,
                 limit: int = 50) -> list[dict[str, Any]]:
    """Handovers, latest shift change first; `text` matches the note, the content, either leader."""
    q = select(handovers).order_by(handovers.c.boundary_ts.desc(), handovers.c.id.desc()).limit(limit)
    if text:
        pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        q = q.where(or_(handovers.c.search_text.like(pattern, escape="\\"),
                        handovers.c.outgoing.like(pattern, escape="\\"),
                        handovers.c.incoming.like(pattern, escape="\\"),
                        handovers.c.acked_by.like(pattern, escape="\\")))
    if since is not None:
        q = q.where(handovers.c.boundary_ts >= since)
    if until is not None:
        q = q.where(handovers.c.boundary_ts < until)
    async with engine.connect() as conn:
        return [_doc(r) for r in (await conn.execute(q)).all()]


async def acknowledged_for(engine: AsyncEngine, user: str, boundary_ts: float) -> bool:
    """Whether `user`'s handover for that shift change has been acknowledged."""
    async with engine.connect() as conn:
        n = (await conn.execute(select(func.count()).select_from(handovers).where(
            handovers.c.outgoing == user, handovers.c.boundary_ts == boundary_ts,
            handovers.c.acked_ts.is_not(None)))).scalar()
    return bool(n)


async def last_states(engine: AsyncEngine, agents: list[str], since: float, until: float) -> dict[str, str]:
    """Each agent's latest `agent.state` state in [since, until] (absent: no change seen)."""
    out: dict[str, str] = {}
    if not agents:
        return out
    async with engine.connect() as conn:
        rows = (await conn.execute(select(events.c.agent_id, events.c.data).where(
            events.c.kind == str(Kind.AGENT_STATE), events.c.agent_id.in_(agents), events.c.ts >= since,
            events.c.ts <= until).order_by(events.c.ts, events.c.id))).all()
    for aid, data in rows:
        d = json.loads(data) if isinstance(data, str) else (data or {})
        out[str(aid)] = str(d.get("state"))
    return out


async def signed_in(engine: AsyncEngine, agents: list[str], now: float) -> set[str]:
    """Which of `agents` hold an unexpired desktop session (signed in to the system)."""
    if not agents:
        return set()
    async with engine.connect() as conn:
        rows = (await conn.execute(select(sessions.c.agent_no).where(
            sessions.c.agent_no.in_(agents), sessions.c.expires_ts > now).distinct())).all()
    return {str(r[0]) for r in rows}


async def handed_at(engine: AsyncEngine, since: float, until: float) -> set[float]:
    """The shift changes in [since, until] that have a handover."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(handovers.c.boundary_ts).where(
            handovers.c.boundary_ts >= since, handovers.c.boundary_ts <= until).distinct())).all()
    return {float(r[0]) for r in rows}
