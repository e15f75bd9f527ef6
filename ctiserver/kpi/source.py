"""Where a report's facts come from: the event store (an engine, in parallel, or one connection), or a
list of events (the simulator's), loaded into an in-memory SQLite so the very same SQL runs on them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from ..events import Event
from ..store.schema import events
from .compute import fetch_facts, fetch_facts_parallel
from .config import KpiConfig
from .facts import Facts, Window

Source = AsyncEngine | AsyncConnection | Iterable[Event]


async def fetch_report_facts(source: Source, cfg: KpiConfig, win: Window, dims: Sequence[str]) -> Facts:
    """The facts of `win` summed by the entity dimensions `dims`, from whichever source was given."""
    if isinstance(source, AsyncEngine):
        return await fetch_facts_parallel(source, cfg, win, dims)
    if isinstance(source, AsyncConnection):
        return await fetch_facts(source, cfg, win, dims)
    return await _facts_from_events(source, cfg, win, dims)


async def _facts_from_events(evs: Iterable[Event], cfg: KpiConfig, win: Window, dims: Sequence[str]) -> Facts:
    engine = create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sc: events.metadata.create_all(sc, tables=[events]))
            batch: list[dict[str, Any]] = []
            for ev in evs:
                batch.append(ev.as_row())
                if len(batch) >= 5000:
                    await conn.execute(events.insert(), batch)
                    batch = []
            if batch:
                await conn.execute(events.insert(), batch)
        async with engine.connect() as conn:
            return await fetch_facts(conn, cfg, win, dims)
    finally:
        await engine.dispose()
