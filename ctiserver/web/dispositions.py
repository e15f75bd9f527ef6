"""Dispositions: what a call was about and whether it was resolved, kept in a table and the event log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ..events import Event, Kind
from .tables import dispositions


async def record(engine: AsyncEngine, *, fields: dict[str, Any], agent_no: str, now: float) -> dict[str, Any]:
    row = {**fields, "agent_no": agent_no, "ts": now}
    async with engine.begin() as conn:
        result = await conn.execute(insert(dispositions).values(**row))
        disp_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    return {"id": disp_id, **row}


def as_event(row: dict[str, Any]) -> Event:
    return Event(kind=Kind.DISPOSITION, ts=row["ts"], call_id=row.get("call_id"), agent_id=row["agent_no"],
                 data={"id": row["id"], "category": row["category"], "note": row["note"],
                       "resolved": row["resolved"]})


async def list_for(engine: AsyncEngine, *, call_id: str | None, agent_no: str | None,
                   limit: int) -> list[dict[str, Any]]:
    q = select(dispositions)
    if call_id is not None:
        q = q.where(dispositions.c.call_id == call_id)
    if agent_no is not None:
        q = q.where(dispositions.c.agent_no == agent_no)
    q = q.order_by(dispositions.c.id.desc()).limit(limit)
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(q)).mappings()]
