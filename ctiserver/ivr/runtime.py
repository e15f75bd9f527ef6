"""The FastAGI side of the IVR: carries the walker's actions to Asterisk and the results back.

One coroutine per call (`IvrRuntime.handle`, the handler the FastAGI listener runs
for `agi://host:4573/ivr`). It owns no menu logic: that is the pure walker. Here:

* call id = the channel's Linkedid (an AGI argument, else `GET VARIABLE CHANNEL(linkedid)`), else agi_uniqueid;
* prompts: `Say` -> TTS cache (`cti/<hash>`) -> `STREAM FILE cti/<hash> "0123456789*#"`;
  a key pressed during a prompt stops it (barge-in), skips the prompts queued behind it,
  and becomes the first key of the next `Collect`;
* `Collect` -> `WAIT FOR DIGIT` per key until max digits, the terminator or the timeout;
* `Lookup` -> the data provider, bounded by `lookup_timeout_s` (a slow CRM becomes on_error);
* `Record` -> `RECORD FILE`; `Queue` -> `handoff(chan, QueueRequest)` (the ACD) and,
  when the agent hangs up first, on to the post-call node (satisfaction rating);
* every walker `LogEvent` goes to `emit` (the event store).

A caller hanging up ends the walk with ivr.end(hangup) and `handle` returns. Any other failure logs
ivr.end(error) and re-raises, so the listener sets CTI_AGI_FAILED=1 and the dialplan
sends the caller to its fallback queue instead of dropping them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..agi.channel import AgiChannel, AgiError, AgiHangup, AgiReply, linked_id
from ..clock import Clock, SystemClock
from ..customers.data import DataProvider
from ..events import Event, Kind
from .reload import TreeRegistry
from .settings import IvrSettings
from .tree import LoadedTree
from .tts import TtsError
from .walker import (
    Action,
    Collect,
    Digits,
    Hangup,
    HungUp,
    Input,
    IvrWalker,
    LogEvent,
    Lookup,
    LookupResult,
    PlayFile,
    Queue,
    Queued,
    Record,
    Recorded,
    Say,
    Timeout,
)

log = logging.getLogger(__name__)

ESCAPE_DIGITS = "0123456789*#"


@dataclass(frozen=True, slots=True)
class QueueRequest:
    """What the ACD needs to place an IVR caller in a queue."""

    call_id: str
    skill: str
    tier: str
    caller: str
    customer: dict[str, Any] | None
    ivr_path: tuple[str, ...]
    lang: str = ""  # the caller's language (the tree's `lang`): the ACD speaks it and may route on it


Handoff = Callable[[AgiChannel, QueueRequest], Awaitable[str]]
"""Queue the caller; return the id of the agent who served the call, or '' if none did."""

Emit = Callable[[Event], Any]  # may return an awaitable


class _Serving(Protocol):
    async def serve(self, chan: AgiChannel, call_id: str, skill: str, tier: str | None, caller: str,
                    customer: dict[str, Any] | None = None, *, lang: str = "",
                    route_by_language: bool = False) -> Any: ...


def handoff_to(acd: _Serving) -> Handoff:
    """A Handoff over the ACD runtime's `serve(...)` (returns `Served`, with `.agent_id`). An empty tier
    goes as None: the ACD classifies the customer record with its tier rules. The caller's language
    goes along: the ACD speaks it and sends the caller to that language's desk if it has one."""

    async def handoff(chan: AgiChannel, req: QueueRequest) -> str:
        served = await acd.serve(chan, req.call_id, req.skill, req.tier or None, req.caller, req.customer,
                                 lang=req.lang, route_by_language=True)
        return str(getattr(served, "agent_id", None) or "")

    return handoff


class Voice(Protocol):
    """What the runtime needs from TTS (tts.Tts): a playable sound name for a text."""

    async def sound(self, text: str, lang: str) -> str: ...


