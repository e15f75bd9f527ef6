"""How the AMI client reconnects and tells an Asterisk restart from a network blip (pure, tested alone).

`backoff_delay` spaces reconnect attempts (exponential, equal jitter: many clients do not reconnect in
step); `BootMark`/`detect_restart` compare what two logins learnt of Asterisk's start; `ConnectInfo` is
what `on_connect` hands the client's user after each login.
"""

from __future__ import annotations

from dataclasses import dataclass

RESTART_TOLERANCE_S = 5.0  # Uptime is whole seconds, plus network and scheduling slack


@dataclass(frozen=True, slots=True)
class ConnectInfo:
    """What we learnt at login; `restarted` is True when Asterisk restarted since our last session."""

    server_name: str
    uptime: float | None  # seconds since Asterisk started (None if it would not say)
    last_reload: float | None  # seconds since its last reload
    restarted: bool
    ami_version: str | None = None  # from the banner, e.g. "10.0.0" (the AMI version, not Asterisk's)
    first: bool = False  # the first session of this client


def backoff_delay(attempt: int, min_s: float, max_s: float, rand: float) -> float:
    """Delay before reconnect attempt `attempt` (0-based): doubling from min_s, capped at max_s,
    with 'equal jitter' (half fixed, half random) so many clients do not reconnect in step."""
    top = max(min_s, max_s)
    ceiling = min(top, min_s * 2 ** min(attempt, 40))
    return max(min_s, min(top, ceiling * (0.5 + 0.5 * rand)))


@dataclass(frozen=True, slots=True)
class BootMark:
    """Identity of one run of Asterisk, as well as we can tell it."""

    started_at: float | None = None  # our monotonic clock minus the reported Uptime
    stamp: str | None = None  # CoreStatus CoreStartupDate + CoreStartupTime


def detect_restart(prev: BootMark | None, new: BootMark, tolerance_s: float = RESTART_TOLERANCE_S) -> bool:
    """True when `new` is evidently a different run of Asterisk than `prev`; False when unsure."""
    if prev is None:
        return False
    if prev.stamp is not None and new.stamp is not None:  # exact: prefer it
        return new.stamp != prev.stamp
    if prev.started_at is not None and new.started_at is not None:
        return new.started_at - prev.started_at > tolerance_s
    return False
