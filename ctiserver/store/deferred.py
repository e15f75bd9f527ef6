"""Sinks that follow the events a moment later, in their own transaction (the KPI facts).

A sink in the batch's transaction (`EventStore.add_sink`) costs every batch a savepoint and its own
statements: under a 100-call load most of the store's round trips. A deferred sink is handed the rows of
every committed batch and runs at most every `every_s`, over all of them, in one transaction of its own, in
the writer's task (so no batch commits while it runs, and it sees the table as its rows left it).

What a crash can lose is the sink's work, never the events: a batch that leaves rows waiting for the sink
also records, in its own transaction, the oldest event time among them in `sink_marks` (one UPDATE, and only
when that time moves back, so once per run of the sink under a steady load); the sink's run clears it. A
writer that finds its mark set when it starts (it crashed, or the sink failed on bad data) has the sink
catch up from the events table since that time (`DeferredSink.catch_up`, idempotent), and so does a run
after more rows waited than `max_rows`. The writer is named by host and journal path: a journal belongs to
one live process (it is locked), and a restarted process takes up the same journal and the same mark.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import exc as sa_exc
from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .batch import is_data_error
from .batch import short_error as _short
from .schema import sink_marks

log = logging.getLogger("ctiserver.store")


class DeferredSink(Protocol):
    """What the store asks of a deferred sink."""

    name: str  # its row in sink_marks (at most 40 characters)

    async def __call__(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Derive what these committed rows change (idempotent: a row may come twice)."""

    async def catch_up(self, conn: AsyncConnection, since: float) -> None:
        """Derive again everything the events from `since` on change (after a crash or a failure)."""

    def clear(self) -> None:
        """Forget what it keeps in memory (its transaction was rolled back)."""


def writer_key(journal: Path) -> str:
    """This writer's name in sink_marks: host and journal path (the journal has one live owner)."""
    key = f"{socket.gethostname()}:{journal.resolve()}"
    return key if len(key) <= 255 else key[:120] + "..." + key[-132:]


