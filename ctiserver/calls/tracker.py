"""Call tracker: turns raw AMI events into call and leg state, and into store events.

Pure: it takes AMI messages (anything with `get(name, default)`) and `now`, and
returns `Event`s. Calls are keyed by Linkedid (all legs of one call share it),
channels by Uniqueid. After every (re)connect the AMI adapter runs a resync:
`begin_resync()`, feed every `CoreShowChannel` event, `end_resync(now, recorded)`;
the tracker then closes channels Asterisk no longer has (they ended while we were
away) and adopts the ones it has that we never saw.

Times are Asterisk's: an event's time is its `Timestamp` header (manager.conf
`timestampevents = yes`), and `now` is only the fallback for an event without one
(see `ami.message.event_time`). So a call's duration is what Asterisk saw, however
late the CTI read its events.

Adopting after a CTI restart: the calls the previous process already recorded are
passed in as `recorded` (read from the event store); they are adopted silently and
keep their recorded start, so a call has one `call.new` and its `call.end` measures
from the real start. A call with no record starts at the channel's creation time as
Asterisk reports it (CoreShowChannel `Duration`, tightened by the Uniqueid's epoch
second), not at the time of the resync.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..ami.message import AmiMessage, event_time
from ..events import Event, Kind
from ..lograte import LogBurst

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
    origin: str = ""  # Uniqueid of the leg that started the call (its CallerID is the call's)

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


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """What the event store already holds about a live call (written by an earlier process)."""

    started: float  # ts of its call.new
    legs: frozenset[str] = frozenset()  # Uniqueids with a call.new or call.leg row
    answered: frozenset[str] = frozenset()  # Uniqueids with a call.answer row
    answered_at: float | None = None  # ts of its first call.answer


_DURATION = re.compile(r"^(\d+):([0-5]?\d):([0-5]?\d)$")
_UNIQUEID_EPOCH = re.compile(r"(?:^|-)(\d{9,11})\.\d+$")  # [systemname-]<epoch second>.<sequence>


def channel_created(duration: str | None, uniqueid: str, listed_at: float) -> float | None:
    """When a channel was created, from a CoreShowChannel listed at `listed_at` (Asterisk's time).

    `Duration: HH:MM:SS` is whole seconds of age, so creation lies in (listed - d - 1, listed - d];
    a default Uniqueid begins with the creation's epoch second, [u, u + 1). The middle of what both
    allow is returned (within 0.5 s); None when Duration is missing or unreadable.
    """
    m = _DURATION.match((duration or "").strip())
    if m is None:
        return None
    age = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3))
    lo, hi = listed_at - age - 1.0, listed_at - age
    u = _UNIQUEID_EPOCH.search(uniqueid)
    if u is not None:
        u_lo = float(u.group(1))
        if max(lo, u_lo) < min(hi, u_lo + 1.0):  # a custom ChannelId that happens to look like one is ignored
            lo, hi = max(lo, u_lo), min(hi, u_lo + 1.0)
    return (lo + hi) / 2


_TRACKED = frozenset({"Newchannel", "Newstate", "Hangup", "NewConnectedLine", "NewCallerid", "DialBegin",
                      "CoreShowChannel"})


def _s(msg: AmiLike, name: str) -> str:
    value = msg.get(name, None)
    if value.__class__ is str:
        return value
    return "" if value is None else str(value)


def _cid(msg: AmiLike, name: str) -> str:
    """A CallerID header; Asterisk's `<unknown>` (not set yet, e.g. an Originate's channel) is no value."""
    value = _s(msg, name)
    return "" if value == "<unknown>" else value


def _direction(context: str) -> str:
    return "outbound" if context.startswith("outbound") else "inbound"


class CallTracker:
    """Live picture of every call on one Asterisk server."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.calls: dict[str, Call] = {}
        self.legs: dict[str, Leg] = {}
        self._resync_seen: dict[str, tuple[AmiLike, float]] | None = None  # uid -> (CoreShowChannel, listed at)
        self._resync_born: set[str] = set()  # channels that appeared (Newchannel) while a resync ran
        self._resync_gone: set[str] = set()  # channels that hung up while a resync ran
        self.skipped = 0  # malformed or unusable events
        self._malformed_log = LogBurst(log, "malformed AMI events skipped")  # a flood of them: one line, a count

    # --- queries ---------------------------------------------------------
    def live_calls(self, now: float) -> list[dict[str, Any]]:
        return [c.snapshot(now) for c in sorted(self.calls.values(), key=lambda c: c.started)]

    def call_for_channel(self, uniqueid: str) -> str | None:
        leg = self.legs.get(uniqueid)
        return leg.linkedid if leg else None

    # --- input -------------------------------------------------------------
    def feed(self, msg: AmiLike, now: float) -> list[Event]:
        """One AMI event; `now` is the fallback time for an event without Asterisk's Timestamp."""
        name = msg.event if isinstance(msg, AmiMessage) else _s(msg, "Event")
        if name not in _TRACKED:  # most of the stream (DTMF, bridges, dialplan, ...): nothing to read
            return []
        at = event_time(msg, now)
        try:
            if name == "Newchannel":
                out = self._new_channel(msg, at)
                if self._resync_seen is not None:
                    self._resync_born.add(_s(msg, "Uniqueid"))
                return out
            if name == "Newstate":
                return self._new_state(msg, at)
            if name == "Hangup":
                if self._resync_seen is not None:
                    self._resync_gone.add(_s(msg, "Uniqueid"))
                return self._hangup(msg, at, _s(msg, "Cause"), _s(msg, "Cause-txt"))
            if name == "NewConnectedLine" or name == "NewCallerid":
                return self._caller_update(msg, at)
            if name == "DialBegin":
                return self._dial_begin(msg)
            if name == "CoreShowChannel" and self._resync_seen is not None:
                uid = _s(msg, "Uniqueid")
                if uid:
                    self._resync_seen[uid] = (msg, at)
                return []
        except _Malformed as exc:
            self.skipped += 1
            self._malformed_log.add(f"{name or '?'}: {exc}")
        return []

    def begin_resync(self) -> None:
        self._resync_seen = {}
        self._resync_born, self._resync_gone = set(), set()

    def cancel_resync(self) -> None:
        """The listing failed: keep every channel (we must not close calls we merely failed to see)."""
        self._resync_seen = None
        self._resync_born, self._resync_gone = set(), set()

    def resync_unknown_calls(self) -> set[str]:
        """Call ids (Linkedids) of listed channels the tracker does not know: ask the store about these."""
        return {_s(msg, "Linkedid") or uid for uid, (msg, _) in (self._resync_seen or {}).items()
                if uid not in self.legs}

    def end_resync(self, now: float, recorded: Mapping[str, RecordedCall] | None = None) -> list[Event]:
        """Reconcile with the channels Asterisk reported; returns the events that implies.

        `recorded`: calls the store already holds (see `RecordedCall`); they get no second call.new,
        call.leg or call.answer, and keep their recorded start."""
        seen = self._resync_seen or {}
        born, gone = self._resync_born, self._resync_gone
        self._resync_seen, self._resync_born, self._resync_gone = None, set(), set()
        recorded = recorded or {}
        out: list[Event] = []
        for uid in [u for u in self.legs if u not in seen and u not in born]:
            out += self._hangup_uid(uid, now, "0", "ended while the CTI was disconnected")
        adopt: list[tuple[float, str, AmiLike, float]] = []
        for uid, (msg, listed_at) in seen.items():
            if uid not in self.legs and uid not in gone:  # a listed channel may hang up before we get here
                created = channel_created(_s(msg, "Duration"), uid, listed_at)
                adopt.append((listed_at if created is None else created, uid, msg, listed_at))
        adopt.sort(key=lambda item: item[0])  # a call's first channel first: the call starts with it
        for created, uid, msg, listed_at in adopt:
            linkedid = _s(msg, "Linkedid") or uid
            known = recorded.get(linkedid)
            try:
                events = self._new_channel(msg, created, resynced=True,
                                           call_started=known.started if known else None)
            except _Malformed as exc:
                self.skipped += 1
                self._malformed_log.add(f"CoreShowChannel: {exc}")
                continue
            if known is not None:
                call = self.calls[linkedid]
                if known.answered_at is not None and call.answered_at is None:
                    call.answered_at = known.answered_at
                if uid in known.legs:
                    events = []
                elif events and events[0].kind == Kind.CALL_NEW:  # its call.new is in the store: a leg
                    leg = self.legs[uid]
                    events = [self._event(Kind.CALL_LEG, linkedid, created, uniqueid=uid, channel=leg.channel,
                                          resynced=True)]
            out += events
            if _s(msg, "ChannelState") == UP:
                answer = self._answer(self.legs[uid], listed_at)
                out += [] if known is not None and uid in known.answered else answer
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

    def _new_channel(self, msg: AmiLike, now: float, resynced: bool = False,
                     call_started: float | None = None) -> list[Event]:
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
            caller_num=_cid(msg, "CallerIDNum"),
            caller_name=_cid(msg, "CallerIDName"),
            exten=_s(msg, "Exten"),
            context=_s(msg, "Context"),
        )
        self.legs[uid] = leg
        call = self.calls.get(linkedid)
        extra = {"resynced": True} if resynced else {}
        if call is None:
            call = Call(call_id=linkedid, started=now if call_started is None else call_started,
                        caller_num=leg.caller_num, caller_name=leg.caller_name, exten=leg.exten, origin=uid)
            self.calls[linkedid] = call
            call.legs[uid] = leg
            return [self._event(Kind.CALL_NEW, linkedid, call.started, uniqueid=uid, channel=leg.channel,
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

    def _caller_update(self, msg: AmiLike, now: float) -> list[Event]:
        """NewCallerid / NewConnectedLine: a leg's CallerID changed. On the leg that started the call
        (e.g. the channel of an AMI Originate, created as `<unknown>` and given its CallerID just after)
        the call's caller changes too, and `call.callerid` records it."""
        leg = self.legs.get(_s(msg, "Uniqueid"))
        if leg is None:
            return []
        num, name = _cid(msg, "CallerIDNum"), _cid(msg, "CallerIDName")
        if num:
            leg.caller_num = num
        if name:
            leg.caller_name = name
        call = self.calls.get(leg.linkedid)
        if call is None or call.origin != leg.uniqueid or _s(msg, "Event") != "NewCallerid":
            return []
        if (call.caller_num, call.caller_name) == (leg.caller_num, leg.caller_name):
            return []
        call.caller_num, call.caller_name = leg.caller_num, leg.caller_name
        return [self._event(Kind.CALL_CALLERID, call.call_id, now, uniqueid=leg.uniqueid,
                            caller_num=call.caller_num, caller_name=call.caller_name)]

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
                                       caller_num=call.caller_num, caller_name=call.caller_name))
        return out


class _Malformed(ValueError):
    pass
