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

The lease session: a node runs its attempts on one connection of its own, kept open. The transaction that
takes an epoch also takes the session-level advisory lock `(lock_space(cluster), epoch)` on it, and the
leader keeps it for its term; PostgreSQL frees it when that session ends (the process was killed, the
connection closed). A standby's `watch(epoch)` waits for that lock on a second connection: got, the
holder's session is gone, and the standby's next attempt takes the lease over at once (`decide(orphaned=)`,
ctiserver/ha/lease.py). A connection pooler in transaction mode between the nodes and PostgreSQL would
break this (session locks need a session): connect the election to PostgreSQL directly.
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from collections.abc import Callable
from typing import Any

from sqlalchemy import BigInteger, Column, Float, MetaData, PrimaryKeyConstraint, String, Table, text
from sqlalchemy.exc import DBAPIError, IntegrityError
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
LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock wait ended by lock_timeout

log = logging.getLogger(__name__)


def lock_space(cluster: str) -> int:
    """The first key of the epochs' advisory locks (the second is the epoch): one int4 per cluster name."""
    return zlib.crc32(f"ctiserver-ha-lease:{cluster}".encode()) & 0x7FFFFFFF


class LockBusy(RuntimeError):
    """A takeover found its new epoch's lock held by another session (never expected): not taken."""


class Fenced(RuntimeError):
    """A claim refused: this node does not hold the lease under that epoch (any more)."""


class AlreadyClaimed(RuntimeError):
    """A claim refused: the action was claimed before (by this leader or an earlier one)."""


def _row(r: Any, db_now: float) -> LeaseRow:
    return LeaseRow(holder=r.holder, address=r.address or "", epoch=int(r.epoch), renewed_ts=float(r.renewed_ts),
                    expires_ts=float(r.expires_ts), db_now=db_now)


