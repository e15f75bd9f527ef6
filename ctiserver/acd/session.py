"""One caller waiting under the ACD inside their FastAGI session: held, told, rung, or sent elsewhere.

`serve` queues the caller in the engine and keeps them waiting: music on hold, periodic
position/wait announcements (in the caller's language), an optional key for a callback in place of
waiting, hangup probes. When the engine offers an agent it runs `EXEC Dial` with the ring timeout;
DIALSTATUS tells answer from RONA. An overflow or a refusal at the door sends the caller to a
message, a voicemail or word of a callback (`_deliver`). On any orderly finish it sets `CTI_DONE=1`
and `CTI_ACD_RESULT`, so the dialplan's fallback `Queue()` only runs when the CTI itself died.
`serve_transfer` rings an agent a caller was blind-transferred to, and brings the caller back
through the ACD when that fails.

`AcdRuntime` (runtime.py) owns the engine on the loop: the inputs (`apply`), the dispatch of commands into
each caller's mailbox, and the hooks. It builds its `CallerSessions` on itself and hands it its callers;
what a session reads of it is the `SessionHost` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..agi.channel import AgiChannel, AgiError, AgiHangup, AgiReply, set_variables
from ..clock import Clock
from ..events import Event, Kind
from ..fencing import Claims
from .config import AcdConfig
from .engine import OFFERED, TALKING, AcdEngine
from .model import AcdError, Blocked, Command, Destination, Offer, Overflow, ScheduleCallback
from .resume import QUEUED_VAR, queued_mark
from .servers import server_of

log = logging.getLogger(__name__)

Say = Callable[[AgiChannel, str, str], Awaitable[None]]  # (channel, text, language): speak to the caller
_RONA_STATUSES = {"NOANSWER": "noanswer", "BUSY": "busy", "CHANUNAVAIL": "chanunavail",
                  "CONGESTION": "congestion"}


@dataclass(frozen=True, slots=True)
class Served:
    """How a caller left the ACD, and who talked to them."""

    outcome: str
    agent_id: str | None = None


class QueueRequestLike(Protocol):
    """The IVR's QueueRequest, as far as the ACD reads it."""

    @property
    def call_id(self) -> str: ...
    @property
    def skill(self) -> str: ...
    @property
    def tier(self) -> str: ...
    @property
    def caller(self) -> str: ...
    @property
    def customer(self) -> dict[str, Any] | None: ...
    @property
    def lang(self) -> str: ...


class _TimedExecute(Protocol):
    async def __call__(self, command: str, timeout: float | None = None) -> AgiReply: ...


class Released(Exception):
    """This node stopped leading (HA): the waiting caller's session ends without CTI_DONE and the dialplan
    takes them to the next CTI node, which resumes them in their place (ctiserver/ha/takeover.py)."""


RELEASED_REASON = "ha_released"  # the withdraw's reason: the caller is still waiting, elsewhere
RELEASE: Any = object()  # the mailbox command that ends a waiting caller's session (AcdRuntime.release_waiting)


@dataclass(frozen=True, slots=True)
class KeyPressed:
    """A mailbox item: the waiting caller pressed the callback key (Asterisk's DTMFEnd over AMI)."""

    digit: str


