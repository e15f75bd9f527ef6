"""Users, password hashes, sessions and login rate limiting.

Passwords are argon2id hashes (argon2-cffi), verified in a worker thread because
argon2 is slow on purpose. A session token is 32 random bytes handed to the client
once; only its SHA-256 is stored, so a leaked table opens no sessions. Failed logins
are counted per agent number and per client address in sliding windows
(`LoginThrottle`, a pure core taking `now`); a wrong password and an unknown user
cost the same time, so neither timing nor message tells which agent numbers exist.
Nothing here logs a password, a hash or a token.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections import deque
from dataclasses import dataclass

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..clock import Clock
from .config import ROLES, RateLimit
from .errors import ApiError
from .tables import sessions, users

log = logging.getLogger(__name__)

COOKIE = "cti_session"
_hasher = PasswordHasher()
# Verified against when the agent number is unknown, so that path costs the same.
_DUMMY_HASH = _hasher.hash("not-a-password-" + secrets.token_hex(8))


@dataclass(frozen=True, slots=True)
class User:
    agent_no: str
    name: str
    role: str

    @property
    def is_supervisor(self) -> bool:
        return self.role in ("supervisor", "admin")

    def public(self) -> dict[str, str]:
        return {"agent_no": self.agent_no, "name": self.name, "role": self.role}


class UserExists(ValueError):
    pass


def _valid_agent_no(agent_no: str) -> bool:
    return 1 <= len(agent_no) <= 20 and agent_no.isascii() and agent_no.isalnum()


async def create_user(engine: AsyncEngine, agent_no: str, name: str, role: str, password: str,
                      *, now: float) -> User:
    """Add a user with an argon2 hash of `password` (created at `now`). ValueError on a bad field, UserExists
    on a duplicate."""
    if not _valid_agent_no(agent_no):
        raise ValueError("agent number must be 1-20 ASCII letters or digits")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not name.strip() or len(name) > 100:
        raise ValueError("name must be 1-100 characters")
    if len(password) < 8 or len(password) > 256:
        raise ValueError("password must be 8-256 characters")
    hashed = await asyncio.to_thread(_hasher.hash, password)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(users).values(agent_no=agent_no, name=name.strip(), role=role,
                                                    password_hash=hashed, active=True,
                                                    created_ts=now))
    except IntegrityError:
        raise UserExists(f"user {agent_no} already exists") from None
    log.info("user %s added with role %s", agent_no, role)
    return User(agent_no, name.strip(), role)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def check_password(engine: AsyncEngine, agent_no: str, password: str) -> User | None:
    """The user if `password` is right and the account active, else None (same cost either way)."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(users).where(users.c.agent_no == agent_no))).mappings().first()
    stored = row["password_hash"] if row is not None else _DUMMY_HASH
    ok = await asyncio.to_thread(_verify, stored, password)
    if not ok or row is None or not row["active"]:
        return None
    return User(row["agent_no"], row["name"], row["role"])


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


async def open_session(engine: AsyncEngine, user: User, *, now: float, ttl_s: float) -> tuple[str, float]:
    """A new session token (returned once, stored hashed) and its expiry; also sweeps expired sessions."""
    token = secrets.token_urlsafe(32)
    expires = now + ttl_s
    async with engine.begin() as conn:
        await conn.execute(delete(sessions).where(sessions.c.expires_ts < now))
        await conn.execute(insert(sessions).values(token_hash=token_hash(token), agent_no=user.agent_no,
                                                   created_ts=now, expires_ts=expires))
    return token, expires


async def session_user(engine: AsyncEngine, token: str, *, now: float) -> User | None:
    if not token or len(token) > 200:
        return None
    q = (select(users.c.agent_no, users.c.name, users.c.role, users.c.active, sessions.c.expires_ts)
         .join(users, users.c.agent_no == sessions.c.agent_no)
         .where(sessions.c.token_hash == token_hash(token)))
    async with engine.connect() as conn:
        row = (await conn.execute(q)).mappings().first()
    if row is None or row["expires_ts"] <= now or not row["active"]:
        return None
    return User(row["agent_no"], row["name"], row["role"])


async def close_session(engine: AsyncEngine, token: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(sessions).where(sessions.c.token_hash == token_hash(token)))


