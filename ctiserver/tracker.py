"""Call tracker: turns raw AMI events into call and leg state, and into store events.

Pure: it takes AMI messages (anything with `get(name, default)`) and `now`, and
returns `Event`s. Calls are keyed by Linkedid (all legs of one call share it),
channels by Uniqueid. After every (re)connect the AMI adapter runs a resync:
`begin_resync()`, feed every `CoreShowChannel` event, `end_resync(now)`; the
tracker then closes channels Asterisk no longer has (they ended while we were
away) and adopts the ones it has that we never saw.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from .events import Event, Kind

log = logging.getLogger(__name__)

UP = "6"  # AST_STATE_UP


class AmiLike(Protocol):
    def get(self, name: str, default: Any = None) -> Any: ...


@dataclass(slots=True)
class Leg:
    uniqueid: str
    channel: str
    linkedid: str
    started: float
    answered_at: float | None = None
    caller_num: str = ""
    caller_name: str = ""
    exten: str = ""
    context: str = ""
    dialed_by: str = ""  # Uniqueid of the channel whose Dial created this one (AMI DialBegin)
    dialled: bool = False  # this channel dialled another (kept when that one is gone, e.g. transferred away)


@dataclass(slots=True)
class Call:
    call_id: str
    started: float
    legs: dict[str, Leg] = field(default_factory=dict)
    answered_at: float | None = None
    caller_num: str = ""
    caller_name: str = ""
    exten: str = ""

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "call_id": self.call_id,
            "caller_num": self.caller_num,
            "caller_name": self.caller_name,
            "exten": self.exten,
            "started": self.started,
            "age_s": round(now - self.started, 3),
            "answered": self.answered_at is not None,
            "channels": sorted(leg.channel for leg in self.legs.values()),
        }


def _s(msg: AmiLike, name: str) -> str:
    value = msg.get(name, None)
    return "" if value is None else str(value)


def _direction(context: str) -> str:
    return "outbound" if context.startswith("outbound") else "inbound"


class CallTracker:
    """Live picture of every call on one Asterisk server."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.calls: dict[str, Call] = {}
        self.legs: dict[str, Leg] = {}
        self._resync_seen: dict[str, AmiLike] | None = None
        self.skipped = 0  # malformed or unusable events

    # --- queries ---------------------------------------------------------
    def live_calls(self, now: float) -> list[dict[str, Any]]:
        return [c.snapshot(now) for c in sorted(self.calls.values(), key=lambda c: c.started)]

    def call_for_channel(self, uniqueid: str) -> str | None:
        leg = self.legs.get(uniqueid)
        return leg.linkedid if leg else None

    # --- input -------------------------------------------------------------
    def feed(self, msg: AmiLike, now: float) -> list[Event]:
        name = _s(msg, "Event")
        try:
            if name == "Newchannel":
                return self._new_channel(msg, now)
            if name == "Newstate":
                return self._new_state(msg, now)
            if name == "Hangup":
                return self._hangup(msg, now, _s(msg, "Cause"), _s(msg, "Cause-txt"))
            if name == "NewConnectedLine" or name == "NewCallerid":
                return self._caller_update(msg)
            if name == "DialBegin":
                return self._dial_begin(msg)
            if name == "CoreShowChannel" and self._resync_seen is not None:
                uid = _s(msg, "Uniqueid")
                if uid:
                    self._resync_seen[uid] = msg
                return []
        except _Malformed as exc:
            self.skipped += 1
            log.warning("skipping malformed %s event: %s", name or "?", exc)
        return []

    def begin_resync(self) -> None:
        self._resync_seen = {}

    def end_resync(self, now: float) -> list[Event]:
        """Reconcile with the channels Asterisk reported; returns the events that implies."""
        seen = self._resync_seen or {}
        self._resync_seen = None
        out: list[Event] = []
        for uid in [u for u in self.legs if u not in seen]:
            out += self._hangup_uid(uid, now, "0", "ended while the CTI was disconnected")
        for uid, msg in seen.items():
            if uid not in self.legs:
                try:
                    out += self._new_channel(msg, now, resynced=True)
                except _Malformed as exc:
                    self.skipped += 1
                    log.warning("skipping malformed CoreShowChannel: %s", exc)
                    continue
                if _s(msg, "ChannelState") == UP:
                    out += self._answer(self.legs[uid], now)
        return out

    def drop_all(self, now: float, reason: str) -> list[Event]:
        """Asterisk restarted: every channel we knew is gone."""
        out: list[Event] = []
        for uid in list(self.legs):
            out += self._hangup_uid(uid, now, "0", reason)
        return out

    # --- handlers ----------------------------------------------------------
    def _event(self, kind: str, call_id: str | None, now: float, **data: Any) -> Event:
        return Event(kind=kind, ts=now, call_id=call_id, server=self.server, data=data)

    def _new_channel(self, msg: AmiLike, now: float, resynced: bool = False) -> list[Event]:
        uid = _s(msg, "Uniqueid")
        if not uid:
            raise _Malformed("no Uniqueid")
        if uid in self.legs:
            return []
        linkedid = _s(msg, "Linkedid") or uid
        leg = Leg(
            uniqueid=uid,
            channel=_s(msg, "Channel"),
            linkedid=linkedid,
            started=now,
            caller_num=_s(msg, "CallerIDNum"),
            caller_name=_s(msg, "CallerIDName"),
            exten=_s(msg, "Exten"),
            context=_s(msg, "Context"),
        )
        self.legs[uid] = leg
        call = self.calls.get(linkedid)
        extra = {"resynced": True} if resynced else {}
        if call is None:
            call = Call(call_id=linkedid, started=now, caller_num=leg.caller_num,
                        caller_name=leg.caller_name, exten=leg.exten)
            self.calls[linkedid] = call
            call.legs[uid] = leg
            return [self._event(Kind.CALL_NEW, linkedid, now, uniqueid=uid, channel=leg.channel,
                                caller_num=leg.caller_num, caller_name=leg.caller_name,
                                exten=leg.exten, context=leg.context,
                                direction=_direction(leg.context), **extra)]
        call.legs[uid] = leg
        return [self._event(Kind.CALL_LEG, linkedid, now, uniqueid=uid, channel=leg.channel, **extra)]

    def _new_state(self, msg: AmiLike, now: float) -> list[Event]:
        leg = self.legs.get(_s(msg, "Uniqueid"))
        if leg is None:
            return []
        if _s(msg, "ChannelState") == UP:
            return self._answer(leg, now)
        return []

    def _answer(self, leg: Leg, now: float) -> list[Event]:
        if leg.answered_at is not None:
            return []
        leg.answered_at = now
        call = self.calls.get(leg.linkedid)
        if call is not None and call.answered_at is None:
            call.answered_at = now
        return [self._event(Kind.CALL_ANSWER, leg.linkedid, now, uniqueid=leg.uniqueid, channel=leg.channel)]

    def _caller_update(self, msg: AmiLike) -> list[Event]:
        leg = self.legs.get(_s(msg, "Uniqueid"))
        if leg is not None:
            num, name = _s(msg, "CallerIDNum"), _s(msg, "CallerIDName")
            if num and num != "<unknown>":
                leg.caller_num = num
            if name and name != "<unknown>":
                leg.caller_name = name
        return []

    def _dial_begin(self, msg: AmiLike) -> list[Event]:
        """Who dialled whom: the caller's leg is the one that dialled the agent (call control needs it)."""
        dest = self.legs.get(_s(msg, "DestUniqueid"))
        source = _s(msg, "Uniqueid")  # empty for an AMI Originate
        if dest is not None and source and source != dest.uniqueid:
            dest.dialed_by = source
            dialler = self.legs.get(source)
            if dialler is not None:
                dialler.dialled = True
        return []

    def _hangup(self, msg: AmiLike, now: float, cause: str, cause_txt: str) -> list[Event]:
        uid = _s(msg, "Uniqueid")
        if not uid:
            raise _Malformed("no Uniqueid")
        return self._hangup_uid(uid, now, cause, cause_txt)

    def _hangup_uid(self, uid: str, now: float, cause: str, cause_txt: str) -> list[Event]:
        leg = self.legs.pop(uid, None)
        if leg is None:
            return []
        out = [self._event(Kind.CALL_HANGUP, leg.linkedid, now, uniqueid=uid, channel=leg.channel,
                           cause=cause, cause_txt=cause_txt)]
        call = self.calls.get(leg.linkedid)
        if call is not None:
            call.legs.pop(uid, None)
            if not call.legs:
                del self.calls[leg.linkedid]
                out.append(self._event(Kind.CALL_END, call.call_id, now,
                                       duration_s=round(now - call.started, 3),
                                       answered=call.answered_at is not None,
                                       caller_num=call.caller_num))
        return out


class _Malformed(ValueError):
    pass