class SessionHost(Protocol):
    """What a caller's session needs of the runtime that owns the engine on the loop (`AcdRuntime`)."""

    @property
    def engine(self) -> AcdEngine: ...
    @property
    def cfg(self) -> AcdConfig: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def say(self) -> Say | None: ...
    @property
    def recordings_dir(self) -> str | None: ...
    @property
    def claims(self) -> Claims: ...
    @property
    def servers(self) -> frozenset[str]: ...  # the Asterisk servers' names (a call id names its own)
    @property
    def _mailboxes(self) -> dict[str, asyncio.Queue[Command]]: ...  # call id -> what the engine said for them
    @property
    def _moh(self) -> set[str]: ...  # calls whose music on hold is playing
    @property
    def _served(self) -> dict[str, str]: ...  # call id -> the agent who answered (while being served)
    @property
    def _session_ended(self) -> dict[str, asyncio.Event]: ...  # call id -> set when its serve() returns
    @property
    def _announcing(self) -> dict[str, Announcement]: ...  # call id -> the announcement it is hearing

    def emit(self, event: Event) -> None: ...
    def apply(self, fn: Callable[[float], list[Command]]) -> list[Command]: ...
    def note_answered(self, call_id: str, when: float | None = None) -> bool: ...
    def _hook(self, name: str, *args: Any) -> None: ...
    def _end_talk(self, call_id: str) -> None: ...


