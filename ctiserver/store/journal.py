"""The spill journal: an append-only JSONL file that holds events while the database cannot.

One line per event, written and fsync'd in batches, read back from a byte offset
in the original order, and truncated once every line is durable in the database.
A process that dies leaves the file behind; the next one replays it. Event keys
make a replay idempotent, so a line written to the database twice is stored once.

All methods here are blocking file IO: the writer calls them in a worker thread.
A lock file stops two live processes from sharing one journal (each would truncate
lines the other has not written yet).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..events import Event
from . import jsontext


class JournalError(Exception):
    """A journal line that cannot be turned back into an event."""


class JournalLocked(RuntimeError):
    """Another live process holds this journal."""


@dataclass(slots=True)
class Pending:
    """An event on its way to the database, with its idempotency key and when it was appended."""

    key: str
    at: float  # epoch seconds at append, for the store's lag figure
    event: Event

    def row(self) -> dict[str, Any]:
        row = self.event.as_row()
        row["event_key"] = self.key
        return row


def dump_line(doc: Any) -> bytes:
    """One JSON line as UTF-8 (never fails on odd values, see jsontext)."""
    return jsontext.dumps(doc, compact=True).encode() + b"\n"


def encode(item: Pending) -> bytes:
    """One journal line for `item`."""
    return dump_line({"k": item.key, "at": item.at, "e": item.event.as_row()})


def decode(line: bytes) -> Pending:
    """Parse one journal line; raise JournalError saying what is wrong with it."""
    try:
        doc = json.loads(line)
    except (UnicodeDecodeError, ValueError) as exc:
        raise JournalError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise JournalError("not a JSON object")
    key, at, row = doc.get("k"), doc.get("at"), doc.get("e")
    if not isinstance(key, str) or not key:
        raise JournalError("missing event key 'k'")
    if not isinstance(at, (int, float)) or isinstance(at, bool):
        raise JournalError("missing append time 'at'")
    if not isinstance(row, dict):
        raise JournalError("missing event 'e'")
    kind, ts, data = row.get("kind"), row.get("ts"), row.get("data")
    if not isinstance(kind, str) or not kind:
        raise JournalError("event has no kind")
    if not isinstance(ts, (int, float)) or isinstance(ts, bool) or not math.isfinite(ts):
        raise JournalError("event has no valid ts")
    if data is not None and not isinstance(data, dict):
        raise JournalError("event data is not an object")
    for name in ("call_id", "agent_id", "queue", "tier", "server"):
        if row.get(name) is not None and not isinstance(row[name], str):
            raise JournalError(f"event {name} is not a string")
    return Pending(key=key, at=float(at), event=Event.from_row(row))


@dataclass(slots=True)
class ReadResult:
    items: list[Pending]
    bad: list[tuple[bytes, str]]  # (raw line, why it was refused)
    offset: int  # byte offset just past the last line read
    head_at: float | None  # append time of the first good line, if any


class Journal:
    """The JSONL spill file at `path`, plus `<path>.lock` and `<path>.rejected`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.rejected_path = self.path.with_name(self.path.name + ".rejected")
        self._lock: IO[bytes] | None = None

    # --- life cycle -----------------------------------------------------------
    def open(self) -> tuple[int, float | None]:
        """Lock the journal, repair a torn last line, and return (lines left to replay, first line's time)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = _open_private(self.lock_path)  # held (and locked) for the store's lifetime
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise JournalLocked(f"journal {self.path} is in use by another process "
                                f"(lock {self.lock_path}); give each server its own journal") from None
        self._lock = lock
        if not self.path.exists():
            with _open_private(self.path) as f:
                os.fsync(f.fileno())
            _fsync_dir(self.path.parent)
            return 0, None
        lines = 0
        first: bytes | None = None
        last = b"\n"
        with open(self.path, "rb") as f:
            for line in f:
                if first is None:
                    first = line
                lines += 1
                last = line
        if not last.endswith(b"\n"):
            # A process died mid-write: end the torn line so new lines start clean.
            # It is then reported as a bad line (and kept in the rejected file).
            with open(self.path, "ab") as f:
                f.write(b"\n")
                os.fsync(f.fileno())
        head_at: float | None = None
        if first is not None:
            try:
                head_at = decode(first).at
            except JournalError:
                head_at = None
        return lines, head_at

    def close(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    # --- data -----------------------------------------------------------------
    def append(self, items: Sequence[Pending]) -> None:
        """Append `items` in order and fsync before returning."""
        if not items:
            return
        blob = b"".join(encode(item) for item in items)
        with _open_private(self.path) as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())

    def read(self, offset: int, max_items: int) -> ReadResult:
        """Read up to `max_items` lines from byte `offset` (bad lines count towards the limit)."""
        items: list[Pending] = []
        bad: list[tuple[bytes, str]] = []
        head_at: float | None = None
        with open(self.path, "rb") as f:
            f.seek(offset)
            while len(items) + len(bad) < max_items:
                line = f.readline()
                if not line:
                    break
                if not line.endswith(b"\n"):
                    # Only we append, and only between reads; a line without its end is torn.
                    bad.append((line, "torn line (a write was cut short)"))
                    offset += len(line)
                    break
                offset += len(line)
                if not line.strip():
                    bad.append((line, "empty line"))
                    continue
                try:
                    item = decode(line)
                except JournalError as exc:
                    bad.append((line, str(exc)))
                    continue
                if head_at is None:
                    head_at = item.at
                items.append(item)
        return ReadResult(items, bad, offset, head_at)

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def truncate(self) -> None:
        """Empty the journal (every line is in the database)."""
        with open(self.path, "r+b") as f:
            f.truncate(0)
            os.fsync(f.fileno())

    def reject(self, entries: Sequence[tuple[str, dict[str, Any] | str]]) -> None:
        """Keep events the database refused, with the reason, in `<journal>.rejected` (JSONL)."""
        if not entries:
            return
        blob = b"".join(dump_line({"error": error, "event": payload}) for error, payload in entries)
        with _open_private(self.rejected_path) as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())


def _open_private(path: Path) -> IO[bytes]:
    """Open for appending; a new file is 0600 (events carry callers' numbers and names)."""
    return open(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
