"""AMI messages to attempt outcomes: a pure reader the server feeds every AMI event.

`OutcomeReader.feed(msg, now)` returns `Result(channel_id, outcome, dtmf, ended)` for our outbound
channels (ChannelId starts with `ob-`) and nothing for the rest. Sources:
* `OriginateResponse` (Failure): Reason 5 busy, 8 congestion, 3/1 no answer, else failed.
  When Asterisk could not even create the channel, Uniqueid is `<null>`: the
  ActionID is then mapped back to our ChannelId (`resolve_action`).
* `UserEvent: OutboundResult` from the dialplan: ChannelId, Digit, AMDSTATUS. The
  dialplan sends one with AMDSTATUS=MACHINE as soon as AMD() says so, before
  anything is played, so a machine that hangs up early is still a machine. Such a
  report comes while the call goes on (`ended=False`): the attempt keeps counting as
  a live call until its Hangup.
* `Hangup` of our channel: answered (ChannelState 6, Up), or the cause before answer;
  a Local channel hangs up with cause 0, so a ringing one counts as no answer.
  (Seen on Asterisk 22: a Local call that rings out gets OriginateResponse Reason 0.)

One attempt, one result. A call that fails before it is answered produces two reports,
the `Hangup` of its channel and the `OriginateResponse`, in either order (they come from
two Asterisk threads). Neither is passed on alone: the first is held until the other
arrives, and the two become ONE result, the more specific of them (a ringing Local
channel's Hangup says no answer where the response says only Reason 0; a response's
Reason 8 says congestion where a Local channel's cause 0 says nothing). A report whose
partner has not come within `settle_s` (an AMI link lost in between) is released by
`due(now)`; the partner, if it comes later still, is dropped.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from .model import OUTCOME_RANK, Outcome

OUR_CHANNEL = re.compile(r"^ob-[0-9A-Za-z]+-[0-9]+-[0-9]+$")  # see scheduler.channel_id

REASONS = {"5": Outcome.BUSY, "8": Outcome.CONGESTION, "3": Outcome.NO_ANSWER, "1": Outcome.NO_ANSWER}
CAUSES = {  # Q.850 causes of a channel hung up before answer
    "17": Outcome.BUSY, "18": Outcome.NO_ANSWER, "19": Outcome.NO_ANSWER,
    "34": Outcome.CONGESTION, "38": Outcome.CONGESTION, "42": Outcome.CONGESTION, "44": Outcome.CONGESTION,
    "1": Outcome.FAILED, "3": Outcome.FAILED, "21": Outcome.FAILED, "22": Outcome.FAILED,
    "27": Outcome.FAILED, "28": Outcome.FAILED,
}
UP, RINGING = "6", "5"  # ChannelState values


class Result(NamedTuple):
    """One report on an attempt. `ended`: the call is over (a UserEvent from the dialplan reports a
    verdict while the call goes on: a machine still taking the message, a customer handed to an agent)."""

    channel_id: str
    outcome: str
    dtmf: str = ""
    ended: bool = True


SETTLED_MEMORY = 4096  # channels released without their partner, remembered to drop a late one


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
    def __init__(self, resolve_action: Callable[[str], str | None] | None = None, *,
                 settle_s: float = 5.0) -> None:
        self.resolve_action = resolve_action  # ActionID -> our ChannelId (AmiOriginator.channel_for_action)
        self.settle_s = settle_s
        self._held: dict[str, tuple[str, str, float]] = {}  # channel -> (source, outcome, since)
        self._settled: OrderedDict[str, None] = OrderedDict()  # released alone: a late partner is dropped

    def feed(self, msg: AmiLike, now: float = 0.0) -> list[Result]:
        event = _get(msg, "Event")
        if event == "OriginateResponse":
            by_action = self.resolve_action(_get(msg, "ActionID")) if self.resolve_action else None
            channel = _ours(_get(msg, "Uniqueid"))
            cid = channel or _ours(_get(msg, "ChannelId"), by_action or "")
            if not cid or _get(msg, "Response").lower() == "success":
                return []  # answered: the dialplan or the Hangup will tell how it went
            outcome = REASONS.get(_get(msg, "Reason"), Outcome.FAILED)
            if not channel:
                return [Result(cid, outcome)]  # no channel was created: no Hangup will follow
            return self._pair(cid, "response", outcome, now)
        if event == "UserEvent" and _get(msg, "UserEvent") == "OutboundResult":
            cid = _ours(_get(msg, "ChannelId"), _get(msg, "Uniqueid"))
            if not cid:
                return []
            if _get(msg, "AMDSTATUS", "AmdStatus").upper() == "MACHINE":
                return [Result(cid, Outcome.MACHINE, "", ended=False)]
            digit = "".join(ch for ch in _get(msg, "Digit", "DTMF") if ch in "0123456789*#")
            return [Result(cid, Outcome.ANSWERED, digit, ended=False)]
        if event == "Hangup":
            cid = _ours(_get(msg, "Uniqueid"))
            if not cid:
                return []
            state = _get(msg, "ChannelState")
            if state == UP:
                self._held.pop(cid, None)
                return [Result(cid, Outcome.ANSWERED)]
            cause = CAUSES.get(_get(msg, "Cause"))
            if cause is None:
                # A Local channel ends with cause 0: it rang out if it was ringing, else it just failed
                # (the OriginateResponse's Reason, if more specific, wins when the two are paired).
                cause = Outcome.NO_ANSWER if state == RINGING else Outcome.FAILED
            return self._pair(cid, "hangup", cause, now)
        return []

    def _pair(self, cid: str, source: str, outcome: str, now: float) -> list[Result]:
        if cid in self._settled:
            return []  # its partner was released alone already
        other = self._held.get(cid)
        if other is None or other[0] == source:
            self._held[cid] = (source, outcome, now)
            return []
        del self._held[cid]
        # the more specific of the two; on a tie the Hangup's cause (Q.850) is the finer source
        hangup, response = (outcome, other[1]) if source == "hangup" else (other[1], outcome)
        best = hangup if OUTCOME_RANK[hangup] >= OUTCOME_RANK[response] else response
        return [Result(cid, best)]

    def due(self, now: float) -> list[Result]:
        """Held reports whose partner did not come within `settle_s`: released as they are."""
        out: list[Result] = []
        for cid, (_, outcome, since) in list(self._held.items()):
            if now - since >= self.settle_s:
                del self._held[cid]
                out.append(Result(cid, outcome))
                self._remember(cid)
        return out

    def release_all(self) -> list[Result]:
        """Every held report now (the AMI link was lost: their partners will not come)."""
        out = [Result(cid, outcome) for cid, (_, outcome, _) in self._held.items()]
        for r in out:
            self._remember(r.channel_id)
        self._held.clear()
        return out

    def next_deadline(self) -> float | None:
        return min((since + self.settle_s for _, _, since in self._held.values()), default=None)

    def _remember(self, cid: str) -> None:
        self._settled[cid] = None
        while len(self._settled) > SETTLED_MEMORY:
            self._settled.popitem(last=False)
