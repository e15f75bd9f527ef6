"""The lease and the claims in PostgreSQL: thin SQL around the pure decisions of `ctiserver/ha/lease.py`.

Three tables (migration 0007):

    ha_lease   one row per cluster: holder, address, epoch, renewed_ts, expires_ts  (database clock)
    ha_epochs  one row per epoch: who took it when, and the previous holder's last renewal and expiry
               (a takeover's duration, read from the database's own stamps)
    ha_claims  (kind, key) once: every side effect that must not happen twice, with the epoch it ran under

An attempt is one short transaction: lock the lease row (`FOR UPDATE`), `decide()`, write. A claim
locks the same row `FOR SHARE` and is refused unless the row still names this node, this epoch, and
has not expired; so a claim and a takeover are ordered by the row lock, and a deposed leader's claim
fails however long it believed it led (the fencing token). Times are the database's
(`clock_timestamp()`), so the nodes' clocks need not agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import BigInteger, Column, Float, MetaData, PrimaryKeyConstraint, String, Table, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .lease import Decision, LeaseRow, decide

metadata = MetaData()

lease = Table(
    "ha_lease", metadata,
    Column("name", String(40), primary_key=True),
    Column("holder", String(80)),
    Column("address", String(200), nullable=False, default=""),
    Column("epoch", BigInteger, nullable=False, default=0),
    Column("acquired_ts", Float, nullable=False),
    Column("renewed_ts", Float, nullable=False),
    Column("expires_ts", Float, nullable=False),
)

epochs = Table(
    "ha_epochs", metadata,
    Column("epoch", BigInteger, primary_key=True, autoincrement=False),
    Column("holder", String(80), nullable=False),
    Column("address", String(200), nullable=False, default=""),
    Column("acquired_ts", Float, nullable=False),
    Column("prev_holder", String(80)),
    Column("prev_renewed_ts", Float),
    Column("prev_expires_ts", Float),
)

claims = Table(
    "ha_claims", metadata,
    Column("kind", String(24), nullable=False),
    Column("key", String(200), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("holder", String(80), nullable=False),
    Column("claimed_ts", Float, nullable=False),
    PrimaryKeyConstraint("kind", "key", name="pk_ha_claims"),
)

CLUSTER = "cti"
_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::float8"


class Fenced(RuntimeError):
    """A claim refused: this node does not hold the lease under that epoch (any more)."""


class AlreadyClaimed(RuntimeError):
    """A claim refused: the action was claimed before (by this leader or an earlier one)."""


def _row(r: Any, db_now: float) -> LeaseRow:
    return LeaseRow(holder=r.holder, address=r.address or "", epoch=int(r.epoch), renewed_ts=float(r.renewed_ts),
                    expires_ts=float(r.expires_ts), db_now=db_now)


class PgLease:
    """The lease row of one cluster, for one node."""

    def __init__(self, engine: AsyncEngine, node: str, address: str | Callable[[], str], ttl_s: float, *,
                 cluster: str = CLUSTER) -> None:
        self.engine, self.node, self.ttl_s, self.cluster = engine, node, ttl_s, cluster
        self._address = address  # a callable: the HTTP port is known only once the server listens

    @property
    def address(self) -> str:
        return self._address() if callable(self._address) else self._address

    async def attempt(self, epoch: int | None) -> tuple[LeaseRow, Decision]:
        """Renew (under `epoch`), take over (free or expired), or only look; returns the row and what it did."""
        async with self.engine.begin() as conn:
            db_now = float((await conn.execute(text(f"SELECT {_NOW}"))).scalar_one())
            await conn.execute(text(
                "INSERT INTO ha_lease (name, holder, address, epoch, acquired_ts, renewed_ts, expires_ts) "
                "VALUES (:name, NULL, '', 0, :now, :now, :now) ON CONFLICT (name) DO NOTHING"),
                {"name": self.cluster, "now": db_now})
            r = (await conn.execute(text(
                "SELECT holder, address, epoch, renewed_ts, expires_ts FROM ha_lease WHERE name = :name FOR UPDATE"),
                {"name": self.cluster})).one()
            before = _row(r, db_now)
            did = decide(before, self.node, epoch)
            expires = db_now + self.ttl_s
            address = self.address
            if did is Decision.RENEW:
                await conn.execute(text(
                    "UPDATE ha_lease SET renewed_ts = :now, expires_ts = :exp, address = :addr WHERE name = :name"),
                    {"now": db_now, "exp": expires, "addr": address, "name": self.cluster})
                return LeaseRow(self.node, address, before.epoch, db_now, expires, db_now), did
            if did is Decision.TAKE_OVER:
                new = before.epoch + 1
                await conn.execute(text(
                    "UPDATE ha_lease SET holder = :me, address = :addr, epoch = :epoch, acquired_ts = :now, "
                    "renewed_ts = :now, expires_ts = :exp WHERE name = :name"),
                    {"me": self.node, "addr": address, "epoch": new, "now": db_now, "exp": expires,
                     "name": self.cluster})
                await conn.execute(epochs.insert().values(
                    epoch=new, holder=self.node, address=address, acquired_ts=db_now, prev_holder=before.holder,
                    prev_renewed_ts=before.renewed_ts if before.holder else None,
                    prev_expires_ts=before.expires_ts if before.holder else None))
                return LeaseRow(self.node, address, new, db_now, expires, db_now), did
            return before, did

    async def release(self, epoch: int) -> bool:
        """Give the lease up at once (a clean stop): a standby takes over on its next attempt."""
        async with self.engine.begin() as conn:
            res = await conn.execute(text(
                f"UPDATE ha_lease SET expires_ts = {_NOW} WHERE name = :name AND holder = :me AND epoch = :epoch"),
                {"name": self.cluster, "me": self.node, "epoch": epoch})
            return bool(res.rowcount)


async def read_lease(engine: AsyncEngine, cluster: str = CLUSTER) -> LeaseRow | None:
    """The lease as it is now (for `ctiserver ha status`); None before any node ran."""
    async with engine.connect() as conn:
        db_now = float((await conn.execute(text(f"SELECT {_NOW}"))).scalar_one())
        r = (await conn.execute(text(
            "SELECT holder, address, epoch, renewed_ts, expires_ts FROM ha_lease WHERE name = :name"),
            {"name": cluster})).first()
    return _row(r, db_now) if r is not None else None


async def claim(conn: AsyncConnection, kind: str, key: str, *, node: str, epoch: int,
                cluster: str = CLUSTER) -> None:
    """Claim `(kind, key)` under `epoch` inside the caller's transaction (commit it with the action's record).

    Raises Fenced if the lease is no longer ours under `epoch`, AlreadyClaimed if the key was taken."""
    held = (await conn.execute(text(
        f"SELECT {_NOW} FROM ha_lease WHERE name = :name AND holder = :me AND epoch = :epoch "
        f"AND expires_ts > {_NOW} FOR SHARE"), {"name": cluster, "me": node, "epoch": epoch})).first()
    if held is None:
        raise Fenced(f"{kind} {key}: not claimed, {node} does not hold the lease under epoch {epoch}")
    try:
        async with conn.begin_nested():
            await conn.execute(claims.insert().values(kind=kind, key=key[:200], epoch=epoch, holder=node,
                                                      claimed_ts=float(held[0])))
    except IntegrityError:
        raise AlreadyClaimed(f"{kind} {key} was claimed before") from None
