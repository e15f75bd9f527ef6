"""EventStore: the one writer that gets every event into the database, whatever the database does.

Features call `append(event)` from anywhere on the event loop (AMI callbacks
included): it is synchronous, O(1), and never raises on database trouble. One
background task writes batches with an insert that ignores duplicate keys.

Where an event is, in order (oldest first)::

    journal file (unread part)  ->  memory deque  ->  database
         ^ spill: oldest in memory moves here when memory is over `buffer_limit`,
           or when the database has been failing for longer than `spill_after_s`

The journal is drained before memory, so the database receives events in the
order they were appended. Each event carries `<process-uuid>:<seq>` as its key;
a line replayed twice (a crash between the insert and the truncate) is stored once.

Guarantees: a clean `close()` loses nothing (what the database will not take stays
in the journal for the next start). A hard crash loses only what was in memory:
at most one flush interval of events while the database is up, and events younger
than `spill_after_s` while it is down. Events the database refuses as data (not
as an outage) go to `<journal>.rejected` with the reason, so one bad event never
blocks the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ..clock import Clock, SystemClock
from ..events import Event
from .backoff import Backoff
from .batch import (  # noqa: F401 (re-exported)
    DuplicateBatch,
    insert_events,
    insert_ignoring_duplicates,
    is_data_error,
    validate,
)
from .batch import short_error as _short
from .deferred import DeferredSink, DeferredSinks
from .engine import make_engine
from .journal import Journal, Pending
from .sinks import BatchSinks, Sink

log = logging.getLogger("ctiserver.store")


class _Transient(Exception):
    """The database (not the data) failed; the batch stays where it is for a retry."""


class EventStore:
    """Append-only, batched, outage-proof writer of `Event`s (see the module docstring)."""

    IDLE_PING_S = 5.0  # how often an idle store checks that the database still answers

    def __init__(self, url: str, *, batch_size: int = 1000, flush_interval_s: float = 0.2,
                 buffer_limit: int = 50000, journal_path: Path, retry_max_s: float = 5.0,
                 spill_after_s: float = 2.0, close_timeout_s: float = 10.0, write_timeout_s: float = 10.0,
                 clock: Clock | None = None, engine: AsyncEngine | None = None) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if buffer_limit < 1:
            raise ValueError("buffer_limit must be at least 1")
        if flush_interval_s <= 0 or retry_max_s <= 0 or write_timeout_s <= 0:
            raise ValueError("flush_interval_s, retry_max_s and write_timeout_s must be > 0")
        if spill_after_s < 0 or close_timeout_s < 0:
            raise ValueError("spill_after_s and close_timeout_s must be >= 0")
        self._engine = engine if engine is not None else make_engine(url)
        self._owns_engine = engine is None
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.buffer_limit = buffer_limit
        self.spill_after_s = spill_after_s
        self.close_timeout_s = close_timeout_s
        self.write_timeout_s = write_timeout_s
        self._close_deadline: float | None = None  # loop time by which close() gives up on the database
        self._clock: Clock = clock or SystemClock()
        self._journal = Journal(Path(journal_path))
        self._backoff = Backoff(min(0.05, retry_max_s), retry_max_s)

        self._run_id = uuid.uuid4().hex
        self._seq = itertools.count(1)
        self._mem: deque[Pending] = deque()
        self._refused: list[tuple[str, Pending]] = []  # refused at append, not yet in the rejected file
        self._j_offset = 0  # bytes of the journal already durable in the database
        self._j_unread = 0  # journal lines past the offset
        self._j_head_at: float | None = None
        self._journal_broken = False

        self._enqueued = 0  # events that entered this store (appended + found in the journal at start)
        self._done = 0  # of those: written, or refused and kept in the rejected file
        self.written_total = 0
        self.rejected_total = 0
        self.dropped_total = 0
        self._late_total = 0
        self._refused_seen = 0
        self._db_ok = False
        self._last_error: str | None = None
        self._retry_at = 0.0  # loop time before which we do not try the database again
        # loop time of the last successful round trip; -inf: none yet, so the first ping goes out at once
        # (0.0 would wait until the monotonic clock, i.e. the uptime, passed IDLE_PING_S)
        self._last_contact = float("-inf")
        self._mem_since = 0.0  # time.monotonic() from which the memory head waits its flush interval

        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._flush_now = False
        self._closing = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._sinks = BatchSinks(Path(journal_path))

    # --- public API -----------------------------------------------------------
    @property
    def engine(self) -> AsyncEngine:
        """The store's engine, for readers (KPIs, reports) that want the same pool."""
        return self._engine

    async def start(self) -> None:
        """Lock the journal, pick up what a previous process left in it, and start writing.

        Does not wait for the database: the server runs (and buffers) while it is away.
        """
        if self._task is not None:
            raise RuntimeError("EventStore already started")
        lines, head_at = await asyncio.to_thread(self._journal.open)
        self._j_unread = lines
        self._j_head_at = head_at
        self._enqueued += lines
        if lines:
            log.warning("event journal %s holds %d events from a previous run; replaying them",
                        self._journal.path, lines)
        self._task = asyncio.create_task(self._run(), name="event-store-writer")

    def append(self, event: Event) -> None:
        """Queue `event` for the database. Never blocks, never raises on database trouble.

        The store keeps a reference, not a copy: do not change the event afterwards.
        An event that cannot be stored (see `validate`) goes to the rejected file.
        """
        item = Pending(key=f"{self._run_id}:{next(self._seq)}", at=self._clock.now(), event=event)
        if self._closed:
            self._append_after_close(item)
            return
        problem = validate(event)
        self._enqueued += 1
        if problem is not None:
            self._refused_seen += 1
            if self._refused_seen <= 10 or self._refused_seen % 1000 == 0:  # a buggy producer must not flood logs
                log.error("event refused (%s), %d so far, kept in %s: %r", problem, self._refused_seen,
                          self._journal.rejected_path, event)
            self._refused.append((problem, item))
            self._wake.set()
            return
        self._mem.append(item)
        n = len(self._mem)
        if n == 1:  # the flush interval starts now; the writer may be in a long idle wait
            self._mem_since = time.monotonic()
            self._wake.set()
        # Wake the writer once per full batch, and on every overflow it can act on (spill).
        elif n == self.batch_size or (n > self.buffer_limit and not self._journal_broken):
            self._wake.set()
        if self._journal_broken and n > self.buffer_limit * 10:
            # Neither the database nor the disk takes events: shed the oldest rather than the process.
            lost = self._mem.popleft()
            self.dropped_total += 1
            self._done += 1
            log.error("event lost: database and journal both failing; dropped %s", lost.event)

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every event appended so far is in the database (raise TimeoutError after `timeout`)."""
        if self._closed:
            raise RuntimeError("EventStore is closed; its remaining events are in the journal")
        target = self._enqueued
        deferred = self._deferred
        if self._done >= target and (deferred is None or (deferred.settled
                                                          and deferred.done_rows >= deferred.committed_rows)):
            return
        if self._task is None:
            raise RuntimeError("EventStore.flush() before start()")
        self._flush_now = True
        self._wake.set()

        async def reached() -> None:
            while self._done < target:
                await self._wait_progress()
            if deferred is not None:  # and what the deferred sinks derive from them
                handed = deferred.committed_rows
                while deferred.done_rows < handed or not deferred.settled:
                    self._flush_now = True
                    self._wake.set()
                    await self._wait_progress()

        await asyncio.wait_for(reached(), timeout)

    async def _wait_progress(self) -> None:
        if self._task is None or self._task.done():
            raise RuntimeError("the event store writer has stopped")
        self._progress.clear()
        await self._progress.wait()

    async def close(self) -> None:
        """Write what the database takes within `close_timeout_s`; leave the rest in the journal."""
        if self._closed:
            return
        if self._task is not None:
            self._closing = True
            self._wake.set()
            try:
                await self._task
            finally:
                self._task = None
        self._closed = True
        if self._mem:  # appended while the writer was finishing (or never started): keep them
            late = list(self._mem)
            self._mem.clear()
            try:
                await asyncio.to_thread(self._journal.append, late)
            except OSError as exc:
                log.error("event store closing: journal %s unwritable (%s); %d events lost",
                          self._journal.path, exc, len(late))
            else:
                log.warning("event store closing: %d late events kept in journal %s", len(late),
                            self._journal.path)
        if self._refused:
            refused, self._refused = self._refused, []
            await self._keep_rejected(refused)
        await asyncio.to_thread(self._journal.close)
        if self._owns_engine:
            await self._engine.dispose()

    def status(self) -> dict[str, Any]:
        """Health figures: db_ok, pending (not yet in the database), journaled (of those, on disk), ..."""
        oldest = [t for t in (self._j_head_at if self._j_unread else None,
                              self._mem[0].at if self._mem else None) if t is not None]
        lag = max(0.0, self._clock.now() - min(oldest)) if oldest else 0.0
        return {
            "db_ok": self._db_ok,
            "pending": len(self._mem) + self._j_unread + len(self._refused),
            "journaled": self._j_unread,
            "written_total": self.written_total,  # rows sent and committed (a replayed duplicate counts)
            "rejected_total": self.rejected_total,
            "dropped_total": self.dropped_total,
            "lag_s": round(lag, 3),
            "last_error": self._last_error,
            "journal": str(self._journal.path),
            # committed rows the deferred sinks (the KPI facts) have not handled yet
            "deferred_rows": self._sinks.waiting_rows(),
        }

    # --- the writer task ------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._wait(loop)
                await self._keep_refused()
                await self._spill()
                if self._closing:
                    await self._final_drain(loop)
                    return
                forced, self._flush_now = self._flush_now, False
                if loop.time() < self._retry_at and not forced:
                    continue
                if self._deferred is not None and not self._deferred.ready and not await self._open_deferred(loop):
                    continue
                if self._backlog() == 0:
                    if self._deferred_due(forced):
                        await self._run_deferred(loop)
                    elif loop.time() - self._last_contact >= self.IDLE_PING_S:
                        await self._ping(loop)
                    continue
                if forced or self._due(time.monotonic()):
                    await self._write_backlog(loop)
                if self._deferred_due(forced):
                    await self._run_deferred(loop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug here must not stop the writer: note it and carry on
                log.exception("event store writer error")
                self._last_error = f"writer: {exc!r}"
                self._retry_at = loop.time() + self._backoff.failure()

    async def _wait(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._wake.is_set():
            self._wake.clear()
            return
        now = loop.time()
        if now < self._retry_at:
            timeout = self._retry_at - now
            if self._mem:  # keep spilling by age while we wait out the outage
                timeout = min(timeout, max(0.05, min(self.flush_interval_s, self.spill_after_s)))
        elif self._j_unread or self._refused:
            timeout = 0.0
        elif self._mem:
            timeout = max(0.0, self._mem_since + self.flush_interval_s - time.monotonic())
        else:
            timeout = max(0.0, self.IDLE_PING_S - (now - self._last_contact))
        due = self._deferred.next_due() if self._deferred is not None and now >= self._retry_at else None
        if due is not None:
            timeout = min(timeout, max(0.0, due - time.monotonic()))
        if timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    def _backlog(self) -> int:
        return self._j_unread + len(self._mem)

    def _due(self, now: float) -> bool:
        """Is there something to write now: journal lines, a full batch, or a partial one that waited enough?"""
        return bool(self._j_unread or len(self._mem) >= self.batch_size
                    or (self._mem and now >= self._mem_since + self.flush_interval_s))

    async def _write_backlog(self, loop: asyncio.AbstractEventLoop) -> None:
        """Write what is due: the journal, and memory (a partial batch once, then only full ones).

        Leaving a partial batch for the next tick keeps batches large under a steady trickle.
        """
        first = True
        while self._j_unread or len(self._mem) >= self.batch_size or (first and self._mem):
            first = False
            try:
                if self._j_unread:
                    await self._write_journal_batch()
                else:
                    await self._write_memory_batch()
            except _Transient as exc:
                self._db_failed(loop, exc.__cause__ or exc)
                return
            self._db_succeeded(loop)
            await self._spill()
            if self._closing:
                return

    async def _write_memory_batch(self) -> None:
        batch = list(itertools.islice(self._mem, self.batch_size))
        refused = await self._insert(batch, fresh=True)
        # Only this task removes from the left, so the batch is still at the head.
        for _ in batch:
            self._mem.popleft()
        # What is left arrived while this batch was written: its flush interval starts now,
        # so a steady trickle is still written in batches, not chased one event at a time.
        self._mem_since = time.monotonic()
        await self._keep_rejected(refused)
        self._account(len(batch) - len(refused), len(refused))

    async def _write_journal_batch(self) -> None:
        got = await asyncio.to_thread(self._journal.read, self._j_offset, self.batch_size)
        refused = await self._insert(got.items) if got.items else []
        entries: list[tuple[str, dict[str, Any] | str]] = [
            (why, raw.decode("utf-8", "replace")) for raw, why in got.bad]
        entries += [(why, item.row()) for why, item in refused]
        if got.bad:
            log.error("%d unreadable line(s) in journal %s; kept in %s", len(got.bad),
                      self._journal.path, self._journal.rejected_path)
        await self._keep(entries)
        consumed = len(got.items) + len(got.bad)
        self._j_offset = got.offset
        self._j_unread = max(0, self._j_unread - consumed)
        if consumed == 0:  # the file is shorter than we counted (edited by hand?): start afresh
            self._j_unread = 0
        self._account(len(got.items) - len(refused), len(refused) + len(got.bad))
        if self._j_unread == 0:
            await asyncio.to_thread(self._journal.truncate)
            self._j_offset = 0
            self._j_head_at = None
            log.info("event journal %s replayed into the database and emptied", self._journal.path)
        else:
            self._j_head_at = got.head_at if got.head_at is not None else self._j_head_at

    async def _insert(self, batch: Sequence[Pending], fresh: bool = False) -> list[tuple[str, Pending]]:
        """Insert `batch`; return the rows refused as data. Raise _Transient if the database failed."""
        try:
            await self._execute([item.row() for item in batch], fresh)
            return []
        except Exception as exc:
            if not is_data_error(exc) or len(batch) == 1:
                if is_data_error(exc):
                    return [(_short(exc), batch[0])]
                raise _Transient() from exc
        # Some row is bad: find it (them) one by one; the good ones still go in.
        refused: list[tuple[str, Pending]] = []
        for item in batch:
            try:
                await self._execute([item.row()], fresh)
            except Exception as exc:
                if not is_data_error(exc):
                    raise _Transient() from exc
                refused.append((_short(exc), item))
        return refused

    def _attempt_timeout(self) -> float:
        # A silent (half-open) database must not hold the writer, and with it spilling and
        # close(), for the driver's whole statement timeout.
        if self._close_deadline is None:
            return self.write_timeout_s
        left = self._close_deadline - asyncio.get_running_loop().time()
        return max(0.05, min(self.write_timeout_s, left))

    async def _execute(self, rows: list[dict[str, Any]], fresh: bool = False) -> None:
        """One transaction: the rows, the in-batch sinks, the deferred sinks' mark. `fresh`: rows from memory,
        never sent (store/batch.py insert_events); sent again as a replay if the table had one already."""
        try:
            await self._transaction(rows, fresh)
        except DuplicateBatch:
            await self._transaction(rows, False)

    async def _transaction(self, rows: list[dict[str, Any]], fresh: bool) -> None:
        try:
            async with asyncio.timeout(self._attempt_timeout()):
                async with self._engine.begin() as conn:
                    # a batch from memory that the sinks need nothing for goes alone: on PostgreSQL one COPY
                    alone = fresh and self._sinks.need_nothing(rows)
                    await insert_events(conn, rows, fresh=fresh, alone=alone)
                    if not alone:
                        await self._sinks.in_batch(conn, rows)
        except BaseException:
            self._sinks.rolled_back()
            raise
        self._sinks.committed(rows)

    # --- sinks: derived tables (store/sinks.py); the deferred ones run in this task ---------------------
    def add_sink(self, sink: Sink) -> None:
        """A sink inside every batch's transaction (`BatchSinks.add`)."""
        self._sinks.add(sink)

    def add_deferred_sink(self, sink: DeferredSink, every_s: float) -> None:
        """A sink that follows the committed batches (`BatchSinks.add_deferred`, store/deferred.py)."""
        self._sinks.add_deferred(sink, every_s)

    @property
    def _deferred(self) -> DeferredSinks | None:
        return self._sinks.deferred

    def _deferred_due(self, forced: bool) -> bool:
        return self._deferred is not None and self._deferred.due(time.monotonic(), forced)

    async def _open_deferred(self, loop: asyncio.AbstractEventLoop) -> bool:
        assert self._deferred is not None
        try:
            async with asyncio.timeout(self._attempt_timeout()):
                await self._deferred.open(self._engine)
        except Exception as exc:  # the database is away (or not migrated yet): tried again after the backoff
            self._db_failed(loop, exc)
            return False
        return True

    async def _run_deferred(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._deferred is not None
        try:
            async with asyncio.timeout(self._attempt_timeout()):
                await self._deferred.run(self._engine)
        except Exception as exc:
            self._db_failed(loop, exc)
        else:
            self._db_succeeded(loop)
        self._progress.set()

    async def _ping(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            async with asyncio.timeout(self._attempt_timeout()):
                async with self._engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except Exception as exc:
            self._db_failed(loop, exc)
        else:
            self._db_succeeded(loop)

    def _db_failed(self, loop: asyncio.AbstractEventLoop, exc: BaseException) -> None:
        first = self._last_error is None
        self._last_error = _short(exc)
        delay = self._backoff.failure()
        self._retry_at = loop.time() + delay
        if self._db_ok or first:
            log.warning("database unreachable (%s); buffering events, %d pending", self._last_error,
                        self._backlog())
        self._db_ok = False

    def _db_succeeded(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._db_ok and self._last_error is not None:
            log.info("database reachable again; writing %d pending events", self._backlog())
        self._db_ok = True
        self._backoff.success()
        self._retry_at = 0.0
        self._last_contact = loop.time()

    async def _spill(self, everything: bool = False) -> None:
        """Move the oldest events from memory to the journal when memory is full or the database is down."""
        if not self._mem:
            return
        n = len(self._mem) - self.buffer_limit
        if everything:
            n = len(self._mem)
        elif not self._db_ok and self._last_error is not None:
            cutoff = self._clock.now() - self.spill_after_s
            aged = 0
            for item in self._mem:
                if item.at > cutoff:
                    break
                aged += 1
            n = max(n, aged)
        if n <= 0:
            return
        items = [self._mem.popleft() for _ in range(n)]
        try:
            await asyncio.to_thread(self._journal.append, items)
        except OSError as exc:
            self._mem.extendleft(reversed(items))
            if not self._journal_broken:
                log.error("cannot write event journal %s: %s; holding %d events in memory",
                          self._journal.path, exc, len(self._mem))
            self._journal_broken = True
            self._last_error = f"journal: {exc}"
            return
        if self._journal_broken:
            log.info("event journal %s writable again", self._journal.path)
        self._journal_broken = False
        if self._j_unread == 0:
            self._j_head_at = items[0].at
            log.warning("spilling events to journal %s (database %s)", self._journal.path,
                        "down" if not self._db_ok else "slower than events arrive")
        self._j_unread += n

    async def _keep_refused(self) -> None:
        if not self._refused:
            return
        refused, self._refused = self._refused, []
        await self._keep_rejected(refused)
        self._account(0, len(refused))

    async def _keep_rejected(self, refused: list[tuple[str, Pending]]) -> None:
        await self._keep([(why, item.row()) for why, item in refused])

    async def _keep(self, entries: list[tuple[str, dict[str, Any] | str]]) -> None:
        if not entries:
            return
        try:
            await asyncio.to_thread(self._journal.reject, entries)
        except OSError as exc:
            for why, payload in entries:
                log.error("event refused (%s) and rejected file unwritable (%s): %s", why, exc, payload)

    def _account(self, written: int, rejected: int) -> None:
        self.written_total += written
        self.rejected_total += rejected
        self._done += written + rejected
        self._progress.set()

    async def _final_drain(self, loop: asyncio.AbstractEventLoop) -> None:
        deadline = self._close_deadline = loop.time() + self.close_timeout_s
        # Just found failing (still in backoff)? Then do not make shutdown wait on it again.
        just_failed = not self._db_ok and self._last_error is not None and loop.time() < self._retry_at
        while self._backlog() and loop.time() < deadline and not just_failed:
            await self._write_backlog_once(loop)
            if not self._db_ok:
                break
        if self._deferred_due(True) and self._db_ok and loop.time() < deadline:
            await self._run_deferred(loop)  # what is left behind is caught up at the next start
        await self._spill(everything=True)
        if self._mem:
            log.error("event store closed with %d events neither in the database nor in the journal",
                      len(self._mem))
        elif self._j_unread:
            log.warning("event store closed; %d events wait in journal %s for the next start",
                        self._j_unread, self._journal.path)
        self._progress.set()

    async def _write_backlog_once(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            if self._j_unread:
                await self._write_journal_batch()
            else:
                await self._write_memory_batch()
        except _Transient as exc:
            self._db_failed(loop, exc.__cause__ or exc)
        else:
            self._db_succeeded(loop)

    def _append_after_close(self, item: Pending) -> None:
        # Rare (a late callback during shutdown): straight to the journal, synchronously.
        try:
            self._journal.append([item])
        except OSError as exc:
            log.error("event appended after close and journal unwritable (%s): lost %s", exc, item.event)
            return
        self._late_total += 1
        if self._late_total == 1:
            log.warning("events appended after close go straight to journal %s (first: %s)",
                        self._journal.path, item.event.kind)
