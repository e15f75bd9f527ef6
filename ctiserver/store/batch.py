"""One batch of events into the `events` table, inside the caller's transaction, as fast as each database allows.

The writer (writer.py) decides *when* a batch goes and what happens when the database fails; this module is
*how* the rows go in, and which events can go at all (`validate`, `is_data_error`).

* PostgreSQL: binary COPY (asyncpg `copy_records_to_table`) straight into `events`, in a savepoint. COPY
  cannot skip duplicate keys, so when the table already holds one of the batch's `event_key`s (a journal
  replayed after a crash between its insert and its truncate) the savepoint is rolled back and the batch
  goes as INSERT ... ON CONFLICT DO NOTHING. COPY wrote 3.5x what that INSERT did (benchmarks/store_bench.py).
* SQLite: one executemany of a plain INSERT ... ON CONFLICT DO NOTHING with the JSON text made here, past
  SQLAlchemy's per-row parameter processing (which cost more than SQLite's own work).
* Anything else: SQLAlchemy's insert.

Either way the batch is in the caller's transaction: nothing is acknowledged before its commit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from ..events import Event
from . import jsontext
from .schema import events

COLUMNS = ("ts", "kind", "call_id", "agent_id", "queue", "tier", "server", "event_key", "data")
_SQLITE_INSERT = (f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
                  "ON CONFLICT (event_key) DO NOTHING")
_UNIQUE_VIOLATION = "23505"

# Column limits come from the schema, so an over-long value is refused the same
# way on SQLite (which would store it) and PostgreSQL (which would fail the batch).
_STR_LIMITS: dict[str, int] = {
    name: int(getattr(events.c[name].type, "length", 0) or 0)
    for name in ("kind", "call_id", "agent_id", "queue", "tier", "server")
}


_LIMITS = tuple(_STR_LIMITS.values())  # in the order validate() reads the fields
assert tuple(_STR_LIMITS) == ("kind", "call_id", "agent_id", "queue", "tier", "server")


def validate(event: Event) -> str | None:
    """Why `event` cannot be stored (None if it can). Runs on every append: the usual event (short ASCII
    strings, a float time, a dict) is passed by a quick look, anything else gets the full check."""
    if event.__class__ is Event and event.ts.__class__ is float and event.ts - event.ts == 0.0 \
            and event.data.__class__ is dict and event.kind:
        for value, limit in zip((event.kind, event.call_id, event.agent_id, event.queue, event.tier, event.server),
                                _LIMITS, strict=True):
            if value is not None and (value.__class__ is not str or len(value) > limit or not value.isascii()
                                      or "\x00" in value):
                return _validate(event)
        return None
    return _validate(event)


def _validate(event: Event) -> str | None:
    if not isinstance(event, Event):
        return f"not an Event: {type(event).__name__}"
    if not isinstance(event.kind, str) or not event.kind:
        return "kind must be a non-empty string"
    if isinstance(event.ts, bool) or not isinstance(event.ts, (int, float)) or not math.isfinite(event.ts):
        return f"ts must be a finite number of epoch seconds, not {event.ts!r}"
    if not isinstance(event.data, dict):
        return f"data must be a dict, not {type(event.data).__name__}"
    for name, limit in _STR_LIMITS.items():
        value = getattr(event, name)
        if value is None:
            continue
        if not isinstance(value, str):
            return f"{name} must be a string, not {type(value).__name__}"
        if limit and len(value) > limit:
            return f"{name} is {len(value)} characters, the limit is {limit}"
        if "\x00" in value:
            return f"{name} contains a NUL character"
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                return f"{name} is not valid Unicode text"
    return None


def is_data_error(exc: BaseException) -> bool:
    """True when the database refused the rows themselves (retrying would fail forever).

    SQLAlchemy's asyncpg dialect reports most server errors as a plain DBAPIError,
    so the SQLSTATE class decides: 22 (data exception) and 23 (integrity violation)
    are the row's fault; everything else (connection, shutdown, missing table while
    a migration is pending, ...) is the database's, and the batch waits for a retry.
    """
    if isinstance(exc, (sa_exc.DataError, sa_exc.IntegrityError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        state = _sqlstate(exc.orig)
        return isinstance(state, str) and state[:2] in ("22", "23")
    # A StatementError that is not a DBAPIError failed while binding parameters
    # (e.g. data that cannot be serialised to JSON): the row is at fault, not the server.
    return isinstance(exc, sa_exc.StatementError)


def _sqlstate(exc: BaseException | None) -> str | None:
    state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return state if isinstance(state, str) else None


def short_error(exc: BaseException) -> str:
    """A one-line description of a database error (SQLAlchemy's include the SQL and all parameters)."""
    orig = getattr(exc, "orig", None)
    base = orig if orig is not None else exc
    msg = str(base).strip().splitlines()[0] if str(base).strip() else ""
    return f"{type(base).__name__}: {msg}"[:300]


def insert_ignoring_duplicates(dialect: str) -> Insert:
    """INSERT INTO events ... ON CONFLICT DO NOTHING, for SQLite or PostgreSQL.

    PostgreSQL names no key: the month-partitioned `events` (migration 0016) is unique on (event_key, ts),
    a unique key on a partitioned table must hold the partition column; a replayed event has both the same,
    so it is skipped either way (tests/store/test_partitions.py)."""
    if dialect == "postgresql":
        return postgresql.insert(events).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(events).on_conflict_do_nothing(index_elements=["event_key"])
    raise ValueError(f"no duplicate-ignoring insert for dialect {dialect!r}")


def _records(rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows as tuples in COLUMNS order, `data` as JSON text (what the engine's serializer would make)."""
    out = []
    for row in rows:
        try:
            data = jsontext.dumps(row["data"], allow_nan=False)
        except ValueError as exc:  # NaN/Infinity: PostgreSQL's json has none; the row is at fault
            raise sa_exc.DataError("encoding an event's data as JSON", None, exc) from exc
        out.append((row["ts"], row["kind"], row["call_id"], row["agent_id"], row["queue"], row["tier"],
                    row["server"], row["event_key"], data))
    return out


class DuplicateBatch(Exception):
    """A `fresh` batch met keys the table holds already (a batch whose commit went through unacknowledged):
    its transaction is spoiled; send the batch again, in a new one, with `fresh=False`."""


async def insert_events(conn: AsyncConnection, rows: Sequence[dict[str, Any]], *, fresh: bool = False,
                        alone: bool = False) -> None:
    """Insert `rows` (dicts of COLUMNS) into `events` in `conn`'s open transaction; duplicate keys are skipped.

    `fresh`: the rows were never sent before (new keys, from memory), so PostgreSQL's COPY goes without the
    savepoint that lets a replayed batch fall back to INSERT ... ON CONFLICT (two round trips fewer per
    batch); should a key be there after all, DuplicateBatch is raised instead. `alone` (with `fresh`): nothing
    else goes in this transaction, so on PostgreSQL the COPY goes as one statement that commits itself, with
    no BEGIN and no COMMIT (one round trip for the batch); the caller's commit then sends nothing.
    Raises what the database raises (see `is_data_error` for which errors are the rows' fault)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        if fresh and await _copy_pg_fresh(conn, rows, alone):
            return
        await _copy_pg(conn, rows)
    elif dialect == "sqlite":
        await conn.exec_driver_sql(_SQLITE_INSERT, _records(rows))
    else:
        await conn.execute(insert_ignoring_duplicates(dialect), list(rows))


async def _copy_pg_fresh(conn: AsyncConnection, rows: Sequence[dict[str, Any]], alone: bool = False) -> bool:
    """COPY without a savepoint (`alone`: without a transaction, a statement that commits itself); False if
    this SQLAlchemy's asyncpg adapter cannot be asked to begin (then the savepoint begins the transaction, as
    before)."""
    records = _records(rows)
    adapter: Any = (await conn.get_raw_connection()).dbapi_connection
    start = getattr(adapter, "_start_transaction", None)
    if start is None or not hasattr(adapter, "_transaction"):
        return False
    try:
        if adapter._transaction is None and not alone:  # BEGIN, as SQLAlchemy's first statement would send it
            await start()
        await adapter.driver_connection.copy_records_to_table("events", records=records, columns=COLUMNS)
    except BaseException as exc:
        # SQLAlchemy did not see these calls fail (or time out, mid-query): the pool must not take the
        # connection back and roll it back over a silent link; it is dropped, the transaction with it
        await conn.invalidate()
        state = _sqlstate(exc) if isinstance(exc, Exception) else None
        if state == _UNIQUE_VIOLATION:
            raise DuplicateBatch() from exc
        if state is not None and state[:2] in ("22", "23"):
            raise sa_exc.DataError("COPY INTO events", None, exc) from exc
        raise
    return True


async def _copy_pg(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    records = _records(rows)
    savepoint = await conn.begin_nested()  # also makes sure the transaction has begun before the raw COPY
    try:
        raw: Any = (await conn.get_raw_connection()).driver_connection  # the asyncpg connection
        await raw.copy_records_to_table("events", records=records, columns=COLUMNS)
    except Exception as exc:
        await savepoint.rollback()
        state = _sqlstate(exc)
        if state is not None and state[:2] in ("22", "23") and state != _UNIQUE_VIOLATION:
            # asyncpg's own error, not SQLAlchemy's: say it is the rows' fault the way the writer reads it
            raise sa_exc.DataError("COPY INTO events", None, exc) from exc
        if state != _UNIQUE_VIOLATION:
            raise  # the database's trouble (connection, shutdown, ...): the writer retries the batch
        # a replayed journal: some keys are in already; the INSERT skips them
        await conn.execute(insert_ignoring_duplicates("postgresql"), list(rows))
    else:
        await savepoint.commit()
