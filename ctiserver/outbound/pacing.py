"""Token buckets for calls per second: pure, driven by the `now` the caller passes in.

Asterisk starts a thread per async Originate, and carriers throttle bursts: the
dialer must pace on its side. A bucket refills at `rate` tokens a second up to
`burst`; each call started takes one token.
"""

from __future__ import annotations


class TokenBucket:
    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self._tokens = float(self.burst)
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
            self._at = now

    def tokens(self, now: float) -> float:
        self._refill(now)
        return self._tokens

    def ready(self, now: float) -> bool:
        return self.tokens(now) >= 1.0 - 1e-9

    def take(self, now: float) -> None:
        if not self.ready(now):
            raise ValueError("no token available: check ready() first")
        self._tokens -= 1.0

    def wait(self, now: float) -> float:
        """Seconds until one token is available (0 if one is)."""
        have = self.tokens(now)
        return 0.0 if have >= 1.0 - 1e-9 else (1.0 - have) / self.rate

    def same_shape(self, rate: float, burst: int) -> bool:
        return self.rate == float(rate) and self.burst == int(burst)
