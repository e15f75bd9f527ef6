"""The contract between the FastAGI listener (ctiserver/agi/server.py) and the IVR runtime.

The IVR codes against `AgiChannel`; the listener implements it over a socket, and
tests implement it with a script.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


class AgiHangup(Exception):
    """The caller hung up (or the AGI socket closed) while a command was under way."""


class AgiError(Exception):
    """Asterisk answered a command with an error code (510 invalid, 511 dead channel, 520 usage)."""


@dataclass(frozen=True, slots=True)
class AgiReply:
    code: int  # 200 on success
    result: str  # the value after result=
    data: str = ""  # what follows in parentheses, e.g. "timeout", "dtmf", "endpos=1234"

    @property
    def result_int(self) -> int:
        try:
            return int(self.result)
        except ValueError:
            return -1


class AgiChannel(Protocol):
    """One AGI session: the agi_* headers, plus a way to run commands."""

    @property
    def headers(self) -> dict[str, str]: ...  # e.g. {"agi_callerid": "13800000000", "agi_uniqueid": ...}

    @property
    def path(self) -> str: ...  # the path in agi://host:port/<path>, e.g. "ivr"

    async def execute(self, command: str) -> AgiReply:
        """Send one AGI command line (no newline); raise AgiHangup / AgiError / TimeoutError."""
        ...


AgiHandler = Callable[[AgiChannel], Awaitable[None]]
