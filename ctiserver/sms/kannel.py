"""Kannel's smsbox over HTTP: one `GET /cgi-bin/sendsms` per message, with a delivery-report URL.

Kannel answers 202 when it took the message ("0: Accepted for delivery", "3: Queued for later
delivery": bearerbox keeps it while the SMSC link is down), 4xx when it refuses it. No answer at all
(connection refused, a timeout, 5xx) means the gateway is down: the message is not at fault and waits.
A 401/403 is our configuration's fault (user or password), not the message's: also "down", logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp

from ..lograte import LogBurst
from .model import GatewayConfig

log = logging.getLogger(__name__)

DLR_MASK = 31  # delivered, failed, buffered, SMSC ack, SMSC reject
DLR_PATH = "/api/sms/dlr"


@dataclass(frozen=True, slots=True)
class Outgoing:
    id: int
    token: str
    number: str
    text: str
    coding: int


@dataclass(frozen=True, slots=True)
class SubmitResult:
    outcome: str  # accepted | refused | down
    detail: str = ""


class KannelGateway:
    """The HTTP client; `aclose()` closes its connection pool."""

    def __init__(self, cfg: GatewayConfig) -> None:
        self.cfg = cfg
        self._session: aiohttp.ClientSession | None = None
        self._down = LogBurst(log, "SMS gateway not reachable; messages wait and are sent again")

    def dlr_url(self, msg: Outgoing) -> str:
        """Kannel fills in %d (report type) and %A (the SMSC's answer) when it calls back."""
        return f"{self.cfg.callback_base.rstrip('/')}{DLR_PATH}?id={msg.id}&t={msg.token}&s=%d&a=%A"

    def _session_(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s))
        return self._session

    async def submit(self, msg: Outgoing) -> SubmitResult:
        password = self.cfg.resolved_password()
        if password is None:
            self._down.add(f"password variable {self.cfg.password_env} not set")
            return SubmitResult("down", f"{self.cfg.password_env} is not set")
        query = urlencode({"username": self.cfg.username, "password": password, "from": self.cfg.sender,
                           "to": msg.number, "text": msg.text, "coding": str(msg.coding), "charset": "UTF-8",
                           "dlr-mask": str(DLR_MASK), "dlr-url": self.dlr_url(msg)})
        try:
            async with self._session_().get(f"{self.cfg.sendsms_url}?{query}") as resp:
                body = (await resp.text(errors="replace")).strip()[:200]
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._down.add(f"{type(exc).__name__}: {exc}")
            return SubmitResult("down", f"{type(exc).__name__}")
        if 200 <= status < 300:
            return SubmitResult("accepted", body)
        if status in (401, 403) or status >= 500:
            self._down.add(f"HTTP {status} {body}")
            return SubmitResult("down", f"HTTP {status} {body}")
        return SubmitResult("refused", f"HTTP {status} {body}")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
