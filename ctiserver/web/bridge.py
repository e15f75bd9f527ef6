"""From the event log to the desktop: screen-pops, agent states and call ends, pushed through the Hub.

The lead adds `bridge.on_event` to the server's event listeners. It reads only the
`Event` catalogue (ctiserver/events.py), so it needs nothing from the ACD or IVR code:

    call.new / acd.enqueue  remember the caller's number and CallerID name (and account, if the IVR
                            identified one) and the tier the ACD routes the call on
    call.callerid           the caller set after call.new (an originated call's CallerID)
    acd.retier              a supervisor moved the caller to another tier
    ivr.node                remember the IVR path the caller took (ids in `ivr_path`; with the nodes'
                            kinds and display names in `ivr_steps`, what the page shows)
    acd.offer               look the customer up, pop it to the offered agent ("offer"; a callback
                            carries the number to call and pops with `callback: true`). The pop's
                            `tier` is the routing tier; the record's own tier is `customer.tier`.
    acd.answer              pop again as "answer" (the page marks the call live)
    acd.rona / acd.complete / acd.abandon with an agent   call_end for that agent
    agent.state             state to the agent's page and the supervisors
    acd.transfer_failed     tell the transferring agent why, and where the caller goes ("transfer_failed")
    call.end                forget the call

Events go through one queue and one task, so pops keep their order even though the
customer lookup awaits; a lookup slower than `lookup_timeout_s` pops without the
record rather than holding the call back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..events import Event, Kind
from ..lifecycle import TaskOwner
from ..lograte import LogBurst
from .ports import CustomerLookup
from .ws import Hub, agent_stream

log = logging.getLogger(__name__)

_WANTED = frozenset({Kind.CALL_NEW, Kind.CALL_CALLERID, Kind.ACD_RETIER, Kind.ACD_ENQUEUE, Kind.IVR_NODE,
                     Kind.ACD_OFFER, Kind.ACD_ANSWER, Kind.ACD_RONA, Kind.ACD_COMPLETE, Kind.ACD_ABANDON,
                     Kind.AGENT_STATE, Kind.CALL_END, Kind.ACD_TRANSFER_FAILED})
MAX_IVR_PATH = 30


@dataclass
class _Call:
    number: str | None = None
    name: str | None = None  # the CallerID name
    account: str | None = None
    tier: str | None = None  # the tier the ACD routes on
    lang: str | None = None  # the caller's language (the IVR's choice)
    ivr_path: list[str] = field(default_factory=list)
    ivr_steps: list[dict[str, Any]] = field(default_factory=list)  # {id, kind, name}: the path as people see it
    pop: dict[str, Any] | None = None


class DesktopBridge:
    def __init__(self, hub: Hub, customers: CustomerLookup, *, max_calls: int = 5000, max_backlog: int = 10_000,
                 lookup_timeout_s: float = 2.0) -> None:
        self.hub = hub
        self.customers = customers
        self.max_calls = max_calls
        self.lookup_timeout_s = lookup_timeout_s
        self._calls: OrderedDict[str, _Call] = OrderedDict()
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=max_backlog)
        self._tasks = TaskOwner("desktop bridge")
        self.dropped = 0
        # a reconnect that closes 50k stale calls overflows the backlog at once: one line and a count
        self._dropped_log = LogBurst(log, "desktop bridge backlog full; events not pushed")
        self._slow_lookup_log = LogBurst(log, f"customer lookup took over {lookup_timeout_s:.1f} s; "
                                              "popped without the record")

    def on_event(self, event: Event) -> None:
        """Server event listener: plain and non-blocking (the event path must never wait on us)."""
        if event.kind not in _WANTED:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            self._dropped_log.add(f"{event.kind} for call {event.call_id}")

    async def start(self) -> None:
        self._tasks.spawn(self._run(), name="desktop-bridge")

    async def close(self) -> None:
        await self._tasks.aclose()
        self._dropped_log.flush()
        self._slow_lookup_log.flush()

    async def drain(self) -> None:
        """Wait until every queued event is handled (tests, orderly shutdown)."""
        await self._queue.join()

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self.handle(event)
            except Exception:
                log.exception("desktop bridge failed on %s", event.kind)
            finally:
                self._queue.task_done()

    def _call(self, call_id: str) -> _Call:
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _Call()
            while len(self._calls) > self.max_calls:
                self._calls.popitem(last=False)
        return call

    async def _lookup(self, call: _Call) -> dict[str, Any] | None:
        try:
            async with asyncio.timeout(self.lookup_timeout_s):
                if call.account:
                    found = await self.customers.by_account(call.account)
                    if found is not None:
                        return found
                return await self.customers.by_phone(call.number) if call.number else None
        except TimeoutError:
            self._slow_lookup_log.add()
            return None

    async def handle(self, ev: Event) -> None:
        kind, data = ev.kind, ev.data
        if kind == Kind.AGENT_STATE:
            if ev.agent_id:
                self.hub.publish_state(ev.agent_id, {"agent_id": ev.agent_id, "state": data.get("state"),
                                                     "reason": data.get("reason")})
            return
        if ev.call_id is None:
            return
        if kind == Kind.CALL_END:
            self._calls.pop(ev.call_id, None)
            return
        if kind == Kind.ACD_TRANSFER_FAILED:
            if ev.agent_id:
                self.hub.publish(agent_stream(ev.agent_id), "transfer_failed", {
                    "call_id": ev.call_id, "target": data.get("target"), "reason": data.get("reason"),
                    "returned_to": data.get("returned_to"), "queue": data.get("queue")})
            return
        call = self._call(ev.call_id)
        if kind == Kind.CALL_NEW:
            call.number = call.number or data.get("caller_num") or None
            call.name = call.name or data.get("caller_name") or None
        elif kind == Kind.CALL_CALLERID:
            call.number = data.get("caller_num") or call.number
            call.name = data.get("caller_name") or call.name
        elif kind == Kind.ACD_ENQUEUE:
            call.number = data.get("caller") or call.number
            call.name = data.get("caller_name") or call.name
            call.account = data.get("customer") or call.account
            call.tier = ev.tier or call.tier
            call.lang = data.get("lang") or call.lang
        elif kind == Kind.ACD_RETIER:
            call.tier = ev.tier or call.tier
        elif kind == Kind.IVR_NODE:
            if len(call.ivr_path) < MAX_IVR_PATH and data.get("node"):
                call.ivr_path.append(str(data["node"]))
                title = data.get("title")
                call.ivr_steps.append({"id": str(data["node"]), "kind": data.get("node_kind"),
                                       "name": title if isinstance(title, dict) else None})
        elif kind == Kind.ACD_OFFER and ev.agent_id:
            if data.get("number"):  # a callback: the agent will call this number
                call.number = str(data["number"])
            call.tier = ev.tier or call.tier
            call.pop = {"call_id": ev.call_id, "phase": "offer", "number": call.number,
                        "caller_name": call.name, "queue": ev.queue, "tier": call.tier, "lang": call.lang,
                        "ivr_path": list(call.ivr_path), "ivr_steps": list(call.ivr_steps),
                        "wait_s": data.get("wait_s"),
                        "customer": await self._lookup(call)}
            if data.get("kind") == "callback":
                call.pop["callback"] = True
            self.hub.publish_pop(ev.agent_id, call.pop)
        elif kind == Kind.ACD_ANSWER and ev.agent_id:
            if call.pop is not None:
                call.pop = {**call.pop, "phase": "answer", "wait_s": data.get("wait_s", call.pop["wait_s"])}
                self.hub.publish_pop(ev.agent_id, call.pop)
        elif kind in (Kind.ACD_RONA, Kind.ACD_COMPLETE, Kind.ACD_ABANDON) and ev.agent_id:
            call.pop = None
            self.hub.publish_call_end(ev.agent_id, ev.call_id, {"reason": kind})