class IvrRuntime:
    def __init__(self, trees: TreeRegistry | Mapping[str, LoadedTree], data: DataProvider, tts: Voice, emit: Emit,
                 handoff: Handoff, settings: IvrSettings | None = None, clock: Clock | None = None) -> None:
        self.trees = trees
        self.data = data
        self.tts = tts
        self.emit = emit
        self.handoff = handoff
        self.settings = settings or IvrSettings()
        self.clock = clock or SystemClock()
        self.active = 0
        self.calls = 0
        self.timings: list[float] = []  # key press -> next prompt start, all calls (bounded)

    def tree_for(self, chan: AgiChannel) -> LoadedTree:
        """`agi://host/ivr/<tree>` or `?tree=<tree>` picks a tree; else the default one."""
        query = getattr(chan, "query", None) or {}
        parts = [p for p in chan.path.split("/") if p]
        name = query.get("tree") or (parts[1] if len(parts) > 1 else self.settings.default_tree)
        if isinstance(self.trees, TreeRegistry):
            return self.trees.get(name)
        return self.trees[name]

    async def handle(self, chan: AgiChannel) -> None:
        self.active += 1
        self.calls += 1
        try:
            await _Call(self, chan).run()
        except AgiHangup as exc:  # the normal end of many IVR calls; ivr.end(hangup) is logged
            log.debug("IVR call on %s ended by hangup: %s", chan.path, exc)
        finally:
            self.active -= 1

    async def _emit(self, event: Event) -> None:
        try:
            result = self.emit(event)
            if inspect.isawaitable(result):
                await result
        except Exception:  # the store has its own spill journal; a logging hiccup never drops a caller
            log.exception("could not emit %s for call %s", event.kind, event.call_id)