class CallerSessions:
    """The per-caller half of `AcdRuntime`, which builds it on itself (`host`) and hands it its callers."""

    def __init__(self, host: SessionHost) -> None:
        self.host = host
        self._rings = 0  # rings claimed by this process (HA: each ring's claim key)
        self._keyed: dict[str, str] = {}  # call id -> its AGI channel, while held and listening for the key

    def key_pressed(self, call_id: str, channel: str, digit: str) -> bool:
        """A DTMF key Asterisk received on a channel of call `call_id` (AMI DTMFEnd, key_source "ami"): the
        callback key, pressed on the held caller's own channel while they wait (not while an agent rings),
        goes to their mailbox. True when it did."""
        if self._keyed.get(call_id) != channel or digit != self.host.cfg.callback_key:
            return False
        box = self.host._mailboxes.get(call_id)
        if box is None or self.host.engine.call_state(call_id) != "waiting":
            return False
        box.put_nowait(KeyPressed(digit))  # type: ignore[arg-type]
        return True

    async def handoff(self, chan: AgiChannel, request: QueueRequestLike) -> str:
        """The IVR's Handoff: queue the caller; the id of the agent who talked to them, or ''.

        An empty tier means "classify by the customer record with the tier rules"."""
        served = await self.serve(chan, request.call_id, request.skill, request.tier or None, request.caller,
                                  request.customer, lang=request.lang, route_by_language=True)
        return served.agent_id or ""

    async def serve_caller(self, chan: AgiChannel, call_id: str, skill: str, tier: str | None, caller: str,
                           customer: dict[str, Any] | None = None) -> str:
        """Hold the caller until an agent took the call, they left, or the ACD sent them elsewhere.

        Returns "answered", "abandoned", "callback", "overflow:<kind>[:<target>]" or
        "blocked:<reason>:<kind>[:<target>]". Raises AcdError for bad input (unknown skill/tier).
        """
        return (await self.serve(chan, call_id, skill, tier, caller, customer)).outcome

    async def serve(self, chan: AgiChannel, call_id: str, skill: str, tier: str | None, caller: str,
                    customer: dict[str, Any] | None = None, *, kind: str = "",
                    prefer_agent: str | None = None, lang: str = "", route_by_language: bool = False,
                    since: float | None = None) -> Served:
        """`serve_caller` that also says which agent answered. `prefer_agent`, `since` (a caller resumed after
        a takeover, queued since then): see `AcdEngine.enqueue`. Nothing is awaited before the caller is
        queued, so callers served in turn are queued in that order.
        `lang`: the caller's language (what they hear); `route_by_language`: a caller who asked for an
        agent goes to their language's desk."""
        box: asyncio.Queue[Command] = asyncio.Queue()
        if call_id in self.host._mailboxes:
            raise AcdError(f"call {call_id} is already being served")
        lang = self.host.cfg.language(lang)
        if route_by_language:
            skill = self.host.cfg.desk_for(skill, lang)
        self.host._mailboxes[call_id] = box
        server = server_of(call_id, self.host.servers)
        info = {"call_id": call_id, "caller": caller, "skill": skill, "tier": tier, "customer": customer,
                "lang": lang, "server": server}
        result = "abandoned"
        hung_up = False
        enqueued = False
        name = caller_name(chan)
        try:
            cmds = self.host.apply(lambda now: self.host.engine.enqueue(
                call_id, skill, tier, caller, now, customer=customer, kind=kind, caller_name=name,
                prefer_agent=prefer_agent, lang=lang, since=since, server=server))
            enqueued = True
            queued = next((c for c in cmds if isinstance(c, Event) and c.kind == Kind.ACD_ENQUEUE
                           and c.call_id == call_id), None)
            noted: dict[str, str] = {}
            if queued is not None:  # the caller's place, on the channel (acd/resume.py queued_mark)
                at = since if since is not None else queued.ts
                noted[QUEUED_VAR] = queued_mark(skill, str(queued.tier or tier), at, lang)
            if lang != self.host.cfg.default_language:  # a later session on this channel (a transfer) knows it
                noted["CTI_LANG"] = lang
            await set_variables(chan, noted)
            result = await self._hold(chan, call_id, box, info)
            dest = info.get("destination")
            if isinstance(dest, Destination):
                await self._deliver(chan, call_id, skill, caller, dest, str(info.get("tier") or ""), lang)
        except AgiHangup:
            hung_up = True
            result = "answered" if self.host.engine.call_state(call_id) == TALKING else "abandoned"
            self._caller_gone(call_id)
        except BaseException as exc:
            # our failure, not the caller's: the dialplan's fallback queue takes them (CTI_DONE unset)
            if enqueued and self.host.engine.call_state(call_id) in ("waiting", OFFERED):
                with contextlib.suppress(AcdError):
                    released = isinstance(exc, Released)  # handed on to the next CTI node, still waiting
                    self.host.apply(lambda now: self.host.engine.withdraw(
                        call_id, now, RELEASED_REASON if released else "cti_error",
                        target="cti" if released else "fallback"))
            raise
        finally:
            self.host._mailboxes.pop(call_id, None)
            ended = self.host._session_ended.pop(call_id, None)
            if ended is not None:
                ended.set()
            music = call_id in self.host._moh
            self.host._moh.discard(call_id)
            agent = self.host._served.pop(call_id, None)
        if not hung_up:
            await self._finish(chan, result, music)
        return Served(result, agent if result == "answered" else None)

    async def session_over(self, call_id: str, timeout: float) -> bool:
        """Wait until no serve() holds `call_id` (a leg redirected elsewhere ends its old session a
        moment after its new one starts); False if one still does after `timeout` seconds."""
        if call_id not in self.host._mailboxes:
            return True
        ended = self.host._session_ended.setdefault(call_id, asyncio.Event())
        try:
            await asyncio.wait_for(ended.wait(), timeout)
        except TimeoutError:
            return call_id not in self.host._mailboxes
        return True

    async def serve_transfer(self, chan: AgiChannel, call_id: str, target: str, *, from_agent: str | None,
                             skill: str | None, tier: str | None, caller: str) -> Served:
        """A caller blind-transferred to agent `target` (the desktop's transfer): ring the target's phone;
        if it cannot take the call (not reachable, busy, no answer), log `acd.transfer_failed` (the
        transferring agent's desktop says why) and bring the caller back through the ACD, to the
        agent who transferred them first (`from_agent`), else to their queue `skill` with their tier.
        Returns "transferred" when the target answered."""
        args = self.host.cfg.dial_args(target, self.host.cfg.ring_timeout_s)
        status = "HANGUP"
        try:
            await _execute(chan, f"EXEC Dial {args}", self.host.cfg.dial_max_s)
            status = (await chan.execute("GET VARIABLE DIALSTATUS")).data.strip().upper()
        except AgiHangup:
            return Served("abandoned")
        if status == "ANSWER":
            await self._finish(chan, "transferred", False)
            return Served("transferred", target)
        if status == "CANCEL":
            return Served("abandoned")  # the caller hung up while the target rang
        reason = {"NOANSWER": "noanswer", "BUSY": "busy"}.get(status, "unreachable")
        if not await self.session_over(call_id, 5.0):
            log.warning("call %s: its previous ACD session is still open after the transfer", call_id)
            self._caller_gone(call_id)
        queue = skill if skill in self.host.cfg.skills else None
        if queue is None or tier not in self.host.cfg.tier_rank:
            tier = None
        back = from_agent if from_agent in self.host.engine.agent_ids() else None
        free = back is not None and self.host.engine.agent_state(back)[0] in ("available", "wrap_up")
        returned = "fallback" if queue is None else "agent" if free else "queue"
        self.host.emit(Event(Kind.ACD_TRANSFER_FAILED, ts=self.host.clock.now(), call_id=call_id, agent_id=back,
                        data={"target": target, "target_kind": "agent", "reason": reason, "dial_status": status,
                              "returned_to": returned, "queue": queue}))
        log.info("call %s: transfer to agent %s failed (%s); back to %s", call_id, target, status,
                 back if returned == "agent" else queue or "the fallback queue")
        if queue is None:
            return Served("fallback")  # no queue known: the dialplan's plain Queue() takes the caller
        return await self.serve(chan, call_id, queue, tier, caller, None, kind="return", prefer_agent=back)

    def _caller_gone(self, call_id: str) -> None:
        state = self.host.engine.call_state(call_id)
        try:
            if state == TALKING:
                self.host._end_talk(call_id)
            elif state in ("waiting", OFFERED):
                self.host.apply(lambda now: self.host.engine.abandon(call_id, now))
        except AcdError:
            log.exception("ACD could not close call %s", call_id)

    async def _finish(self, chan: AgiChannel, result: str, music: bool) -> None:
        with contextlib.suppress(AgiHangup, AgiError, TimeoutError):
            if music:  # whoever plays to the caller next (voicemail, a message) starts in silence
                await chan.execute("EXEC StopMusicOnHold")
            # no place to resume any more; how it ended; the dialplan's part is done
            await set_variables(chan, {QUEUED_VAR: "", "CTI_ACD_RESULT": result, "CTI_DONE": "1"})

    async def _hold(self, chan: AgiChannel, call_id: str, box: asyncio.Queue[Command],
                    info: dict[str, Any]) -> str:
        """Keep the caller waiting until the engine decides (see `_holding`). With a callback key read
        from AMI (`key_source: ami`), their channel is noted so `key_pressed` can reach them."""
        cfg = self.host.cfg
        keyed = cfg.callback_key is not None and cfg.key_source == "ami"
        if keyed:
            self._keyed[call_id] = chan.headers.get("agi_channel", "")
        try:
            return await self._holding(chan, call_id, box, info)
        finally:
            if keyed:
                self._keyed.pop(call_id, None)

    async def _holding(self, chan: AgiChannel, call_id: str, box: asyncio.Queue[Command],
                       info: dict[str, Any]) -> str:
        cfg = self.host.cfg
        next_announce = self.host.clock.now() + cfg.announce.first_after_s
        while True:
            # whatever the engine already decided for this caller comes first
            while not box.empty():
                result = await self._handle(chan, call_id, box.get_nowait(), info)
                if result is not None:
                    return result
                next_announce = max(next_announce, self.host.clock.now() + 5.0)
            if self.host.engine.call_state(call_id) is None:
                return "abandoned"  # closed elsewhere
            await self._music(chan, call_id, True)
            now = self.host.clock.now()
            if now >= next_announce and self.host.say is not None and self.host.engine.call_state(call_id) == "waiting":
                await self._music(chan, call_id, False)
                ann = self.host._announcing[call_id] = Announcement(chan)
                ann.stopped = self.host.engine.call_state(call_id) != "waiting"  # offered while the music stopped
                try:
                    await self.host.say(ann, self._announcement(call_id, now, info["lang"]), info["lang"])
                finally:
                    del self.host._announcing[call_id]
                next_announce = self.host.clock.now() + cfg.announce.every_s
                continue
            if cfg.callback_key is not None and cfg.key_source == "poll":
                reply = await chan.execute(f"WAIT FOR DIGIT {cfg.key_poll_ms}")
                if reply.result_int < 0:
                    raise AgiHangup("the caller hung up")
                if reply.result_int > 0 and chr(reply.result_int) == cfg.callback_key:
                    result = await self._callback_key(chan, call_id, info)
                    if result is not None:
                        return result
                continue
            wait = max(0.01, min(cfg.probe_every_s, next_announce - now))
            cmd = await _next_command(chan, box, wait)
            if cmd is None:
                reply = await chan.execute("CHANNEL STATUS")  # hangup probe
                if reply.result_int < 0:
                    raise AgiHangup("the caller hung up") from None
                continue
            result = await self._handle(chan, call_id, cmd, info)
            if result is not None:
                return result

    async def _callback_key(self, chan: AgiChannel, call_id: str, info: dict[str, Any]) -> str | None:
        """The caller pressed the callback key: still waiting, they keep their place and are called back."""
        if self.host.engine.call_state(call_id) != "waiting":
            return None  # an agent is being offered meanwhile: they wait on
        cfg = self.host.cfg
        self.host.apply(lambda now: self.host.engine.request_callback(call_id, now))
        confirm = cfg.text(cfg.announce.callback_confirm, info["lang"])
        if self.host.say is not None and confirm:
            await self._music(chan, call_id, False)
            await self.host.say(chan, confirm, info["lang"])
        return "callback"

    async def _music(self, chan: AgiChannel, call_id: str, on: bool) -> None:
        """Music on hold on/off for this caller, sending a command only when it changes."""
        if on != (call_id in self.host._moh):
            await chan.execute("EXEC StartMusicOnHold default" if on else "EXEC StopMusicOnHold")
            if on:
                self.host._moh.add(call_id)
            else:
                self.host._moh.discard(call_id)

    async def _handle(self, chan: AgiChannel, call_id: str, cmd: Command, info: dict[str, Any]) -> str | None:
        """One engine decision for this caller; a result ends the wait."""
        if cmd is RELEASE:
            raise Released(call_id)
        if isinstance(cmd, KeyPressed):
            return await self._callback_key(chan, call_id, info)
        if isinstance(cmd, Overflow):
            info["destination"] = cmd.destination
            return _dest_result("overflow", cmd.destination.kind, cmd.destination.target)
        if isinstance(cmd, Blocked):
            info["destination"] = cmd.destination
            return _dest_result(f"blocked:{cmd.reason}", cmd.destination.kind, cmd.destination.target)
        if isinstance(cmd, Offer):
            await self._music(chan, call_id, False)
            if await self._ring(chan, call_id, cmd, info):
                return "answered"
        return None

    async def _deliver(self, chan: AgiChannel, call_id: str, skill: str, caller: str, dest: Destination,
                       tier: str = "", lang: str = "") -> None:
        """Where the ACD sent a caller instead of an agent: a message, a voicemail, or word that we will
        call back (a `queue` destination was handled by the engine). The caller may hang up meanwhile."""
        cfg = self.host.cfg
        await self._music(chan, call_id, False)
        if dest.kind == "voicemail" and self.host.recordings_dir:
            await self._voicemail(chan, call_id, skill, dest.target, caller, tier, lang)
            return
        if dest.kind == "callback" and caller:
            text = cfg.text(cfg.announce.callback_confirm, lang)
        elif dest.kind == "message":
            text = cfg.text(cfg.messages.get(dest.target, cfg.messages["busy"]), lang)
        else:  # a voicemail with nowhere to record, or a callback to an unknown number
            text = cfg.text(cfg.messages["busy"], lang)
        if self.host.say is not None and text:
            await self.host.say(chan, text, cfg.language(lang))

    async def _voicemail(self, chan: AgiChannel, call_id: str, skill: str, box: str, caller: str = "",
                         tier: str = "", lang: str = "") -> None:
        vm = self.host.cfg.voicemail
        lang = self.host.cfg.language(lang)
        assert self.host.recordings_dir is not None
        name = re.sub(r"[^A-Za-z0-9._-]", "_", f"vm-{box}-{call_id}")[:120]
        path = f"{self.host.recordings_dir.rstrip('/')}/{name}"
        if self.host.say is not None:
            await self.host.say(chan, self.host.cfg.text(vm.prompt, lang), lang)
        started = self.host.clock.now()
        try:
            # a long command: its own time limit (the AGI default is shorter than a message may be)
            await _execute(chan, f'RECORD FILE {path} wav "#" {vm.max_s * 1000} 0 BEEP s={vm.silence_s}',
                           vm.max_s + 15.0)
        finally:  # a caller who hangs up at the end of their message has still left it
            now = self.host.clock.now()
            self.host.emit(Event(Kind.ACD_VOICEMAIL, ts=now, call_id=call_id, queue=skill,
                            data={"box": box, "path": f"{path}.wav", "duration_s": round(now - started, 1)}))
            if caller and now - started >= 1.0:
                # an agent of the queue answers the message: they hear it, then the caller is dialled
                cfg = self.host.cfg
                self.host._hook("on_callback", ScheduleCallback(call_id, caller, skill, tier or cfg.default_tier,
                                                                now + cfg.callback_due_s, "voicemail",
                                                                recording=path))
        thanks = self.host.cfg.text(vm.thanks, lang)
        if self.host.say is not None and thanks:
            await self.host.say(chan, thanks, lang)

    def _announcement(self, call_id: str, now: float, lang: str) -> str:
        ann = self.host.cfg.announce
        pos = self.host.engine.position(call_id, now)
        fields = {"position": pos.position, "ahead": pos.position - 1, "waiting": pos.waiting,
                  "wait_s": int(pos.est_wait_s or 0),
                  "wait_min": max(1, math.ceil((pos.est_wait_s or 0) / 60))}
        text = self.host.cfg.text(ann.text if pos.est_wait_s is not None else ann.text_unknown, lang).format(**fields)
        hint = self.host.cfg.text(ann.callback_hint, lang)
        if self.host.cfg.callback_key is not None and hint:
            text += (" " if text[-1:].isascii() else "") + hint  # no space between Chinese sentences
        return text

    async def _ring(self, chan: AgiChannel, call_id: str, offer: Offer, info: dict[str, Any]) -> bool:
        """Dial the offered agent; True when they talked, False on RONA (the caller keeps waiting)."""
        if self.host.engine.call_state(call_id) != OFFERED or self.host.engine.call_agent(call_id) != offer.agent_id:
            return False  # a stale offer (the engine moved on while we were busy)
        self._rings += 1
        await self.host.claims.this_term("ring", f"{call_id}/{offer.agent_id}/{self._rings}")
        if self.host.engine.call_state(call_id) != OFFERED or self.host.engine.call_agent(call_id) != offer.agent_id:
            return False  # the engine moved on while the claim was written
        self.host._hook("on_offer", call_id, offer.agent_id, {**info, "ring_timeout_s": offer.ring_timeout_s})
        self.host.apply(lambda now: self.host.engine.ring_started(call_id, now))
        args = self.host.cfg.dial_args(offer.agent_id, offer.ring_timeout_s, str(info.get("server") or ""))
        started = self.host.clock.now()
        try:
            await _execute(chan, f"EXEC Dial {args}", self.host.cfg.dial_max_s)
            status = (await chan.execute("GET VARIABLE DIALSTATUS")).data.strip().upper()
            answered_for = None
            if status == "ANSWER" and self.host.engine.call_state(call_id) == OFFERED:
                answered_for = _float((await chan.execute("GET VARIABLE ANSWEREDTIME")).data)
        except AgiHangup:
            # the caller left during the ring or the talk; the AMI feed may have told us which
            if self.host.engine.call_state(call_id) == OFFERED and \
                    self.host.clock.now() - started > offer.ring_timeout_s + 2.0:
                # Dial gives up after the ring timeout, so a longer Dial was answered
                self.host.note_answered(call_id, started + offer.ring_timeout_s)
            raise
        if status == "ANSWER":
            if self.host.engine.call_state(call_id) == OFFERED:
                now = self.host.clock.now()
                at = now - answered_for if answered_for is not None else now
                self.host.note_answered(call_id, max(started, at))
            if self.host.engine.call_state(call_id) == TALKING:
                self.host._end_talk(call_id)
            return True
        reason = _RONA_STATUSES.get(status)
        if status == "CANCEL":
            raise AgiHangup("the caller hung up while the agent was ringing")
        if self.host.engine.call_state(call_id) == OFFERED:
            self.host.apply(lambda now: self.host.engine.ring_failed(call_id, now, reason or "noanswer"))
        return False