class DeferredSinks:
    """The deferred sinks of one EventStore and what they have not seen yet (see the module docstring).

    The store calls `in_batch` inside each batch's transaction, `committed` or `rolled_back` after it, asks
    `due` in its loop and calls `run`. Not thread-safe: the writer's task alone uses it."""

    def __init__(self, writer: str, every_s: float, max_rows: int = 100_000) -> None:
        if every_s <= 0:
            raise ValueError("every_s must be > 0")
        self.writer = writer
        self.every_s = every_s
        self.max_rows = max_rows
        self.sinks: list[DeferredSink] = []
        self._rows: list[Mapping[str, Any]] = []  # committed, not yet given to the sinks
        self._waiting_since: float | None = None  # time.monotonic() of the oldest of them
        self._mark: float | None = None  # what sink_marks holds for this writer (None: nothing pending)
        self._catch_up = False  # the sinks must catch up from `_mark` (a mark found at start, an overflow)
        self._ready = False  # our rows exist in sink_marks and a mark left by a previous run was read
        self._staged: tuple[float | None, float | None] | None = None  # the open batch's (mark, mark found)
        self._retry_at: float | None = None  # time.monotonic() before which a failed run is not tried again
        self.committed_rows = 0  # rows handed over by committed batches
        self.done_rows = 0  # of those: handled by the sinks (or dropped after a failure, the mark kept)
        self.runs = 0
        self.failures = 0

    def add(self, sink: DeferredSink) -> None:
        if not 0 < len(sink.name) <= 40:
            raise ValueError(f"a deferred sink's name must have 1-40 characters: {sink.name!r}")
        self.sinks.append(sink)

    # --- inside and after a batch's transaction ---------------------------------------
    async def in_batch(self, conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Make sure the mark covers `rows` once this transaction commits (at most two statements)."""
        mark, found = self._mark, None
        if not self._ready:
            mark = found = await self._prepare(conn)
        oldest = min((r["ts"] for r in rows), default=None)
        if oldest is not None and (mark is None or oldest < mark):
            m = sink_marks.c
            await conn.execute(update(sink_marks)
                               .where(m.writer == self.writer,
                                      or_(m.pending_since.is_(None), m.pending_since > oldest))
                               .values(pending_since=oldest))
            mark = oldest
        self._staged = (mark, found)

    def covered(self, rows: Sequence[Mapping[str, Any]]) -> bool:
        """Whether the mark in the table already covers `rows` (it is at or before their oldest time), so their
        batch needs no statement of ours; if so it is staged as `in_batch` would have."""
        if not self._ready:
            return False
        oldest = min((r["ts"] for r in rows), default=None)
        if oldest is not None and (self._mark is None or oldest < self._mark):
            return False
        self._staged = (self._mark, None)
        return True

    async def _prepare(self, conn: AsyncConnection) -> float | None:
        """Create this writer's rows if missing; return the oldest mark a previous run left (None: none)."""
        m = sink_marks.c
        have = dict((await conn.execute(
            select(m.sink, m.pending_since).where(m.writer == self.writer))).all())
        missing = [{"writer": self.writer, "sink": s.name, "pending_since": None}
                   for s in self.sinks if s.name not in have]
        if missing:
            await conn.execute(insert(sink_marks), missing)
        left = [t for t in have.values() if t is not None]
        return min(left) if left else None

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def settled(self) -> bool:
        """Opened, and no catch-up waits (rows may)."""
        return self._ready and not self._catch_up

    async def open(self, engine: AsyncEngine) -> None:
        """Read the mark a previous run of this writer left (at start, before any batch: a standby that never
        writes a batch still catches up what it left behind as a leader)."""
        async with engine.begin() as conn:
            found = await self._prepare(conn)
        self._staged = (found, found)
        self.committed([])

    def committed(self, rows: Sequence[Mapping[str, Any]]) -> None:
        staged, self._staged = self._staged, None
        if staged is None:
            return
        self._mark, found = staged
        if not self._ready and found is not None:
            self._catch_up = True  # a previous run left facts behind: catch up before anything else
            log.warning("deferred sinks of %s: a previous run left them behind from ts %.3f; catching up",
                        self.writer, found)
        self._ready = True
        if not rows:
            return
        self.committed_rows += len(rows)
        if self._waiting_since is None:
            self._waiting_since = time.monotonic()
        if self._catch_up:  # the catch-up reads them from the table anyway
            self.done_rows += len(rows)
            return
        self._rows.extend(rows)
        if len(self._rows) > self.max_rows:
            log.warning("deferred sinks of %s: %d rows waiting; the next run catches up from the table instead",
                        self.writer, len(self._rows))
            self.done_rows += len(self._rows)
            self._rows = []
            self._catch_up = True

    def rolled_back(self) -> None:
        self._staged = None

    # --- the sinks' own run ----------------------------------------------------------
    @property
    def pending(self) -> bool:
        return bool(self._rows) or self._catch_up

    def next_due(self) -> float | None:
        """time.monotonic() at which `run` is due (None: nothing waits)."""
        if not self._ready or not self.pending:
            return None
        if self._retry_at is not None:
            return self._retry_at
        if self._catch_up or self._waiting_since is None:
            return 0.0
        return self._waiting_since + self.every_s

    def due(self, now: float, forced: bool = False) -> bool:
        at = self.next_due()
        return at is not None and (forced or now >= at)

    async def run(self, engine: AsyncEngine) -> None:
        """Give the sinks what waits (or have them catch up), clear the mark, all in one transaction.

        A database outage raises (everything stays for the next try); after a failure on the data (logged)
        the next run, `every_s` later, catches up from the table: the mark still covers those rows."""
        rows, catch_up, since = self._rows, self._catch_up, self._mark
        handed = self.committed_rows
        try:
            async with engine.begin() as conn:
                for sink in self.sinks:
                    if catch_up and since is not None:
                        sink.clear()
                        await sink.catch_up(conn, since)
                    elif rows:
                        await sink(conn, rows)
                await conn.execute(update(sink_marks).where(sink_marks.c.writer == self.writer)
                                   .values(pending_since=None))
        except Exception as exc:
            for sink in self.sinks:
                sink.clear()
            if isinstance(exc, (sa_exc.DBAPIError, OSError, TimeoutError)) and not is_data_error(exc):
                raise  # the database: try again later, nothing lost
            self.failures += 1
            if self.failures <= 10 or self.failures % 1000 == 0:
                log.error("deferred sink failed (%s), %d so far; it catches up from the events table in %gs",
                          _short(exc), self.failures, self.every_s)
            self._rows = []
            self._catch_up = since is not None
            self._retry_at = time.monotonic() + self.every_s
            self.done_rows = handed
            return
        self.runs += 1
        self._retry_at = None
        self._rows = []  # (no batch commits while the sinks run: they run in the writer's task)
        self._catch_up = False
        self._mark = None
        self._waiting_since = None
        self.done_rows = handed