class _Call:
    """One call's loop: walker actions out, AGI results in."""

    def __init__(self, rt: IvrRuntime, chan: AgiChannel) -> None:
        self.rt = rt
        self.chan = chan
        self.keys = ""  # pressed during prompts, not yet consumed (barge-in / type-ahead)
        self.key_at: float | None = None  # perf_counter of the last key that moved the walker
        # Callers often press the terminator after an entry that was already complete (10 digits then #):
        # that key must neither cut the next prompt short nor count as the next menu's input.
        self.stray_term = ""
        self.walker: IvrWalker | None = None

    async def run(self) -> None:
        headers = self.chan.headers
        caller = headers.get("agi_callerid", "").strip()
        if caller.lower() in ("unknown", "anonymous", "restricted", ""):
            caller = ""
        call_id = await self._call_id(headers)
        tree = self.rt.tree_for(self.chan)
        self.walker = IvrWalker(tree, {"call_id": call_id, "caller": caller,
                                       "channel": headers.get("agi_channel", "")}, self.rt.clock.now(),
                                 self.rt.settings.calendar)
        try:
            await self._cmd("ANSWER")
            actions = self.walker.start()
            while True:
                inp = await self._perform(actions)
                if inp is None:
                    return
                actions = self.walker.on_input(inp, self.rt.clock.now())
        except AgiHangup:
            await self._perform_logs(self.walker.on_input(HungUp(), self.rt.clock.now()))
            raise
        except asyncio.CancelledError:
            await self._end_error("cancelled (server shutdown)")
            raise
        except Exception as exc:
            await self._end_error(f"{type(exc).__name__}: {exc}")
            raise

    async def _end_error(self, why: str) -> None:
        w = self.walker
        if w is not None and w.outcome is None:
            w.outcome = "error"
            await self.rt._emit(Event(kind=Kind.IVR_END, ts=self.rt.clock.now(), call_id=w.data["call_id"] or None,
                                      data={"outcome": "error", "node": w.node, "error": why[:200]}))

    async def _call_id(self, headers: Mapping[str, str]) -> str:
        try:
            found = await linked_id(self.chan)
            if found:
                return found
        except AgiError:
            pass
        return headers.get("agi_uniqueid", "") or f"ivr-{self.rt.clock.now():.6f}"

    async def _cmd(self, command: str) -> AgiReply:
        return await self.chan.execute(command)

    async def _perform_logs(self, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, LogEvent):
                await self.rt._emit(a.event)

    async def _perform(self, actions: list[Action]) -> Input | None:
        """Carry out actions in order; return the input the last one produced (None: the walk is over)."""
        skip_prompts = bool(self.keys)  # keys typed ahead: the caller is not listening to prompts
        for action in actions:
            if isinstance(action, LogEvent):
                await self.rt._emit(action.event)
            elif isinstance(action, (Say, PlayFile)):
                if skip_prompts and action.barge_in:
                    continue
                pressed = await self._play(action)
                if pressed:
                    self.keys += pressed
                    skip_prompts = True  # barge-in: drop the rest of this prompt chain
            elif isinstance(action, Collect):
                return await self._collect(action)
            elif isinstance(action, Lookup):
                return await self._lookup(action)
            elif isinstance(action, Record):
                return await self._record(action)
            elif isinstance(action, Queue):
                return await self._queue(action)
            elif isinstance(action, Hangup):
                await self._cmd("HANGUP")
                return None
        return None

    async def _play(self, action: Say | PlayFile) -> str:
        if isinstance(action, Say):
            try:
                name = await self.rt.tts.sound(action.text, action.lang)
            except TtsError as exc:
                log.error("prompt not spoken (%s): %s", exc, action.text[:60])
                return ""
        else:
            name = action.name
        if self.key_at is not None:
            self.rt.timings.append(time.perf_counter() - self.key_at)
            if len(self.rt.timings) > 10000:
                del self.rt.timings[:5000]
            self.key_at = None
        escape = ESCAPE_DIGITS.replace(self.stray_term, "") if action.barge_in and self.stray_term else \
            ESCAPE_DIGITS if action.barge_in else ""
        reply = await self._cmd(f'STREAM FILE {name} "{escape}"')
        code = reply.result_int
        if code < 0:
            await self._cmd("CHANNEL STATUS")  # raises AgiHangup if the caller left; else the file was missing
            log.error("Asterisk could not play %s (missing sound file?)", name)
            return ""
        return chr(code) if code > 0 else ""

    async def _collect(self, action: Collect) -> Input:
        keys, self.keys = self.keys, ""
        stray, self.stray_term = self.stray_term, ""
        if stray and keys.startswith(stray):
            keys = keys[1:]
        term = action.terminator
        timed_out = False
        while len(keys) < action.max_digits and not (term and term in keys):
            reply = await self._cmd(f"WAIT FOR DIGIT {int(action.timeout_s * 1000)}")
            code = reply.result_int
            if code < 0:
                raise AgiHangup("WAIT FOR DIGIT failed (channel gone)")
            if code == 0:
                timed_out = True
                break
            if stray and not keys and chr(code) == stray:
                stray = ""
                continue
            stray = ""
            keys += chr(code)
        self.key_at = time.perf_counter()
        if term and term not in keys and len(keys) >= action.max_digits:
            self.stray_term = term
        if term and term in keys:
            keys = keys[:keys.index(term)]
            return Digits(keys)
        if timed_out and not keys:
            return Timeout()
        return Digits(keys)

    async def _lookup(self, action: Lookup) -> Input:
        try:
            async with asyncio.timeout(self.rt.settings.lookup_timeout_s):
                found = await self.rt.data.lookup(action.provider, action.args, self.rt.clock.now())
        except TimeoutError:
            return LookupResult(error=f"{action.provider} took longer than {self.rt.settings.lookup_timeout_s:g}s")
        except Exception as exc:
            log.warning("lookup %s failed: %s", action.provider, exc)
            return LookupResult(error=f"{action.provider}: {type(exc).__name__}: {exc}")
        return LookupResult(found)

    async def _record(self, action: Record) -> Input:
        folder = self.rt.settings.recordings_dir.rstrip("/")
        path = f"{folder}/{action.name}"
        beep = " BEEP" if action.beep else ""
        started = time.monotonic()
        await self._cmd(f'RECORD FILE {path} wav "{action.terminator}" {action.max_s * 1000} 0{beep} '
                        f"s={action.silence_s}")
        return Recorded(f"{path}.wav", time.monotonic() - started)

    async def _queue(self, action: Queue) -> Input:
        w = self.walker
        assert w is not None
        # "" lets the ACD's tier rules classify the customer record, unless the tree named a tier
        request = QueueRequest(call_id=str(w.data["call_id"]), skill=action.skill,
                               tier=action.tier if action.explicit else "",
                               caller=str(w.data["caller"]), customer=w.customer, ivr_path=tuple(w.path),
                               lang=str(w.data.get("lang") or ""))
        agent = await self.rt.handoff(self.chan, request)
        return Queued(agent or "")
