"""AMI messages to attempt outcomes: a pure reader the server feeds every AMI event.

`OutcomeReader.feed(msg)` returns `(channel_id, outcome, dtmf)` for our outbound
channels (ChannelId starts with `ob-`) and nothing for the rest. Sources:
* `OriginateResponse` (Failure): Reason 5 busy, 8 congestion, 3/1 no answer, else failed.
  When Asterisk could not even create the channel, Uniqueid is `<null>`: the
  ActionID is then mapped back to our ChannelId (`resolve_action`).
* `UserEvent: OutboundResult` from the dialplan: ChannelId, Digit, AMDSTATUS.
* `Hangup` of our channel: answered (ChannelState 6, Up), or the cause before answer;
  a Local channel hangs up with cause 0, so a ringing one counts as no answer.
  (Seen on Asterisk 22: a Local call that rings out gets OriginateResponse Reason 0.)
An attempt may get several reports; the store keeps the most specific one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol

from .model import Outcome

OUR_CHANNEL = re.compile(r"^ob-[0-9A-Za-z]+-[0-9]+-[0-9]+$")  # see scheduler.channel_id

REASONS = {"5": Outcome.BUSY, "8": Outcome.CONGESTION, "3": Outcome.NO_ANSWER, "1": Outcome.NO_ANSWER}
CAUSES = {  # Q.850 causes of a channel hung up before answer
    "17": Outcome.BUSY, "18": Outcome.NO_ANSWER, "19": Outcome.NO_ANSWER,
    "34": Outcome.CONGESTION, "38": Outcome.CONGESTION, "42": Outcome.CONGESTION, "44": Outcome.CONGESTION,
    "1": Outcome.FAILED, "3": Outcome.FAILED, "21": Outcome.FAILED, "22": Outcome.FAILED,
    "27": Outcome.FAILED, "28": Outcome.FAILED,
}
UP, RINGING = "6", "5"  # ChannelState values
Result = tuple[str, str, str]


class AmiLike(Protocol):
    def get(self, name: str, default: Any = None) -> Any: ...


def _get(msg: AmiLike, *names: str) -> str:
    for name in names:
        for variant in (name, name.lower(), name.upper()):
            value = msg.get(variant)
            if value not in (None, ""):
                return str(value).strip()
    return ""


def _ours(*candidates: str) -> str:
    for c in candidates:
        if OUR_CHANNEL.match(c):
            return c
    return ""


class OutcomeReader:
    def __init__(self, resolve_action: Callable[[str], str | None] | None = None) -> None:
        self.resolve_action = resolve_action  # ActionID -> our ChannelId (AmiOriginator.channel_for_action)

    def feed(self, msg: AmiLike) -> list[Result]:
        event = _get(msg, "Event")
        if event == "OriginateResponse":
            by_action = self.resolve_action(_get(msg, "ActionID")) if self.resolve_action else None
            cid = _ours(_get(msg, "Uniqueid"), _get(msg, "ChannelId"), by_action or "")
            if not cid or _get(msg, "Response").lower() == "success":
                return []  # answered: the dialplan or the Hangup will tell how it went
            return [(cid, REASONS.get(_get(msg, "Reason"), Outcome.FAILED), "")]
        if event == "UserEvent" and _get(msg, "UserEvent") == "OutboundResult":
            cid = _ours(_get(msg, "ChannelId"), _get(msg, "Uniqueid"))
            if not cid:
                return []
            if _get(msg, "AMDSTATUS", "AmdStatus").upper() == "MACHINE":
                return [(cid, Outcome.MACHINE, "")]
            digit = "".join(ch for ch in _get(msg, "Digit", "DTMF") if ch in "0123456789*#")
            return [(cid, Outcome.ANSWERED, digit)]
        if event == "Hangup":
            cid = _ours(_get(msg, "Uniqueid"))
            if not cid:
                return []
            state = _get(msg, "ChannelState")
            if state == UP:
                return [(cid, Outcome.ANSWERED, "")]
            cause = CAUSES.get(_get(msg, "Cause"))
            if cause is not None:
                return [(cid, cause, "")]
            # A Local channel ends with cause 0: it rang out if it was ringing, else it just failed
            # (an OriginateResponse with a Reason, if one comes, is more specific and wins).
            return [(cid, Outcome.NO_ANSWER if state == RINGING else Outcome.FAILED, "")]
        return []