class Announcement:
    """The caller's channel while an announcement is said to them (what `say` gets). Once an agent is
    offered (`stopped`) nothing more is played; `playing` says a command (the prompt) is under way,
    which `AcdRuntime.interrupt` can stop from outside."""

    def __init__(self, chan: AgiChannel) -> None:
        self.chan = chan
        self.stopped = False
        self.playing = False

    @property
    def headers(self) -> dict[str, str]:
        return self.chan.headers

    @property
    def path(self) -> str:
        return self.chan.path

    async def execute(self, command: str) -> AgiReply:
        if self.stopped:
            return AgiReply(200, "0", "skipped: an agent was offered")
        self.playing = True
        try:
            return await self.chan.execute(command)
        finally:
            self.playing = False


async def _next_command(chan: AgiChannel, box: asyncio.Queue[Command], wait_s: float) -> Command | None:
    """The caller's next mailbox item within `wait_s`, else None; AgiHangup as soon as the session says
    the caller hung up (a FastAGI session hears Asterisk's HANGUP between commands: no probe needed)."""
    hung_up = getattr(chan, "wait_hangup", None)
    if hung_up is None:
        try:
            return await asyncio.wait_for(box.get(), wait_s)
        except TimeoutError:
            return None
    getter = asyncio.ensure_future(box.get())
    hangup = asyncio.ensure_future(hung_up())
    try:
        await asyncio.wait((getter, hangup), timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for fut in (getter, hangup):
            if not fut.done():
                fut.cancel()
    if getter.done() and not getter.cancelled():
        return getter.result()  # (a command that came with the hangup is still handled: it may end the wait)
    if hangup.done() and not hangup.cancelled():
        raise AgiHangup(hangup.result())
    return None


async def _execute(chan: AgiChannel, command: str, limit_s: float) -> AgiReply:
    """Run a long command (Dial) with its own time limit when the channel supports one."""
    execute = chan.execute
    if "timeout" in inspect.signature(execute).parameters:
        timed: _TimedExecute = execute  # type: ignore[assignment]
        return await timed(command, timeout=limit_s)
    return await execute(command)


def caller_name(chan: AgiChannel) -> str:
    """The CallerID name Asterisk gave the channel (`agi_calleridname`), '' when it has none."""
    name = "".join(ch for ch in chan.headers.get("agi_calleridname", "") if ch.isprintable()).strip()[:100]
    return "" if name.lower() in ("unknown", "<unknown>", "anonymous", "restricted") else name


def _float(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value >= 0 and math.isfinite(value) else None


def _dest_result(prefix: str, kind: str, target: str) -> str:
    return f"{prefix}:{kind}:{target}" if target else f"{prefix}:{kind}"