class PgLease:
    """The lease row of one cluster, for one node, and this node's lease session (see the module docstring)."""

    def __init__(self, engine: AsyncEngine, node: str, address: str | Callable[[], str], ttl_s: float, *,
                 cluster: str = CLUSTER) -> None:
        self.engine, self.node, self.ttl_s, self.cluster = engine, node, ttl_s, cluster
        self._address = address  # a callable: the HTTP port is known only once the server listens
        self.space = lock_space(cluster)
        self.on_lost: Callable[[str], None] | None = None  # our lease session ended (Leadership steps down)
        self._conn: AsyncConnection | None = None  # the lease session: every attempt, and our epoch's lock
        self._raw: Any = None  # its asyncpg connection
        self._held: set[int] = set()  # the epochs whose lock the lease session holds
        self._watch: AsyncConnection | None = None  # the standby's wait for a leader's lock

    @property
    def address(self) -> str:
        return self._address() if callable(self._address) else self._address

    def session_alive(self) -> bool:
        """Whether the lease session (and so any epoch lock it holds) is still open, as far as we know."""
        return self._raw is not None and not self._raw.is_closed()

    async def _session(self) -> AsyncConnection:
        if self._conn is not None and self.session_alive():
            return self._conn
        await self._drop_session()
        conn = await self.engine.connect()
        raw: Any = (await conn.get_raw_connection()).driver_connection
        if hasattr(raw, "add_termination_listener"):
            raw.add_termination_listener(lambda _c, raw=raw: self._ended(raw))
        self._conn, self._raw = conn, raw
        return conn

    def _ended(self, raw: Any) -> None:
        if raw is not self._raw:
            return  # a session we dropped ourselves
        self._held.clear()
        if self.on_lost is not None:
            self.on_lost("the connection to PostgreSQL closed")

    async def _drop_session(self) -> None:
        conn, self._conn, self._raw = self._conn, None, None
        self._held.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()  # closes the DBAPI connection: PostgreSQL frees its locks
            with contextlib.suppress(Exception):
                await conn.close()

    async def attempt(self, epoch: int | None, orphaned: int | None = None) -> tuple[LeaseRow, Decision]:
        """Renew (under `epoch`), take over (free, expired, or of the `orphaned` epoch), or only look; returns
        the row and what it did. Runs on the lease session; a takeover takes its epoch's lock there."""
        conn = await self._session()
        locked: int | None = None
        try:
            async with conn.begin():
                row, did, locked = await self._attempt(conn, epoch, orphaned)
                for old in sorted(self._held - {row.epoch}):  # terms that are over: nobody waits on them
                    await conn.execute(text("SELECT pg_advisory_unlock(:space, :epoch)"),
                                       {"space": self.space, "epoch": old})
                    self._held.discard(old)
            if locked is not None:
                self._held.add(locked)
            return row, did
        except BaseException:
            if locked is not None:  # the epoch was not taken: its lock must not outlive the attempt
                await self._drop_session()
            elif not self.session_alive():
                await self._drop_session()
            raise

    async def _attempt(self, conn: AsyncConnection, epoch: int | None, orphaned: int | None
                       ) -> tuple[LeaseRow, Decision, int | None]:
        db_now = float((await conn.execute(text(f"SELECT {_NOW}"))).scalar_one())
        await conn.execute(text(
            "INSERT INTO ha_lease (name, holder, address, epoch, acquired_ts, renewed_ts, expires_ts) "
            "VALUES (:name, NULL, '', 0, :now, :now, :now) ON CONFLICT (name) DO NOTHING"),
            {"name": self.cluster, "now": db_now})
        r = (await conn.execute(text(
            "SELECT holder, address, epoch, renewed_ts, expires_ts FROM ha_lease WHERE name = :name FOR UPDATE"),
            {"name": self.cluster})).one()
        before = _row(r, db_now)
        did = decide(before, self.node, epoch, orphaned)
        expires = db_now + self.ttl_s
        address = self.address
        if did is Decision.RENEW:
            await conn.execute(text(
                "UPDATE ha_lease SET renewed_ts = :now, expires_ts = :exp, address = :addr WHERE name = :name"),
                {"now": db_now, "exp": expires, "addr": address, "name": self.cluster})
            return LeaseRow(self.node, address, before.epoch, db_now, expires, db_now), did, None
        if did is Decision.TAKE_OVER:
            new = before.epoch + 1
            # the epoch's lock first, in this session: it is held before anyone can read the new epoch
            if not (await conn.execute(text("SELECT pg_try_advisory_lock(:space, :epoch)"),
                                       {"space": self.space, "epoch": new})).scalar_one():
                raise LockBusy(f"the lock of epoch {new} is held by another session")
            await conn.execute(text(
                "UPDATE ha_lease SET holder = :me, address = :addr, epoch = :epoch, acquired_ts = :now, "
                "renewed_ts = :now, expires_ts = :exp WHERE name = :name"),
                {"me": self.node, "addr": address, "epoch": new, "now": db_now, "exp": expires,
                 "name": self.cluster})
            await conn.execute(epochs.insert().values(
                epoch=new, holder=self.node, address=address, acquired_ts=db_now, prev_holder=before.holder,
                prev_renewed_ts=before.renewed_ts if before.holder else None,
                prev_expires_ts=before.expires_ts if before.holder else None))
            return LeaseRow(self.node, address, new, db_now, expires, db_now), did, new
        return before, did, None

    async def watch(self, epoch: int, wait_s: float) -> bool:
        """Wait up to `wait_s` for the lock of `epoch`: True when got (the session that took that epoch has
        ended), False when it is still held. Shared, so that every standby learns it at once; let go at once."""
        conn = self._watch
        if conn is None or conn.closed or conn.invalidated:
            conn = self._watch = await self.engine.connect()
        args = {"space": self.space, "epoch": epoch}
        try:
            await conn.execute(text(f"SET lock_timeout = {max(1, int(wait_s * 1000))}"))
            await conn.execute(text("SELECT pg_advisory_lock_shared(:space, :epoch)"), args)
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                await conn.rollback()
                return False
            await self._drop_watch()
            raise
        except BaseException:
            await self._drop_watch()
            raise
        try:
            await conn.execute(text("SELECT pg_advisory_unlock_shared(:space, :epoch)"), args)
            await conn.commit()
        except Exception:
            await self._drop_watch()
        return True

    async def _drop_watch(self) -> None:
        conn, self._watch = self._watch, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    async def release(self, epoch: int) -> bool:
        """Give the lease up at once (a clean stop): a standby takes over on its next attempt."""
        async with self.engine.begin() as conn:
            res = await conn.execute(text(
                f"UPDATE ha_lease SET expires_ts = {_NOW} WHERE name = :name AND holder = :me AND epoch = :epoch"),
                {"name": self.cluster, "me": self.node, "epoch": epoch})
            return bool(res.rowcount)

    async def close(self) -> None:
        """End the lease session (its locks with it) and the watch; the next attempt opens a new one."""
        await self._drop_watch()
        await self._drop_session()


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
