"""The election's fencing claims as the features see them (ctiserver/fencing.py `Claims`), in PostgreSQL.

    in_transaction ─▶ Leadership.claim in the caller's transaction (the dialer's attempt row)
    action         ─▶ Leadership.claim in a short transaction of its own (a callback's agent leg)
    this_term      ─▶ as `action`, the key suffixed with the epoch (the ACD counts its rings per process)
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .node import Leadership


class LeaderClaims:
    """Claims under `leadership`'s epoch; `engine` is the election's own small pool."""

    def __init__(self, leadership: Leadership, engine: AsyncEngine) -> None:
        self.leadership = leadership
        self.engine = engine

    async def in_transaction(self, conn: AsyncConnection, kind: str, key: str) -> None:
        await self.leadership.claim(conn, kind, key)

    async def action(self, kind: str, key: str) -> None:
        async with self.engine.begin() as conn:
            await self.leadership.claim(conn, kind, key)

    async def this_term(self, kind: str, key: str) -> None:
        await self.action(kind, f"{key}@{self.leadership.epoch}")
