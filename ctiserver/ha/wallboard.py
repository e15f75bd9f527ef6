"""A standby shows the leader's wallboard: the leader publishes its live snapshot into PostgreSQL every
second, each standby reads the latest one and serves it as its own.

    leader ── WallboardMirror.snapshot() = its ACD's own ─▶ UPSERT ha_wallboard (holder, epoch, published_ts)
    standby ─ WallboardMirror.snapshot() = the row's snapshot + "mirror": {leader, epoch, age_s, stale}

Why this and not the alternatives:

- following the event store and folding it into a shadow ACD would rebuild, on every standby, the engine's
  whole state (aging, offers, retiers, callbacks in place) from events, and drift from the leader's in
  every detail the fold gets slightly wrong; the wallboard would show a second opinion, not the truth;
- forwarding the leader's HTTP or WebSocket feed needs node-to-node credentials and a network path
  between the nodes besides the database, and a second way to fail.

The database is what every node must reach anyway, and the leader already writes to it every second (its
lease). One row, replaced in place, carries exactly what the leader's wallboard shows; a supervisor on any
node sees the same board, at most `every_s` behind. When the leader dies the row ages (`stale` once older
than `stale_s`), and the next leader's own board replaces it within its first second.

Work orders overdue and the page's `ts` are added by the desktop on each node, from the shared database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy import JSON, BigInteger, Column, Float, MetaData, String, Table, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ..lifecycle import TaskOwner
from ..lograte import LogBurst

log = logging.getLogger(__name__)

metadata = MetaData()
wallboard = Table(
    "ha_wallboard", metadata,  # migration 0014
    Column("name", String(40), primary_key=True),
    Column("holder", String(80), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("published_ts", Float, nullable=False),
    Column("snapshot", JSON, nullable=False),
)
CLUSTER = "cti"


class Board(Protocol):
    def snapshot(self) -> dict[str, Any]: ...
    def set_priority(self, call_id: str, tier: str, by: str) -> dict[str, Any]: ...


class Role(Protocol):
    def leading(self) -> bool: ...
    def status(self) -> dict[str, Any]: ...


class WallboardMirror:
    """The wallboard source of an HA node (see the module docstring); `running()` is its feature."""

    def __init__(self, local: Board, role: Role, engine: Callable[[], AsyncEngine | None],
                 now: Callable[[], float], *, every_s: float = 1.0, stale_s: float = 10.0) -> None:
        self.local, self.role, self.engine, self.now = local, role, engine, now
        self.every_s, self.stale_s = every_s, stale_s
        self._copy: dict[str, Any] | None = None  # the leader's last published row, on a standby
        self.rounds = 0
        self._round = asyncio.Condition()
        self._trouble = LogBurst(log, "HA: wallboard mirror: the database did not answer")

    def snapshot(self) -> dict[str, Any]:
        if self.role.leading() or self._copy is None:
            return self.local.snapshot()
        row = self._copy
        age = max(0.0, self.now() - float(row["published_ts"]))
        return {**row["snapshot"], "mirror": {"leader": row["holder"], "epoch": int(row["epoch"]),
                                              "age_s": round(age, 1), "stale": age > self.stale_s}}

    def set_priority(self, call_id: str, tier: str, by: str) -> dict[str, Any]:
        return self.local.set_priority(call_id, tier, by)  # a standby's API answers 503 before it gets here

    async def _publish(self, engine: AsyncEngine) -> None:
        st = self.role.status()
        row = {"name": CLUSTER, "holder": str(st.get("node") or ""), "epoch": int(st.get("epoch") or 0),
               "published_ts": self.now(), "snapshot": self.local.snapshot()}
        stmt = insert(wallboard).values(**row)
        stmt = stmt.on_conflict_do_update(index_elements=["name"], set_={k: stmt.excluded[k] for k in row
                                                                          if k != "name"})
        async with engine.begin() as conn:
            await conn.execute(stmt)
        self._copy = None

    async def _follow(self, engine: AsyncEngine) -> None:
        async with engine.connect() as conn:
            r = (await conn.execute(select(wallboard).where(wallboard.c.name == CLUSTER))).mappings().first()
        self._copy = dict(r) if r is not None else None

    async def _loop(self, tasks: TaskOwner) -> None:
        while True:
            engine = self.engine()
            if engine is not None:
                try:
                    await (self._publish(engine) if self.role.leading() else self._follow(engine))
                except Exception as exc:
                    self._trouble.add(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            async with self._round:
                self.rounds += 1
                self._round.notify_all()
            if not await tasks.idle(self.every_s):
                return

    async def wait_rounds(self, n: int) -> None:
        """Until `n` more rounds have run (tests)."""
        async with self._round:
            target = self.rounds + n
            await self._round.wait_for(lambda: self.rounds >= target)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[WallboardMirror]:
        async with TaskOwner("HA wallboard mirror", grace_s=2.0) as tasks:
            tasks.spawn(self._loop(tasks), name="ha-wallboard-mirror")
            yield self