def request_token(request: web.Request) -> str:
    """The session token a request carries: `Authorization: Bearer <token>`, else the session cookie."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.cookies.get(COOKIE, "")


class Sessions:
    """The one login check, for every route that needs a user (desktop, outbound, callbacks, reports)."""

    def __init__(self, engine: AsyncEngine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock

    async def user(self, request: web.Request) -> User | None:
        """The logged-in user of `request`, or None (no token, unknown or expired session, inactive user)."""
        token = request_token(request)
        if not token:
            return None
        return await session_user(self.engine, token, now=self.clock.now())

    async def require(self, request: web.Request, roles: frozenset[str] | None = None) -> User:
        """The user, or ApiError 401 (not logged in) / 403 (`roles` given and the user's is not among them)."""
        user = await self.user(request)
        if user is None:
            raise ApiError(401, "unauthenticated", "log in first (no or expired session)")
        if roles is not None and user.role not in roles:
            raise ApiError(403, "forbidden", f"this needs role {' or '.join(sorted(roles))}")
        return user


class LoginLimiter:
    """Sliding-window count of failed logins per key; bounded memory (oldest keys forgotten first)."""

    def __init__(self, limit: RateLimit, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float] | None:
        q = self._failures.get(key)
        if q is None:
            return None
        while q and q[0] <= now - self.limit.window_s:
            q.popleft()
        if not q:
            del self._failures[key]
            return None
        return q

    def retry_after(self, key: str, now: float) -> float:
        """0 if `key` may try now, else seconds until its oldest counted failure leaves the window."""
        q = self._recent(key, now)
        if q is None or len(q) < self.limit.max_failures:
            return 0.0
        return max(0.0, q[0] + self.limit.window_s - now)

    def failed(self, key: str, now: float) -> None:
        q = self._recent(key, now)
        if q is None:
            if len(self._failures) >= self.max_keys:
                del self._failures[next(iter(self._failures))]
            q = self._failures[key] = deque(maxlen=self.limit.max_failures)
        q.append(now)

    def forgive(self, key: str, ts: float) -> None:
        """Take back one failure counted at `ts` (an attempt counted in advance that succeeded)."""
        q = self._failures.get(key)
        if q is not None and ts in q:
            q.remove(ts)
            if not q:
                del self._failures[key]

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


class LoginThrottle:
    """Who may try a password now; a pure core (every method takes `now`).

    Each attempt is counted *before* its password is checked (`begin`), so parallel guesses see
    each other: of 40 sent at once for one agent, `per_user_address.max_failures` are checked
    and the rest refused. An attempt that succeeds is taken back (`succeeded`).

    Three limits: per agent number *from one address* (an agent at their own desk is not locked
    out by guesses from elsewhere), per address (one address guessing many agent numbers), and a
    generous one per agent number over all addresses (guessing spread over many addresses). An
    address the agent logged in from successfully within `trust_s` is exempt from the last, so
    the real agent on their own desk still gets in while someone elsewhere guesses their password.
    """

    def __init__(self, per_user_address: RateLimit, per_address: RateLimit, per_user: RateLimit, *,
                 trust_s: float = 30 * 86400.0, max_trusted: int = 10_000) -> None:
        self.per_pair = LoginLimiter(per_user_address)
        self.per_address = LoginLimiter(per_address)
        self.per_user = LoginLimiter(per_user)
        self.trust_s = trust_s
        self.max_trusted = max_trusted
        self._trusted: dict[tuple[str, str], float] = {}  # (agent, address) -> last successful login

    def _limits(self, agent_no: str, address: str, now: float) -> list[tuple[LoginLimiter, str]]:
        limits = [(self.per_pair, f"{agent_no}\n{address}"), (self.per_address, address)]
        since = self._trusted.get((agent_no, address))
        if since is None or since <= now - self.trust_s:
            limits.append((self.per_user, agent_no))
        return limits

    def begin(self, agent_no: str, address: str, now: float) -> LoginAttempt:
        """May this attempt check its password? If so (`wait == 0`) it is counted as failed until
        `succeeded`; else `wait` is the seconds to wait, and nothing is counted."""
        limits = self._limits(agent_no, address, now)
        wait = max(limiter.retry_after(key, now) for limiter, key in limits)
        if wait > 0:
            return LoginAttempt(agent_no, address, now, wait, ())
        for limiter, key in limits:
            limiter.failed(key, now)
        return LoginAttempt(agent_no, address, now, 0.0, tuple(limits))

    def succeeded(self, attempt: LoginAttempt, now: float) -> None:
        """The attempt had the right password: take its counts back, trust its address for this agent."""
        for limiter, key in attempt.counted:
            if limiter is self.per_pair:
                limiter.succeeded(key)  # the agent's own earlier typos at this desk are forgiven too
            else:
                limiter.forgive(key, attempt.began)
        pair = (attempt.agent_no, attempt.address)
        self._trusted.pop(pair, None)
        while len(self._trusted) >= self.max_trusted:
            del self._trusted[next(iter(self._trusted))]
        self._trusted[pair] = now


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    agent_no: str
    address: str
    began: float
    wait: float  # > 0: refused, try again in this many seconds
    counted: tuple[tuple[LoginLimiter, str], ...]

