"""Customers' PINs: argon2 hashes (checked in a worker thread: argon2 is slow on purpose) and the wrong-PIN
lockout per account."""

from __future__ import annotations

from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


@dataclass
class PinGuard:
    """Wrong-PIN lockout per account: `limit` failures within `window_s` lock it for `window_s`."""

    limit: int = 5
    window_s: float = 900.0
    failures: dict[str, list[float]] = field(default_factory=dict)

    def locked(self, account: str, now: float) -> bool:
        recent = [t for t in self.failures.get(account, []) if now - t < self.window_s]
        self.failures[account] = recent
        return len(recent) >= self.limit

    def failed(self, account: str, now: float) -> int:
        self.failures.setdefault(account, []).append(now)
        return len(self.failures[account])

    def succeeded(self, account: str) -> None:
        self.failures.pop(account, None)


# A PIN is 4-8 digits: the hash keeps it out of sight in the database and backups; a memory-hard
# cost beyond this only slows every call's identity check without stopping an offline search.
_hasher = PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1)


def hash_pin(pin: str) -> str:
    return _hasher.hash(pin)


def pin_matches(pin_hash: str | None, pin: str) -> bool:
    if not pin_hash:
        return False
    try:
        return _hasher.verify(pin_hash, pin)
    except (VerificationError, InvalidHashError):
        return False
