"""The contract between the FastAGI listener (ctiserver/agi/server.py) and the IVR runtime.

The IVR codes against `AgiChannel`; the listener implements it over a socket, and
tests implement it with a script.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
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


# What every session reads first comes as AGI arguments from the dialplan's cti-agi (asterisk/extensions.conf):
# agi_arg_1 the channel's Linkedid (the call id), agi_arg_2 `resume=<CTI_RESUME>`. One command (a round trip
# to Asterisk) fewer per session each; a dialplan that does not pass them is asked with GET VARIABLE.
_LINKEDID = re.compile(r"[A-Za-z0-9._-]{1,150}")
_RESUME_ARG = "resume="


async def get_variable(chan: AgiChannel, name: str) -> str:
    """A channel variable through AGI GET VARIABLE ('' when it is not set)."""
    reply = await chan.execute(f"GET VARIABLE {name}")
    return reply.data.strip() if reply.result == "1" else ""


async def linked_id(chan: AgiChannel) -> str:
    """The channel's Linkedid ('' if Asterisk does not say)."""
    passed = chan.headers.get("agi_arg_1", "")
    if _LINKEDID.fullmatch(passed):
        return passed
    return await get_variable(chan, "CHANNEL(linkedid)")


async def resume_place(chan: AgiChannel) -> str:
    """CTI_RESUME: the caller's place in the CTI_AGI list when this is a re-entry ('' on a first try)."""
    passed = chan.headers.get("agi_arg_2", "")
    if passed.startswith(_RESUME_ARG):
        return passed[len(_RESUME_ARG):].strip()
    return await get_variable(chan, "CTI_RESUME")


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_PLAIN = re.compile(r"[A-Za-z0-9_.:|@/+-]*")  # a value MSet takes as it is (no comma, quote, paren, backslash)


async def set_variables(chan: AgiChannel, values: Mapping[str, str]) -> None:
    """Set channel variables in one command (EXEC MSet) where the values allow it; else one SET VARIABLE
    each, the value quoted. An empty value clears the variable."""
    if not values:
        return
    if len(values) > 1 and all(_NAME.fullmatch(k) and _PLAIN.fullmatch(v) for k, v in values.items()):
        await chan.execute("EXEC MSet " + ",".join(f"{k}={v}" for k, v in values.items()))
        return
    for name, value in values.items():
        await chan.execute(f'SET VARIABLE {name} "{value}"' if value == "" or not _PLAIN.fullmatch(value)
                           else f"SET VARIABLE {name} {value}")
