"""What is being recorded and when a recording is over (pure: AMI events in, commands out).

Asterisk starts the recordings itself: the dialplan's [cti-record] runs MixMonitor on every answered agent
leg (docs/qc.md; the CTI's AMI user needs no `system` class for it) and says so with
`UserEvent(CtiRecording, Spool: <name>)` on that channel. On the agent's channel, what Asterisk *receives*
is the agent's voice and what it *transmits* is the caller's: the two legs are written to separate files
(r()/t(), kept in step by MixMonitor's silence filling) and merged after the call, caller left, agent
right. A touch of `<name>.done` by MixMonitor's end command tells the finalizer (even one that restarted
meanwhile) that Asterisk closed the files.

File names carry what indexing needs: `<linkedid>-<uniqueid>-<agent>-<start ms>`; every part is checked
against a strict pattern before the name is used as a path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..dialplan import RECORD_USEREVENT

_ID = re.compile(r"^[0-9]{1,20}\.[0-9]{1,10}$")  # an Asterisk uniqueid (a channel Dial made)
# a linkedid: an Asterisk uniqueid, or the ChannelId our Originate gave the call's first channel
# (`cb-<id>-1-1` for an ACD callback, `ob-...` for a campaign call)
_CALL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
_AGENT = re.compile(r"^[A-Za-z0-9_]{1,40}$")
_NAME = re.compile(r"^(?P<call>[A-Za-z0-9][A-Za-z0-9_.-]{0,79})-(?P<uid>[0-9]{1,20}\.[0-9]{1,10})-"
                   r"(?P<agent>[A-Za-z0-9_]{1,40})-(?P<start>[0-9]{10,16})$")
CALLER, AGENT, DONE = "-caller.wav", "-agent.wav", ".done"


@dataclass(frozen=True)
class SpoolName:
    """One recording in the spool: its base name and what it says."""

    call_id: str
    uniqueid: str
    agent_id: str
    start_ts: float

    @property
    def base(self) -> str:
        return f"{self.call_id}-{self.uniqueid}-{self.agent_id}-{round(self.start_ts * 1000)}"

    @classmethod
    def parse(cls, base: str) -> SpoolName | None:
        m = _NAME.match(base)
        if m is None:
            return None
        return cls(m["call"], m["uid"], m["agent"], int(m["start"]) / 1000.0)

    @classmethod
    def make(cls, call_id: str, uniqueid: str, agent_id: str, start_ts: float) -> SpoolName | None:
        """None when a part is not what Asterisk and our agent ids look like (never sent to Asterisk)."""
        if not (_CALL.match(call_id) and _ID.match(uniqueid) and _AGENT.match(agent_id)):
            return None
        return cls(call_id, uniqueid, agent_id, start_ts)


@dataclass(frozen=True)
class Started:
    """Asterisk started recording `channel` of Asterisk `server` into the files `name`."""

    server: str
    channel: str
    name: SpoolName


@dataclass(frozen=True)
class Ended:
    """The recorded channel hung up: its files are (about to be) complete."""

    name: SpoolName


Command = Started | Ended


class RecorderCore:
    """Feed it AMI events (`feed`); it answers what happened to which recording."""

    def __init__(self) -> None:
        self.active: dict[tuple[str, str], SpoolName] = {}  # (server, uniqueid) -> its recording

    def feed(self, server: str, msg: Any) -> list[Command]:
        """`msg`: an AMI event (anything with `get`)."""
        get = msg.get
        event = get("Event")
        if event == "UserEvent" and get("UserEvent") == RECORD_USEREVENT:
            uid = str(get("Uniqueid") or "")
            name = SpoolName.parse(str(get("Spool") or ""))
            # the name must be this channel's (a UserEvent is anyone's to send from the dialplan)
            if name is None or name.uniqueid != uid or (server, uid) in self.active:
                return []
            self.active[(server, uid)] = name
            return [Started(server, str(get("Channel") or ""), name)]
        if event == "Hangup":
            name = self.active.pop((server, str(get("Uniqueid") or "")), None)
            return [Ended(name)] if name is not None else []
        return []

    def forget(self, server: str) -> None:
        """The link to `server` was lost: its hang-ups may never come (the sweep finds those files)."""
        for key in [k for k in self.active if k[0] == server]:
            del self.active[key]
