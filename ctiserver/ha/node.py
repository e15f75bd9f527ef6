"""One node's part in the election, as a feature: renew the lease, start and stop the leader features.

    every renew_s:  attempt (PgLease, bounded by the local deadline) ─▶ LeaseMachine ─▶ role changes
    role changes ─▶ the follower task starts / stops the leader FeatureGroup (never inside the renew loop:
                    a start that takes seconds must not delay the next renewal)
    at the local deadline without a renewal ─▶ standby, the group stops (the database may be unreachable)
    our lease session closed ─▶ standby at once (our epoch's lock is gone: a standby may take over now)
    standby: wait for the leader's epoch lock (PgLease.watch) ─▶ got: its session ended, attempt at once

Other features ask `leading()` before an action and claim it with `claim()` (ctiserver/ha/pg.py); on a
single node without `ha:` they get `SoloLeadership`, which always leads and claims nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from ..clock import Clock, MonotonicClock
from ..lifecycle import FeatureGroup, TaskOwner
from .config import HaConfig
from .lease import BecameLeader, Change, Decision, LeaseMachine, LeaseRow, Role
from .pg import claim

log = logging.getLogger(__name__)


class LeaseAttempts(Protocol):
    on_lost: Callable[[str], None] | None  # called when the lease session ends (ctiserver/ha/pg.py)

    async def attempt(self, epoch: int | None, orphaned: int | None = None) -> tuple[LeaseRow, Decision]: ...
    async def release(self, epoch: int) -> bool: ...
    async def watch(self, epoch: int, wait_s: float) -> bool: ...
    def session_alive(self) -> bool: ...
    async def close(self) -> None: ...


class Leader(Protocol):
    """What the other features see of the election."""

    def leading(self) -> bool: ...
    def status(self) -> dict[str, Any]: ...
    async def claim(self, conn: AsyncConnection, kind: str, key: str) -> None: ...


class SoloLeadership:
    """A single node (no `ha:` block): it always leads, and its claims are trivially its own."""

    def __init__(self, node: str = "") -> None:
        self.node = node

    def leading(self) -> bool:
        return True

    def status(self) -> dict[str, Any]:
        return {"enabled": False, "role": Role.LEADER.value, "node": self.node, "epoch": 0, "leader": self.node,
                "leader_address": ""}

    async def claim(self, conn: AsyncConnection, kind: str, key: str) -> None:
        return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


class Leadership:
    """A node of an HA cluster (see the module docstring)."""

    def __init__(self, cfg: HaConfig, lease: LeaseAttempts, group: FeatureGroup, *, clock: Clock | None = None,
                 on_change: Callable[[Change], None] | None = None) -> None:
        self.cfg = cfg
        self.lease = lease
        self.group = group
        self.clock = clock or MonotonicClock()
        self.machine = LeaseMachine(cfg.node, cfg.lease_ttl_s, renew_s=cfg.renew_s)
        self.on_change = on_change
        self.changed = asyncio.Condition()  # notified on every role change (tests wait on it)
        self._wake_follower = asyncio.Event()
        self._wake_renew = asyncio.Event()  # the leader's session ended: attempt now
        self._wake_watch = asyncio.Event()  # an attempt came back: the epoch to watch may have changed
        lease.on_lost = self._session_lost
        self.terms = 0  # how many times this node became the leader
        self.attempts_failed = 0
        self._tasks = TaskOwner("HA leadership")
        self._inflight: tuple[float, asyncio.Task[tuple[LeaseRow, Decision]]] | None = None

    # --- what the other features see -----------------------------------------------------------
    def leading(self) -> bool:
        return self.machine.leading(self.clock.now())

    @property
    def epoch(self) -> int | None:
        return self.machine.epoch

    def status(self) -> dict[str, Any]:
        m = self.machine
        return {"enabled": True, "role": m.role.value, "node": m.node, "epoch": m.epoch or m.seen_epoch,
                "leader": m.leader, "leader_address": m.leader_address, "lease_ttl_s": m.ttl_s,
                "leader_features": self.group.running, "last_error": m.last_error}

    async def claim(self, conn: AsyncConnection, kind: str, key: str) -> None:
        """Claim an action under our epoch in `conn`'s transaction (Fenced/AlreadyClaimed, see pg.claim)."""
        from .pg import Fenced

        epoch = self.machine.epoch
        if epoch is None or not self.leading():
            raise Fenced(f"{kind} {key}: not claimed, {self.cfg.node} is not the leader")
        await claim(conn, kind, key, node=self.cfg.node, epoch=epoch)

    async def wait_role(self, role: Role, timeout: float | None = None) -> None:
        """Until this node has `role` (and, for leader, its features started)."""
        await self.wait_until(lambda st: st["role"] == role.value and st["leader_features"] == (role is Role.LEADER),
                              timeout)

    async def wait_until(self, predicate: Callable[[dict[str, Any]], bool], timeout: float | None = None) -> None:
        """Until `predicate(self.status())` holds (checked after every attempt and every start or stop)."""
        async def reached() -> None:
            async with self.changed:
                await self.changed.wait_for(lambda: predicate(self.status()))
        await asyncio.wait_for(reached(), timeout)

    # --- the loop --------------------------------------------------------------------------------
    async def round(self) -> None:
        """One attempt, bounded so that a hanging database cannot carry us past the local deadline.

        The attempt runs as a task of its own and is never cancelled (the cancel of a query on a half-open
        link can itself hang; the engine's statement timeout ends it): past the deadline we step down, and
        the next round waits on the same attempt. If it then comes back renewed in time (the event loop was
        stalled, not the database), we lead again under the same epoch: the database kept it ours."""
        now = self.clock.now()
        if self._inflight is None or self._inflight[1].done():
            attempt = self.lease.attempt(self.machine.attempt_epoch, self.machine.attempt_orphaned)
            self._inflight = (now, self._tasks.spawn(attempt, name="ha-attempt"))
        started, task = self._inflight
        budget = self.machine.ttl_s
        if self.machine.deadline is not None:
            budget = min(budget, self.machine.deadline - now)
        done, _ = await asyncio.wait({task}, timeout=max(0.05, budget))
        if not done:
            self.attempts_failed += 1
            changes = self.machine.failed(self.clock.now(), f"no answer from the database in {budget:.1f} s")
        elif task.cancelled() or task.exception() is not None:
            self.attempts_failed += 1
            exc = task.exception() if not task.cancelled() else None
            changes = self.machine.failed(self.clock.now(), _describe(exc) if exc else "cancelled")
        elif not self.lease.session_alive():  # it closed as the answer came: its epoch's lock went with it
            self.attempts_failed += 1
            changes = self.machine.failed(self.clock.now(), "the lease session closed")
        else:
            row, did = task.result()
            changes = self.machine.renewed(started, self.clock.now(), row, did)
        await self._apply(changes)
        self._wake_watch.set()

    def _session_lost(self, reason: str) -> None:
        """The lease session ended (PgLease's termination listener): step down now, not at the deadline."""
        changes = self.machine.session_lost(reason)
        if changes and not self._tasks.closing:
            self._tasks.spawn(self._apply(changes), name="ha-session-lost")

    async def _apply(self, changes: list[Change]) -> None:
        for change in changes:
            if isinstance(change, BecameLeader):
                self.terms += 1
                log.warning("HA: %s leads now (epoch %d)", self.cfg.node, change.epoch)
            else:
                log.warning("HA: %s stops leading (epoch %d): %s", self.cfg.node, change.epoch, change.reason)
            if self.on_change is not None:
                self.on_change(change)
        if changes:
            self._wake_follower.set()
        async with self.changed:
            self.changed.notify_all()

    async def _renew(self, tasks: TaskOwner) -> None:
        while True:
            started = self.clock.now()
            await self.round()
            while True:  # sleep to the next attempt, waking at the local deadline if it comes first
                delay = self.machine.next_wake(started) - self.clock.now()
                if delay > 0 and not await tasks.idle(delay, self._wake_renew):
                    return
                self._wake_renew.clear()
                if tasks.closing:
                    return
                await self._apply(self.machine.tick(self.clock.now()))
                if self.clock.now() >= self.machine.next_attempt(started):
                    break

    async def _watch(self, tasks: TaskOwner) -> None:
        """A standby waits for the leader's epoch lock: got, the leader's session ended (killed, its connection
        closed), and the next attempt goes out at once and takes the lease over (ctiserver/ha/lease.py)."""
        while True:
            epoch = self.machine.watch_epoch
            if epoch is None:
                self._wake_watch.clear()
                if not await tasks.idle(None, self._wake_watch):
                    return
                continue
            try:
                gone = await self.lease.watch(epoch, self.machine.renew_s)
            except Exception as exc:
                log.debug("HA: waiting for the lock of epoch %d failed (%s)", epoch, _describe(exc))
                if not await tasks.idle(self.machine.renew_s):
                    return
                continue
            if gone and self.machine.watch_epoch == epoch:
                log.warning("HA: the session of %s (epoch %d) ended: taking the lease over", self.machine.leader,
                            epoch)
                self.machine.holder_gone(epoch)
                self._wake_renew.set()

    async def _follow(self, tasks: TaskOwner) -> None:
        """Bring the leader features in line with the role, one start or stop at a time."""
        while True:
            self._wake_follower.clear()
            await self._converge()
            if not await tasks.idle(None if self._settled() else self.machine.renew_s, self._wake_follower):
                return

    def _settled(self) -> bool:
        return (self.machine.role is Role.LEADER) == self.group.running

    async def _converge(self) -> None:
        want = self.machine.role is Role.LEADER
        try:
            if want and not self.group.running:
                began = self.clock.now()
                await self.group.start(self.clock.now)
                slow = sorted(self.group.start_times, key=lambda t: -t[1])[:4]
                log.info("HA: leader features started (epoch %s) in %.2f s; longest: %s", self.machine.epoch,
                         self.clock.now() - began, ", ".join(f"{n} {t:.2f} s" for n, t in slow))
            elif not want and self.group.running:
                await self.group.stop()
                log.info("HA: leader features stopped")
        except Exception:
            log.exception("HA: the leader features failed to %s; trying again", "start" if want else "stop")
        async with self.changed:
            self.changed.notify_all()

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[Leadership]:
        tasks = self._tasks
        try:
            await self.round()  # alone on a free lease: lead before the server says it is up
            await self._converge()
            tasks.spawn(self._renew(tasks), name="ha-renew")
            tasks.spawn(self._follow(tasks), name="ha-follow")
            tasks.spawn(self._watch(tasks), name="ha-watch")
            yield self
        finally:
            await tasks.aclose()
            epoch = self.machine.epoch
            await self._apply(self.machine.release())
            await self.group.stop()  # nothing acts any more before the lease is given up
            if epoch is not None:
                try:
                    await asyncio.wait_for(self.lease.release(epoch), self.machine.renew_s)
                except Exception as exc:
                    log.warning("HA: could not give the lease up (%s); it expires in %g s",
                                _describe(exc), self.machine.ttl_s)
            await self.lease.close()  # the epoch's lock ends with the session: a standby's watch sees it

    def __call__(self) -> Any:
        return self._running()
