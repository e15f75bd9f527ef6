"""Leadership as a pure state machine: who leads, under which epoch, and until when we may act.

Inputs are the results of lease attempts (what the database said, see `LeaseRow`) and the time of an
injected monotonic clock; outputs are role changes (`BecameLeader`, `SteppedDown`). No IO here:
`ctiserver/ha/pg.py` runs the attempts, `ctiserver/ha/node.py` feeds the results in and starts or
stops the leader features.

    standby ──attempt: row says we hold it──▶ leader(epoch e, deadline = attempt start + local_s)
    leader  ──renewed in time──────────────▶ leader(e, deadline moved on)
    leader  ──row: another holder / epoch──▶ standby (and leader(e') if the row names us under e')
    leader  ──tick past the deadline───────▶ standby   (cut off from the database: stop by ourselves)
    leader  ──its lease session ended──────▶ standby   (its epoch's lock went with it: a standby may take over now)
    standby ──the holder's session ended───▶ attempt at once; the row is taken over though not yet expired

Why the deadline is local and shorter than the TTL: the database sets `expires = db_now + ttl` when it
handles our attempt, which is after we sent it. So counted from the moment we *sent* the attempt on our
own monotonic clock, the lease is ours for at least `ttl`; we stop acting at `local_s = ttl - guard_s`
after it, so a node cut off from PostgreSQL has stopped before any standby may take the lease over
(clock drift and the time a stop takes are what the guard covers). Only a leader renews (it sends its
epoch); after stepping down a node waits for the lease to expire and competes again, for a new epoch.

Why a standby need not wait for the expiry when the leader's process died: each leader holds a PostgreSQL
session-level advisory lock named after its epoch on the connection it renews on, taken in the transaction
that took the epoch (ctiserver/ha/pg.py). PostgreSQL frees it the moment that session ends: the process was
killed or its connection closed. A standby waits for that lock (`watch_epoch`); once it gets it, the holder
of that epoch can never hold the lock again (it takes its epoch's lock once, before its epoch exists), so
its session is gone, and the standby's next attempt takes the lease over with the next epoch (`decide`
with `orphaned`). The row stays the only source of truth and the epoch the fencing token. A leader cut off
from the network keeps its session open in PostgreSQL's eyes, so the lock stays held and the TTL ends it as
before; a leader whose own lease session ends steps down at once (`session_lost`), as a standby may take
over at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

EXPIRY_MARGIN_S = 0.02  # a standby's attempt at a lease's expiry comes this much after it (never just before)
MIN_ATTEMPT_GAP_S = 0.05  # and never sooner than this after its previous attempt


def default_guard(ttl_s: float) -> float:
    """How long before the lease's expiry a leader that could not renew stops acting: the monotonic clocks'
    drift is ppm, so half a second covers it many times over, and leaves a 3 s lease 1.5 s of event-loop
    stall (a full garbage collection on a busy machine) before a 1 s renewal is missed."""
    return max(0.5, ttl_s / 6)


class Role(StrEnum):
    LEADER = "leader"
    STANDBY = "standby"


@dataclass(frozen=True)
class LeaseRow:
    """The lease row as one attempt left it (times are the database's epoch seconds)."""

    holder: str | None
    address: str
    epoch: int
    renewed_ts: float
    expires_ts: float
    db_now: float

    def live(self) -> bool:
        return self.holder is not None and self.expires_ts > self.db_now


class Decision(StrEnum):
    RENEW = "renew"          # ours, same epoch, not expired: move the expiry on
    TAKE_OVER = "take-over"  # free or expired: ours with the next epoch
    OBSERVE = "observe"      # someone else's (or ours from an earlier term): leave it


def decide(row: LeaseRow | None, node: str, epoch: int | None, orphaned: int | None = None) -> Decision:
    """What one attempt does to the lease row (run inside the attempt's transaction, row locked).

    `orphaned`: an epoch whose holder's session is known to have ended (this node got that epoch's lock,
    see the module docstring): a live lease of that epoch is taken over without waiting for its expiry."""
    if row is None or not row.live():
        return Decision.TAKE_OVER
    if row.holder == node and epoch is not None and row.epoch == epoch:
        return Decision.RENEW
    if orphaned is not None and row.epoch == orphaned:
        return Decision.TAKE_OVER
    return Decision.OBSERVE


@dataclass(frozen=True)
class BecameLeader:
    epoch: int


@dataclass(frozen=True)
class SteppedDown:
    epoch: int
    reason: str


Change = BecameLeader | SteppedDown


class LeaseMachine:
    """One node's view of the lease (see the module docstring). All times are monotonic seconds."""

    def __init__(self, node: str, ttl_s: float = 3.0, *, renew_s: float = 1.0, guard_s: float | None = None) -> None:
        if ttl_s <= 0 or renew_s <= 0:
            raise ValueError("ttl_s and renew_s must be positive")
        guard = guard_s if guard_s is not None else default_guard(ttl_s)
        if not 0 < guard < ttl_s:
            raise ValueError(f"guard_s must be between 0 and the TTL ({ttl_s} s), not {guard}")
        if renew_s >= ttl_s - guard:
            raise ValueError(f"renew_s ({renew_s} s) must be shorter than the local lease ({ttl_s - guard} s)")
        self.node = node
        self.ttl_s = ttl_s
        self.renew_s = renew_s
        self.local_s = ttl_s - guard
        self.role = Role.STANDBY
        self.epoch: int | None = None  # ours while we lead
        self.deadline: float | None = None  # monotonic: we stop acting here unless renewed
        self.leader: str | None = None  # the live holder as last seen (us included)
        self.leader_address = ""
        self.seen_epoch = 0  # the lease's epoch as last seen
        self.last_ok: float | None = None  # when an attempt last got an answer
        self.last_error = ""
        # a standby: when (our monotonic clock) the lease another node holds runs out unless renewed, from
        # the row's own expiry and the database's now; the next attempt comes then, not a renewal period later
        self.expiry_seen: float | None = None
        self.orphaned: int | None = None  # an epoch whose holder's session ended (its lock was free to take)
        self.lost_epoch: int | None = None  # our epoch whose lease session ended: never led again

    # --- inputs ---------------------------------------------------------------------------------
    def renewed(self, started: float, now: float, row: LeaseRow, did: Decision) -> list[Change]:
        """An attempt sent at `started` came back at `now`: it did `did` and left the lease as `row`."""
        self.last_ok, self.last_error = now, ""
        self.seen_epoch = row.epoch
        self.leader = row.holder if row.live() else None
        self.leader_address = row.address if row.live() else ""
        self.expiry_seen = None
        if self.orphaned is not None and row.epoch != self.orphaned:
            self.orphaned = None  # that term is over (taken over, by us or by another standby)
        if did is Decision.OBSERVE and row.live() and row.holder != self.node:
            self.expiry_seen = now + max(0.0, row.expires_ts - row.db_now) + EXPIRY_MARGIN_S
        changes: list[Change] = []
        if self.role is Role.LEADER and not (did is Decision.RENEW and row.epoch == self.epoch):
            changes.append(self._step_down(f"the lease is held by {row.holder or 'nobody'} (epoch {row.epoch})"))
        if did is Decision.OBSERVE:
            return changes
        deadline = started + self.local_s
        if now >= deadline:  # the answer came too late to act on: let the lease run out
            if self.role is Role.LEADER:
                changes.append(self._step_down("the lease renewal came back too late"))
            return changes
        if self.role is Role.STANDBY:
            if row.epoch == self.lost_epoch:  # renewed just before its session ended: the lock is gone
                return changes
            self.role, self.epoch = Role.LEADER, row.epoch
            changes.append(BecameLeader(row.epoch))
        self.deadline = deadline
        return changes

    def failed(self, now: float, reason: str) -> list[Change]:
        """An attempt got no answer (database away, timeout)."""
        self.last_error = reason
        self.orphaned = None  # not retried at once: the watch finds the lock free again if the holder is gone
        return self.tick(now)

    def tick(self, now: float) -> list[Change]:
        """Time passes: past the local deadline we stop leading, whatever the process can still do."""
        if self.role is Role.LEADER and self.deadline is not None and now >= self.deadline:
            why = f"the lease was not renewed within {self.local_s:g} s"
            if self.last_error:
                why += f" ({self.last_error})"
            return [self._step_down(why)]
        return []

    def session_lost(self, reason: str) -> list[Change]:
        """Our lease session ended (the connection we renew on, and with it our epoch's lock): a standby may
        take over at once, so we stop at once, and never lead under that epoch again."""
        self.last_error = reason
        if self.role is not Role.LEADER:
            return []
        self.lost_epoch = self.epoch
        return [self._step_down(f"its lease session ended ({reason})")]

    def holder_gone(self, epoch: int) -> None:
        """The session of the node that took `epoch` ended (we got that epoch's lock): attempt at once, and
        take the lease over if the row still shows that epoch."""
        if self.role is Role.STANDBY:
            self.orphaned = epoch

    def release(self) -> list[Change]:
        """We stop (shutdown): nothing more under our epoch."""
        return [self._step_down("shutting down")] if self.role is Role.LEADER else []

    # --- outputs --------------------------------------------------------------------------------
    def leading(self, now: float) -> bool:
        """Whether we may act now under `self.epoch` (the claims check it before the database does)."""
        return self.role is Role.LEADER and self.deadline is not None and now < self.deadline

    @property
    def attempt_epoch(self) -> int | None:
        """The epoch the next attempt renews (None: only a free or expired lease is taken)."""
        return self.epoch if self.role is Role.LEADER else None

    @property
    def attempt_orphaned(self) -> int | None:
        """The epoch the next attempt may take over before its expiry (its holder's session ended)."""
        return self.orphaned if self.role is Role.STANDBY else None

    @property
    def watch_epoch(self) -> int | None:
        """The epoch whose lock a standby waits for: the live lease another node holds (None: nothing to
        watch, or its end is already known)."""
        if self.role is not Role.STANDBY or self.leader in (None, self.node) or self.orphaned == self.seen_epoch:
            return None
        return self.seen_epoch

    def next_attempt(self, last_attempt: float) -> float:
        """When the next attempt goes out: a renewal period after the last one, or, on a standby, as soon as
        the lease it saw runs out (a dead leader's successor takes over at the expiry, not up to a
        renewal period after it)."""
        at = last_attempt + self.renew_s
        if self.role is Role.STANDBY and self.orphaned is not None:
            return last_attempt + MIN_ATTEMPT_GAP_S  # the holder's session ended: now
        if self.role is Role.STANDBY and self.expiry_seen is not None:
            at = min(at, max(self.expiry_seen, last_attempt + MIN_ATTEMPT_GAP_S))
        return at

    def next_wake(self, last_attempt: float) -> float:
        """When to run the next attempt or tick: the next attempt, or the deadline if that comes first."""
        wake = self.next_attempt(last_attempt)
        if self.role is Role.LEADER and self.deadline is not None:
            wake = min(wake, self.deadline)
        return wake

    # --- internals ------------------------------------------------------------------------------
    def _step_down(self, reason: str) -> SteppedDown:
        epoch = self.epoch or 0
        self.role, self.epoch, self.deadline = Role.STANDBY, None, None
        if self.leader == self.node:
            self.leader, self.leader_address = None, ""
        return SteppedDown(epoch, reason)
