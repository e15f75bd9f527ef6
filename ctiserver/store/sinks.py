"""What the event store derives from its batches: sinks run inside each batch's transaction, and deferred
sinks (store/deferred.py) that follow the committed batches in transactions of their own.

The writer (writer.py) calls `in_batch` inside every batch's transaction after the insert, then `committed`
or `rolled_back`; when and how the deferred sinks run, and what a database failure means, stay the writer's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from .batch import is_data_error
from .batch import short_error as _short
from .deferred import DeferredSink, DeferredSinks, writer_key

log = logging.getLogger("ctiserver.store")

Sink = Callable[[AsyncConnection, Sequence[dict[str, Any]]], Awaitable[None]]


class BatchSinks:
    """The store's sinks: in the batch's transaction (`add`) and deferred (`add_deferred`)."""

    def __init__(self, journal: Path) -> None:
        self._journal = journal
        self.inline: list[Sink] = []
        self.failures = 0  # inline sinks that failed on the data (the events were stored)
        self.deferred: DeferredSinks | None = None

    def add(self, sink: Sink) -> None:
        """Call `sink(conn, rows)` inside every batch's transaction, after its insert, in a savepoint.

        A sink must be idempotent (a batch may be written twice). If it fails on the data, the events
        are still written and the failure is logged; a database outage fails the batch as usual.
        """
        self.inline.append(sink)

    def add_deferred(self, sink: DeferredSink, every_s: float) -> None:
        """Give `sink` the rows of the committed batches at most every `every_s`, in a transaction of its
        own, with a catch-up after a crash (store/deferred.py). Several share the shortest interval."""
        if self.deferred is None:
            self.deferred = DeferredSinks(writer_key(self._journal), every_s)
        self.deferred.every_s = min(self.deferred.every_s, every_s)
        self.deferred.add(sink)

    async def in_batch(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        """The inline sinks, then the deferred sinks' mark, in the batch's open transaction."""
        for sink in self.inline:
            try:
                async with conn.begin_nested():
                    await sink(conn, rows)
            except Exception as exc:
                if isinstance(exc, sa_exc.DBAPIError) and not is_data_error(exc):
                    raise  # the database, not the sink: the whole batch is retried
                self.failures += 1
                if self.failures <= 10 or self.failures % 1000 == 0:
                    log.error("event sink %r failed (%s), %d so far; the events are stored",
                              sink, _short(exc), self.failures)
        if self.deferred is not None:
            await self.deferred.in_batch(conn, rows)

    def need_nothing(self, rows: list[dict[str, Any]]) -> bool:
        """Whether a batch of `rows` needs no statement of the sinks (no inline sink, and the deferred sinks'
        mark already covers the rows), so the rows may go alone; if so the batch is staged for `committed`
        as `in_batch` would have."""
        return not self.inline and (self.deferred is None or self.deferred.covered(rows))

    def committed(self, rows: list[dict[str, Any]]) -> None:
        if self.deferred is not None:
            self.deferred.committed(rows)

    def rolled_back(self) -> None:
        if self.deferred is not None:
            self.deferred.rolled_back()

    def waiting_rows(self) -> int:
        """Committed rows the deferred sinks have not handled yet."""
        d = self.deferred
        return d.committed_rows - d.done_rows if d is not None else 0
