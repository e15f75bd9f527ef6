"""The recording feature's adapter: AMI in, files finalized and indexed, retention daily.

Asterisk's dialplan starts the recordings ([cti-record], docs/qc.md) in the folder the global
`CTI_RECORD_DIR` names; the recorder sets that global on every Asterisk it connects to (config/recording.yaml:
the folder, or empty when recording is off). `Recorder.on_ami` is an AMI listener (cheap, synchronous):
the pure core says which recordings started and ended; finalizing runs as a task of the feature's owner.
Finalizing runs `encoders` recordings at a time (config; by default half the machine's cores, so that a busy
hour never starves the event loop's machine; an encoder does about 100 s of call per CPU second). The sweep
indexes whatever is complete in the spool and not yet indexed: a recording whose hang-up we missed (a CTI
restart mid-call, a lost AMI link) is picked up there, oldest first; the recordings whose hang-up we saw go
before each of those (a backlog of hundreds never delays today's calls).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import column, select, table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..calendar import Calendar
from ..dialplan import RECORD_DIR_VAR
from ..events import Event, Kind
from ..lifecycle import TaskOwner
from . import store
from .config import RecordingConfig
from .core import AGENT, CALLER, DONE, Ended, RecorderCore, SpoolName, Started
from .encode import EncodeError, encode
from .retention import expired, next_run, shortest_days

log = logging.getLogger(__name__)
RECHECK_S = 0.5  # first look again at a spooled recording still closing (then doubling up to sweep_every_s)

_phones = table("customer_phones", column("phone"), column("account"))
_dispositions = table("dispositions", column("call_id"), column("customer_account"))


class Recorder:
    def __init__(self, cfg: RecordingConfig, *, ami: dict[str, Any], engine: Callable[[], AsyncEngine],
                 emit: Callable[[Event], None], now: Callable[[], float], calendar: Calendar, base_dir: Path,
                 spool: Path | None = None) -> None:
        self.cfg, self.ami, self.engine, self.emit, self.now = cfg, ami, engine, emit, now
        self.calendar = calendar
        self.core = RecorderCore()
        self.spool = spool or cfg.spool()
        self.root = cfg.archive(base_dir)
        self._tasks: TaskOwner | None = None
        self._queue: asyncio.Queue[SpoolName] = asyncio.Queue()
        self._wake = asyncio.Event()
        self.indexed: asyncio.Queue[int] = asyncio.Queue()  # ids as they are indexed (tests, the demo)
        self._busy: set[str] = set()  # spool names being finalized
        self.armed: set[str] = set()  # Asterisk servers whose dialplan knows where (whether) to record
        self._armed_changed = asyncio.Event()

    # --- AMI and events -------------------------------------------------------------------------
    def on_ami(self, server: str, msg: Any) -> None:
        if self._tasks is None or not self.cfg.enabled:
            return
        for cmd in self.core.feed(server, msg):
            if isinstance(cmd, Started):
                self.emit(Event(Kind.RECORDING_START, self.now(), call_id=cmd.name.call_id,
                                agent_id=cmd.name.agent_id, server=cmd.server,
                                data={"uniqueid": cmd.name.uniqueid, "spool": cmd.name.base,
                                      "channel": cmd.channel}))
            elif isinstance(cmd, Ended):
                self._queue.put_nowait(cmd.name)
                self._wake.set()

    def on_event(self, event: Event) -> None:
        if event.kind == Kind.AMI_LOST and event.server:
            self.core.forget(event.server)
            self.armed.discard(event.server)
        elif event.kind == Kind.AMI_CONNECTED and event.server and self._tasks is not None:
            self._tasks.spawn(self._arm(event.server), name=f"recording-arm-{event.server}")

    async def _arm(self, server: str) -> None:
        """Tell `server`'s dialplan where to record (the global it reads), or that recording is off. A
        global outlives a CTI restart; after an Asterisk restart the CTI connects again and says it again."""
        client = self.ami.get(server)
        value = self.cfg.asterisk_dir if self.cfg.enabled else ""
        try:
            if client is None:
                raise RuntimeError(f"no AMI link named {server}")
            (await client.action("Setvar", {"Variable": RECORD_DIR_VAR, "Value": value}, timeout=5.0)
             ).raise_for_error("Setvar")
        except Exception as exc:
            log.error("recording: could not tell Asterisk %s where to record (%s); it records as it was told "
                      "before, until the link comes back", server, exc)
            return
        self.armed.add(server)
        self._armed_changed.set()
        log.info("recording %s on Asterisk %s", f"into {value}" if value else "off", server)

    async def wait_armed(self, server: str, timeout: float) -> None:
        """Until `server`'s dialplan was told where to record (tests: a call before that is not recorded)."""
        async def armed() -> None:
            while server not in self.armed:
                self._armed_changed.clear()
                await self._armed_changed.wait()

        await asyncio.wait_for(armed(), timeout)

    # --- finalizing -----------------------------------------------------------------------------
    def _complete(self, name: SpoolName) -> bool:
        """Asterisk said the files are closed (the done marker), or they stopped growing long ago."""
        if (self.spool / f"{name.base}{DONE}").exists():
            return True
        legs = [self.spool / f"{name.base}{s}" for s in (CALLER, AGENT)]
        mtimes = [p.stat().st_mtime for p in legs if p.exists()]
        return bool(mtimes) and self.now() - max(mtimes) > self.cfg.stale_after_s

    async def _await_done(self, name: SpoolName, tasks: TaskOwner, within_s: float = 15.0) -> bool:
        marker = self.spool / f"{name.base}{DONE}"
        loop = asyncio.get_running_loop()
        end = loop.time() + within_s
        pause = 0.05
        while not marker.exists():  # usually there at once; else look again less and less often (up to 1 s)
            if loop.time() >= end or not await tasks.idle(pause):
                return False
            pause = min(1.0, pause * 2)
        return True

    def _pending(self) -> list[SpoolName]:
        """Spool names with files and no live recording, oldest first."""
        live = {n.base for n in self.core.active.values()}
        seen: dict[str, SpoolName] = {}
        try:
            entries = os.listdir(self.spool)
        except FileNotFoundError:
            return []
        for entry in entries:
            for suffix in (CALLER, AGENT, DONE):
                if entry.endswith(suffix):
                    base = entry[: -len(suffix)]
                    name = SpoolName.parse(base)
                    if name is not None and base not in live:
                        seen[base] = name
        return sorted(seen.values(), key=lambda n: n.start_ts)

    async def finalize(self, name: SpoolName) -> int | None:
        """Encode, archive and index one recording; its spool files are removed. The row's id, or None
        (indexed before: the spool files are just removed)."""
        legs = {s: self.spool / f"{name.base}{s}" for s in (CALLER, AGENT, DONE)}
        engine = self.engine()
        if await store.is_indexed(engine, name.base):
            for p in legs.values():
                p.unlink(missing_ok=True)
            return None
        day = self.calendar.local(name.start_ts)
        rel = Path(f"{day:%Y/%m/%d}") / f"{name.base}.opus"
        done = await encode(legs[CALLER], legs[AGENT], self.root / rel, self.cfg.bitrate_kbps, self.cfg.complexity)
        async with engine.connect() as conn:  # what the row says of the call: one connection, one transaction
            facts = await store.call_facts(conn, name.call_id, name.agent_id)
            customer = await self._customer(conn, name.call_id, facts.get("number"))
        row = {"spool": name.base, "call_id": name.call_id, "uniqueid": name.uniqueid, "agent_id": name.agent_id,
               "queue": facts.get("queue"), "number": (facts.get("number") or None), "customer": customer,
               "start_ts": name.start_ts, "duration_s": round(done.duration_s, 3), "codec": self.cfg.codec,
               "size": done.size, "sha256": done.sha256, "path": str(rel), "created_ts": self.now()}
        rec_id = await store.insert_recording(engine, row)
        for p in legs.values():
            p.unlink(missing_ok=True)
        if rec_id is not None:
            log.info("recording %d indexed: call %s agent %s, %.1f s, %d bytes", rec_id, name.call_id,
                     name.agent_id, done.duration_s, done.size)
            self.emit(Event(Kind.RECORDING_DONE, self.now(), call_id=name.call_id, agent_id=name.agent_id,
                            queue=facts.get("queue"), data={"id": rec_id, "duration_s": row["duration_s"],
                                                      "size": done.size, "codec": self.cfg.codec}))
            self.indexed.put_nowait(rec_id)
        return rec_id

    async def _customer(self, conn: AsyncConnection, call_id: str, number: str | None) -> str | None:
        row = (await conn.execute(select(_dispositions.c.customer_account).where(
            _dispositions.c.call_id == call_id, _dispositions.c.customer_account.is_not(None)))).first()
        if row is None and number:
            row = (await conn.execute(select(_phones.c.account).where(_phones.c.phone == number))).first()
        return str(row[0]) if row else None

    async def _finalizer(self, tasks: TaskOwner) -> None:
        """Hands recordings to the encoders (`encoders` at a time), as each has a free one."""
        failed: set[str] = set()
        unfinished: set[str] = set()  # spooled, not live, no done marker yet
        recheck = RECHECK_S
        slots = asyncio.Semaphore(self.cfg.encoders_now())
        loop = asyncio.get_running_loop()
        sweep_at = loop.time()  # at start, then every sweep_every_s (sooner while something is closing)
        while True:
            await self._start_watched(tasks, slots, failed)
            if loop.time() >= sweep_at:  # a watched hang-up alone does not list the spool (hundreds of files)
                left = await self._sweep(tasks, slots, failed)
                # A recording nobody watches closing (a call that ended while this node was down: its done
                # marker comes a moment after the hang-up) is looked at again soon, then less and less often.
                recheck = RECHECK_S if left != unfinished else min(recheck * 2, self.cfg.sweep_every_s)
                unfinished = left
                sweep_at = loop.time() + (min(recheck, self.cfg.sweep_every_s) if left else self.cfg.sweep_every_s)
            self._wake.clear()
            if self._queue.empty() and not await tasks.idle(max(0.0, sweep_at - loop.time()), self._wake):
                return

    async def _sweep(self, tasks: TaskOwner, slots: asyncio.Semaphore, failed: set[str]) -> set[str]:
        """Finalize what is complete in the spool and not yet indexed; the names still closing."""
        left: set[str] = set()
        for name in self._pending():
            await slots.acquire()  # a free encoder, then what it takes:
            # a backlog (the spool of a night the CTI was away) is long: hang-ups watched meanwhile go first,
            # so today's calls are there for QC within seconds, whatever waits behind them
            while not self._queue.empty():
                self._spawn(tasks, slots, self._queue.get_nowait(), failed, watched=True)
                await slots.acquire()
            if name.base in failed or name.base in self._busy or not self._spooled(name):
                slots.release()  # failed before, being finalized, or just finalized
            elif self._complete(name):
                self._spawn(tasks, slots, name, failed, watched=False)
            else:
                slots.release()
                left.add(name.base)
        return left

    async def _start_watched(self, tasks: TaskOwner, slots: asyncio.Semaphore, failed: set[str]) -> None:
        """The recordings whose hang-up we saw, in the order they ended, each as an encoder is free."""
        while not self._queue.empty():
            await slots.acquire()
            self._spawn(tasks, slots, self._queue.get_nowait(), failed, watched=True)

    def _spawn(self, tasks: TaskOwner, slots: asyncio.Semaphore, name: SpoolName, failed: set[str], *,
               watched: bool) -> None:
        """Finalize `name` in the background on the encoder slot the caller holds (released when done)."""
        self._busy.add(name.base)

        async def job() -> None:
            try:
                # a watched hang-up: its done marker comes a moment later (else a later sweep takes it)
                if not watched or await self._await_done(name, tasks):
                    await self._finalize_logged(name, failed)
            finally:
                self._busy.discard(name.base)
                slots.release()

        tasks.spawn(job(), name=f"recording-finalize-{name.base}")

    def _spooled(self, name: SpoolName) -> bool:
        return any((self.spool / f"{name.base}{s}").exists() for s in (CALLER, AGENT, DONE))

    async def _finalize_logged(self, name: SpoolName, failed: set[str]) -> None:
        try:
            await self.finalize(name)
        except (EncodeError, OSError) as exc:
            failed.add(name.base)  # left in the spool for an operator; said once
            log.error("recording %s could not be finalized (left in %s): %s", name.base, self.spool, exc)
        except Exception as exc:  # the database away: the next sweep tries again
            log.warning("recording %s not indexed yet: %s", name.base, exc)

    # --- retention ------------------------------------------------------------------------------
    async def retention_once(self) -> list[int]:
        """Delete the recordings past their kind's keep time; every deletion is logged. The ids deleted."""
        now = self.now()
        engine = self.engine()
        rows = await store.older_than(engine, now - shortest_days(self.cfg.retention) * 86400.0)
        gone = expired(rows, self.cfg.retention, now)
        for e in gone:
            path = self.root / e.path
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.error("retention: could not delete %s: %s", path, exc)
                continue
            log.info("retention: deleted recording %d (%s, kept %d days): %s", e.id, e.kind, e.days, path)
            self.emit(Event(Kind.RECORDING_DELETED, now, data={"id": e.id, "kind": e.kind, "days": e.days,
                                                               "path": e.path}))
        await store.delete_rows(engine, [e.id for e in gone])
        return [e.id for e in gone]

    async def _retention(self, tasks: TaskOwner) -> None:
        hh, mm = (int(x) for x in self.cfg.retention.run_at.split(":"))
        while True:
            now = self.now()
            midnight = self.calendar.at(self.calendar.today(now))
            if not await tasks.idle(max(1.0, next_run(midnight, hh * 60 + mm, now) - now)):
                return
            try:
                n = len(await self.retention_once())
                log.info("retention: %d recording(s) deleted", n)
            except Exception as exc:
                log.error("retention run failed (tried again tomorrow): %s", exc)

    # --- the feature ----------------------------------------------------------------------------
    @asynccontextmanager
    async def running(self) -> AsyncIterator[Recorder]:
        """Records while it runs (a leader feature: one node arms the dialplan and indexes recordings).
        Off in config: the dialplan is told so, and nothing else runs."""
        if self.cfg.enabled:
            self.root.mkdir(parents=True, exist_ok=True)
        async with TaskOwner("recording", grace_s=10.0) as tasks:
            self._tasks = tasks
            for server, client in self.ami.items():
                if getattr(client, "connected", False):
                    tasks.spawn(self._arm(server), name=f"recording-arm-{server}")
            if self.cfg.enabled:
                tasks.spawn(self._finalizer(tasks), name="recording-finalizer")
                tasks.spawn(self._retention(tasks), name="recording-retention")
            try:
                yield self
            finally:
                self._tasks = None
                self.armed.clear()
