"""The ACD engine on the event loop, and callers waiting under CTI control inside FastAGI.

`AcdRuntime` owns one engine. Every input goes through `apply`, which runs the
engine synchronously (asyncio is single-threaded, so inputs never interleave)
and dispatches the commands: events to `emit`, offers and overflows to the
caller's mailbox, callbacks to the hooks. One timer task sleeps until the
engine's `next_deadline()` (or until an input may have moved it) and ticks.

A caller waiting in a FastAGI session is served by `CallerSessions` (session.py, `self.sessions`): music on
hold, announcements, the agent's ring, overflows. An offer that comes while the caller hears an
announcement stops it (`interrupt`: AMI ControlPlayback; a prompt not yet started is not played), so
the agent is rung at once instead of being held reserved until the prompt ends; ring time runs from
Asterisk's DialBegin (`note_ringing`) to the answer.

Everything the caller hears (announcements, where the ACD sends them, voicemail) is spoken in the
caller's language (`lang`, from the IVR; acd.yaml `languages`). A caller asking for an agent from a
menu (`route_by_language`) goes to their language's desk if it has one; a transfer keeps its target.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from ..agi.channel import AgiChannel
from ..clock import Clock
from ..events import Event, Kind
from ..fencing import NO_CLAIMS, Claims
from ..lifecycle import TaskOwner
from .engine import OFFERED, TALKING, AcdEngine
from .model import (
    CancelCallback,
    CancelOffer,
    Command,
    Offer,
    ScheduleCallback,
)
from .session import RELEASE, Announcement, CallerSessions, QueueRequestLike, Say, Served, caller_name

log = logging.getLogger(__name__)

__all__ = ["AcdHooks", "AcdRuntime", "QueueRequestLike", "Say", "Served", "caller_name"]


def _noop(*_: Any) -> None:
    return None


@dataclass
class AcdHooks:
    """Plain callbacks (never awaited, exceptions logged), given to the constructor.

    The server connects the three callback hooks to its outbound feature (ACD callbacks). on_offer,
    on_answer, on_end and on_cancel are for in-process users (tests, embedders): the server's desktop
    does not use them, it follows the event log (acd.offer / acd.answer / acd.complete) instead."""

    on_offer: Callable[[str, str, dict[str, Any]], None] = _noop  # (call_id, agent_id, info)
    on_answer: Callable[[str, str, dict[str, Any]], None] = _noop
    on_end: Callable[[str, str, dict[str, Any]], None] = _noop
    on_cancel: Callable[[CancelOffer], None] = _noop  # stop ringing / screen-pop
    on_callback: Callable[[ScheduleCallback], None] = _noop  # outbound: call back before due_ts
    on_callback_offer: Callable[[Offer], None] = _noop  # outbound: agent reserved for an in-place callback
    on_callback_cancel: Callable[[CancelCallback], None] = _noop  # outbound: the customer redialled


class AcdRuntime:
    """Single-threaded driver of one `AcdEngine` (see module docstring)."""

    def __init__(self, engine: AcdEngine, clock: Clock, emit: Callable[[Event], None], *,
                 say: Say | None = None, hooks: AcdHooks | None = None, recordings_dir: str | None = None,
                 interrupt: Callable[[str], Awaitable[object]] | None = None,
                 claims: Claims = NO_CLAIMS, release_on_stop: bool = False,
                 servers: Collection[str] = ()) -> None:
        self.engine = engine
        self.cfg = engine.cfg
        self.clock = clock
        self.emit = emit
        self.say = say
        self.hooks = hooks or AcdHooks()
        self._mailboxes: dict[str, asyncio.Queue[Command]] = {}
        self._moh: set[str] = set()  # calls whose music on hold is playing
        self._served: dict[str, str] = {}  # call id -> the agent who answered (while being served)
        self._holds: dict[str, tuple[float, float | None]] = {}  # talking call -> (held so far, on hold since)
        self._pending: deque[Command] = deque()
        self._dispatching = False
        self._wake = asyncio.Event()
        self._tasks = TaskOwner("ACD")  # the deadline timer, announcements being interrupted
        self._task: asyncio.Task[None] | None = None  # the timer
        self._session_ended: dict[str, asyncio.Event] = {}  # call id -> set when its serve() returns
        self.recordings_dir = recordings_dir  # where Asterisk writes voicemails (the IVR's recordings folder)
        # stops whatever plays to a channel (by name): AMI ControlPlayback, wired by the server
        self.interrupt = interrupt
        self._announcing: dict[str, Announcement] = {}  # call id -> the announcement it is hearing
        # HA fencing (ctiserver/fencing.py): each ring claimed under the leader's epoch before Dial; it raises if
        # this node does not lead any more (the session ends, the dialplan takes the caller to the next node)
        self.claims = claims
        self.release_on_stop = release_on_stop  # HA: a stop hands the waiting callers on to the next node
        self.servers = frozenset(servers)  # the Asterisk servers' names (a call id names its own: acd/servers.py)
        self.sessions = CallerSessions(self)  # the callers waiting in their FastAGI sessions

    # --- callers in their FastAGI sessions (session.py)

    async def handoff(self, chan: AgiChannel, request: QueueRequestLike) -> str:
        """The IVR's Handoff (see `CallerSessions.handoff`)."""
        return await self.sessions.handoff(chan, request)

    async def serve_caller(self, chan: AgiChannel, call_id: str, skill: str, tier: str | None, caller: str,
                           customer: dict[str, Any] | None = None) -> str:
        """See `CallerSessions.serve_caller`."""
        return await self.sessions.serve_caller(chan, call_id, skill, tier, caller, customer)

    async def serve(self, chan: AgiChannel, call_id: str, skill: str, tier: str | None, caller: str,
                    customer: dict[str, Any] | None = None, *, kind: str = "",
                    prefer_agent: str | None = None, lang: str = "", route_by_language: bool = False,
                    since: float | None = None) -> Served:
        """See `CallerSessions.serve`."""
        return await self.sessions.serve(chan, call_id, skill, tier, caller, customer, kind=kind,
                                         prefer_agent=prefer_agent, lang=lang, route_by_language=route_by_language,
                                         since=since)

    async def session_over(self, call_id: str, timeout: float) -> bool:
        """See `CallerSessions.session_over`."""
        return await self.sessions.session_over(call_id, timeout)

    async def serve_transfer(self, chan: AgiChannel, call_id: str, target: str, *, from_agent: str | None,
                             skill: str | None, tier: str | None, caller: str) -> Served:
        """See `CallerSessions.serve_transfer`."""
        return await self.sessions.serve_transfer(chan, call_id, target, from_agent=from_agent, skill=skill,
                                                  tier=tier, caller=caller)


    # --- lifecycle

    async def start(self) -> None:
        if self._task is None:
            self._task = self._tasks.spawn(self._timer(), name="acd-timer")

    async def stop(self) -> None:
        """Stop the deadline timer (and any announcement being interrupted); callers already in a
        session keep it until it ends (their sessions belong to FastAGI), except with `release_on_stop`
        (HA): then the waiting ones are handed on to the next node (`release_waiting`)."""
        if self.release_on_stop:
            self.release_waiting()
        self._task = None
        await self._tasks.aclose()

    def release_waiting(self) -> int:
        """End the session of every caller still waiting (not one being rung or talking): each is withdrawn
        (`acd.overflow`, reason ha_released) and its session ends without CTI_DONE (`Released`)."""
        n = 0
        for call_id, box in self._mailboxes.items():
            if self.engine.call_state(call_id) == "waiting":
                box.put_nowait(RELEASE)
                n += 1
        if n:
            log.warning("ACD: %d waiting caller(s) handed on to the next CTI node", n)
        return n

    async def _timer(self) -> None:
        while True:
            deadline = self.engine.next_deadline()
            delay = None if deadline is None else max(0.0, deadline - self.clock.now())
            self._wake.clear()
            if delay is None or delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
            try:
                self.apply(self.engine.tick)
            except Exception:  # a bug must not stop every later deadline
                log.exception("ACD tick failed")
                await asyncio.sleep(0.1)
            await asyncio.sleep(0)  # a burst of deadlines never starves the callers

    # --- inputs

    def apply(self, fn: Callable[[float], list[Command]]) -> list[Command]:
        """Run one engine input at the clock's now and dispatch what it says."""
        cmds = fn(self.clock.now())
        self._dispatch(cmds)
        self._wake.set()  # the next deadline may have moved
        return cmds

    def login(self, agent_id: str, ready: bool | None = None) -> list[Command]:
        return self.apply(lambda now: self.engine.login(agent_id, now, ready=ready))

    def logout(self, agent_id: str) -> list[Command]:
        return self.apply(lambda now: self.engine.logout(agent_id, now))

    def set_ready(self, agent_id: str) -> list[Command]:
        return self.apply(lambda now: self.engine.set_ready(agent_id, now))

    def set_not_ready(self, agent_id: str, reason: str) -> list[Command]:
        return self.apply(lambda now: self.engine.set_not_ready(agent_id, reason, now))

    def note_device(self, agent_id: str, device: str) -> list[Command]:
        """The agent's phone is free / busy / unavailable (AMI DeviceStateChange; engine.device_state)."""
        return self.apply(lambda now: self.engine.device_state(agent_id, device, now))

    def retier(self, call_id: str, tier: str, by: str | None = None) -> list[Command]:
        return self.apply(lambda now: self.engine.retier(call_id, tier, now, by=by))

    def note_answered(self, call_id: str, when: float | None = None) -> bool:
        """The agent answered (e.g. from AMI DialEnd/BridgeEnter). False if already known or not ringing."""
        if self.engine.call_state(call_id) != OFFERED:
            return False
        at = self.clock.now() if when is None else when
        self._dispatch(self.engine.ring_answered(call_id, at))
        self._answered_hook(call_id)
        return True

    def note_ringing(self, call_id: str, agent_id: str, when: float | None = None) -> bool:
        """Asterisk began dialling `agent_id` for `call_id` (AMI DialBegin, at its Timestamp `when`): the
        ring time starts here. False unless that agent is the one being offered the call."""
        if self.engine.call_state(call_id) != OFFERED or self.engine.call_agent(call_id) != agent_id:
            return False
        at = self.clock.now() if when is None else when
        self._dispatch(self.engine.dial_began(call_id, at))
        return True

    def key_pressed(self, call_id: str, channel: str, digit: str) -> bool:
        """A key Asterisk received on a channel of the call (AMI DTMFEnd): see `CallerSessions.key_pressed`."""
        return self.sessions.key_pressed(call_id, channel, digit)

    def note_hold(self, call_id: str, on: bool, when: float | None = None) -> bool:
        """The agent put the caller on hold / took them back (AMI Hold/Unhold). False if not talking."""
        if self.engine.call_state(call_id) != TALKING:
            return False
        at = self.clock.now() if when is None else when
        total, since = self._holds.get(call_id, (0.0, None))
        if on and since is None:
            self._holds[call_id] = (total, at)
        elif not on and since is not None:
            self._holds[call_id] = (total + max(0.0, at - since), None)
        return True

    def _held_s(self, call_id: str, now: float) -> float:
        total, since = self._holds.pop(call_id, (0.0, None))
        return total + (max(0.0, now - since) if since is not None else 0.0)

    def callback_answered(self, call_id: str) -> list[Command]:
        """Outbound side: the agent reserved for an in-place callback answered."""
        return self.apply(lambda now: self.engine.ring_answered(call_id, now))

    def callback_failed(self, call_id: str, reason: str = "noanswer") -> list[Command]:
        """Outbound side: the agent did not answer the callback ring (RONA)."""
        return self.apply(lambda now: self.engine.ring_failed(call_id, now, reason))

    def callback_ended(self, call_id: str, outcome: str | None = None) -> list[Command]:
        """Outbound side: the callback conversation ended (outcome e.g. 'reached', 'no_answer')."""
        return self.apply(lambda now: self.engine.call_ended(call_id, now, outcome=outcome,
                                                             hold_s=self._held_s(call_id, now)))

    def _dispatch(self, cmds: list[Command]) -> None:
        """Hand out commands in engine order. A hook that feeds the engine again (e.g. the outbound
        side reporting at once) has its commands queued behind ours, so the log stays causal."""
        self._pending.extend(cmds)
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._pending:
                self._dispatch_one(self._pending.popleft())
        finally:
            self._dispatching = False

    def _dispatch_one(self, cmd: Command) -> None:
        try:
            if isinstance(cmd, Event):
                if cmd.kind == Kind.ACD_ANSWER and cmd.call_id in self._mailboxes and cmd.agent_id:
                    self._served[cmd.call_id] = cmd.agent_id
                self.emit(cmd)
            elif isinstance(cmd, Offer) and cmd.kind == "callback":
                self.hooks.on_callback_offer(cmd)
            elif isinstance(cmd, ScheduleCallback):
                self.hooks.on_callback(cmd)
            elif isinstance(cmd, CancelCallback):
                self.hooks.on_callback_cancel(cmd)
            else:
                if isinstance(cmd, CancelOffer):
                    self.hooks.on_cancel(cmd)
                box = self._mailboxes.get(cmd.call_id)
                if box is not None:
                    if isinstance(cmd, Offer) and self.engine.call_state(cmd.call_id) == OFFERED \
                            and self.engine.call_agent(cmd.call_id) == cmd.agent_id:
                        # Dial enforces the ring timeout; the offer may wait a moment for a prompt to stop
                        self.engine.take_timeout(cmd.call_id)
                        self._stop_announcement(cmd.call_id)
                    box.put_nowait(cmd)
                elif isinstance(cmd, Offer):
                    # nobody is holding this caller any more: give the agent back at once
                    log.warning("ACD offer for call %s without a waiting caller", cmd.call_id)
                    asyncio.get_running_loop().call_soon(self._drop, cmd.call_id)
        except Exception:
            log.exception("ACD could not dispatch %r", cmd)

    def _stop_announcement(self, call_id: str) -> None:
        """An agent is offered to a caller hearing an announcement: nothing more is played to them, and
        what plays now is stopped, so the agent is rung at once."""
        ann = self._announcing.get(call_id)
        if ann is None or ann.stopped:
            return
        ann.stopped = True
        channel = ann.chan.headers.get("agi_channel", "")
        if ann.playing and channel and self.interrupt is not None:
            self._tasks.spawn(self._interrupt(channel), name=f"acd-interrupt-{call_id}")

    async def _interrupt(self, channel: str) -> object:
        assert self.interrupt is not None
        try:
            return await self.interrupt(channel)
        except Exception as exc:  # the prompt then plays to its end: the ring only starts later
            log.warning("could not stop the announcement on %s: %s", channel, exc)
            return None

    def _drop(self, call_id: str) -> None:
        if self.engine.call_state(call_id) in ("waiting", OFFERED):
            self.apply(lambda now: self.engine.abandon(call_id, now))

    def _hook(self, name: str, *args: Any) -> None:
        try:
            getattr(self.hooks, name)(*args)
        except Exception:
            log.exception("ACD hook %s failed", name)

    def _answered_hook(self, call_id: str) -> None:
        agent = self.engine.call_agent(call_id)
        if agent is not None:
            self._hook("on_answer", call_id, agent, {"call_id": call_id})

    def end_talk(self, call_id: str) -> None:
        """The agent's talk on `call_id` is over though the caller's leg may go on (a completed transfer):
        complete it (hold time included) and start the agent's wrap-up."""
        self._end_talk(call_id)

    def _end_talk(self, call_id: str) -> None:
        agent = self.engine.call_agent(call_id)
        self.apply(lambda now: self.engine.call_ended(call_id, now, hold_s=self._held_s(call_id, now)))
        if agent is not None:
            self._hook("on_end", call_id, agent, {"call_id": call_id})
