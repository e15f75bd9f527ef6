"""WebSocket push hub: numbered streams with replay, per-client bounded queues.

Streams are `agent:<agent_no>` (that agent's pops, own state, call end) and
`supervisor` (every agent's state, wallboard snapshots, escalations, staffing
warnings). Each stream numbers its messages (`seq`) and keeps the last N in a ring.

A page connects, sends `{"type": "hello", "epoch": E, "last": {"agent:1001": 41}}`
and gets: the messages it missed (seq > 41, in order), then a `snapshot` of the
current state, then live messages. `epoch` names this hub's lifetime: after a
server restart the page's numbers mean nothing, so it is sent the whole ring.

Each client has its own queue and writer task; publishing never awaits. A client
whose queue passes its bound is disconnected (close code 4008) instead of stalling
the others or growing without limit; its page reconnects and resumes from its
last seq, so a slow browser loses nothing either.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from ..clock import Clock
from .auth import User

log = logging.getLogger(__name__)

SUPERVISOR = "supervisor"
CLOSE_TOO_SLOW = 4008
CLOSE_BAD_HELLO = 4400
HELLO_TIMEOUT_S = 10.0


def agent_stream(agent_no: str) -> str:
    return f"agent:{agent_no}"


def streams_for(user: User) -> list[str]:
    """What a user may subscribe to: their own stream, plus the supervisor stream for supervisors."""
    return [agent_stream(user.agent_no), SUPERVISOR] if user.is_supervisor else [agent_stream(user.agent_no)]


@dataclass
class _Stream:
    ring: deque[dict[str, Any]]
    seq: int = 0


@dataclass(eq=False)
class _Client:
    user: User
    streams: frozenset[str]
    limit: int
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    kicked_event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def kicked(self) -> bool:
        return self.kicked_event.is_set()


class Hub:
    """Fan-out of desktop messages to connected pages. All publish_* methods are plain (never await)."""

    def __init__(self, *, clock: Clock, queue_size: int = 256, replay_size: int = 500) -> None:
        self.clock = clock
        self.queue_size = queue_size
        self.replay_size = replay_size
        self.epoch = secrets.token_hex(6)
        self._streams: dict[str, _Stream] = {}
        self._clients: set[_Client] = set()
        self._by_stream: dict[str, set[_Client]] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        self._active_pop: dict[str, dict[str, Any]] = {}
        self._wallboard: dict[str, Any] | None = None
        self.kicked_slow = 0  # clients disconnected for falling behind (a metric)

    # --- publishing -----------------------------------------------------------

    def publish(self, stream: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        """Number `data` on `stream`, keep it for replay, and queue it to every subscribed client."""
        s = self._streams.get(stream)
        if s is None:
            s = self._streams[stream] = _Stream(ring=deque(maxlen=self.replay_size))
        s.seq += 1
        msg = {"stream": stream, "seq": s.seq, "type": type_, "ts": self.clock.now(), "data": data}
        s.ring.append(msg)
        for client in list(self._by_stream.get(stream, ())):
            self._offer(client, msg)
        return msg

    def _offer(self, client: _Client, msg: dict[str, Any]) -> None:
        if client.kicked:
            return
        if client.queue.qsize() >= client.limit:
            client.kicked_event.set()
            self.kicked_slow += 1
            log.warning("websocket client %s fell %d messages behind; disconnecting it (it will resume)",
                        client.user.agent_no, client.limit)
            return
        client.queue.put_nowait(msg)

    def publish_pop(self, agent_id: str, pop: dict[str, Any]) -> None:
        """Screen-pop for the agent a call is offered to / answered by (keys: see static/agent.js)."""
        self._active_pop[agent_id] = pop
        self.publish(agent_stream(agent_id), "pop", pop)

    def publish_state(self, agent_id: str, state: dict[str, Any]) -> None:
        self.publish(agent_stream(agent_id), "state", state)
        self.publish(SUPERVISOR, "agent_state", {"agent_id": agent_id, **state})

    def publish_call_end(self, agent_id: str, call_id: str, data: dict[str, Any] | None = None) -> None:
        current = self._active_pop.get(agent_id)
        if current is not None and current.get("call_id") == call_id:
            del self._active_pop[agent_id]
        self.publish(agent_stream(agent_id), "call_end", {"call_id": call_id, **(data or {})})

    def publish_wallboard(self, snapshot: dict[str, Any]) -> None:
        self._wallboard = snapshot
        self.publish(SUPERVISOR, "wallboard", snapshot)

    def publish_supervisors(self, type_: str, data: dict[str, Any]) -> None:
        self.publish(SUPERVISOR, type_, data)

    def active_pop(self, agent_id: str) -> dict[str, Any] | None:
        return self._active_pop.get(agent_id)

    @property
    def latest_wallboard(self) -> dict[str, Any] | None:
        return self._wallboard

    def has_subscribers(self, stream: str) -> bool:
        return bool(self._by_stream.get(stream))

    @property
    def client_count(self) -> int:
        return len(self._clients)

    # --- subscribing ----------------------------------------------------------

    def missed(self, stream: str, last_seq: int | None, epoch: str | None) -> list[dict[str, Any]]:
        """Messages after `last_seq` still in the ring (all of it if the epoch changed; none for a new page)."""
        s = self._streams.get(stream)
        if s is None:
            return []
        if epoch != self.epoch:
            return list(s.ring) if epoch else []
        if last_seq is None:
            return []
        return [m for m in s.ring if m["seq"] > last_seq]

    def attach(self, user: User, last: dict[str, int], epoch: str | None,
               snapshot: dict[str, Any]) -> _Client:
        """Register a client: queue its missed messages, then the snapshot, then it receives live ones.

        Synchronous, so nothing can be published between the replay and the registration.
        """
        streams = streams_for(user)
        client = _Client(user=user, streams=frozenset(streams), limit=0)
        replay: list[dict[str, Any]] = []
        for stream in streams:
            replay.extend(self.missed(stream, last.get(stream), epoch))
        for msg in replay:
            client.queue.put_nowait(msg)
        seqs = {st: (self._streams[st].seq if st in self._streams else 0) for st in streams}
        client.queue.put_nowait({"type": "snapshot", "epoch": self.epoch, "seqs": seqs, "data": snapshot})
        client.limit = len(replay) + 1 + self.queue_size
        self._clients.add(client)
        for stream in streams:
            self._by_stream.setdefault(stream, set()).add(client)
        return client

    def detach(self, client: _Client) -> None:
        self._clients.discard(client)
        for stream in client.streams:
            subscribers = self._by_stream.get(stream)
            if subscribers is not None:
                subscribers.discard(client)
                if not subscribers:
                    del self._by_stream[stream]

    async def serve(self, request: web.Request, user: User,
                    snapshot: Callable[[User], dict[str, Any]]) -> web.WebSocketResponse:
        """Run one page's socket: hello, replay + snapshot, then live messages until either side closes."""
        ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=16 * 1024)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            hello = await self._read_hello(ws)
            if hello is None:
                await ws.close(code=CLOSE_BAD_HELLO, message=b"expected hello")
                return ws
            last, epoch = hello
            await ws.send_json({"type": "hello", "epoch": self.epoch, "user": user.public(),
                                "streams": streams_for(user)})
            client = self.attach(user, last, epoch, snapshot(user))
            try:
                tasks = {asyncio.create_task(self._write(ws, client)),
                         asyncio.create_task(self._drain_incoming(ws)),
                         asyncio.create_task(client.kicked_event.wait())}
                try:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                if client.kicked:
                    # the writer may have been stuck in a send to this slow peer: it is cancelled now
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(ws.close(code=CLOSE_TOO_SLOW,
                                                        message=b"too slow; reconnect and resume"), 5.0)
            finally:
                self.detach(client)
        finally:
            self._sockets.discard(ws)
        return ws

    @staticmethod
    async def _drain_incoming(ws: web.WebSocketResponse) -> None:
        """Pages send nothing after hello; read only to notice the close (and answer pings)."""
        async for msg in ws:
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                return

    async def _read_hello(self, ws: web.WebSocketResponse) -> tuple[dict[str, int], str | None] | None:
        try:
            msg = await ws.receive(timeout=HELLO_TIMEOUT_S)
        except TimeoutError:
            return None
        if msg.type != WSMsgType.TEXT:
            return None
        try:
            body = json.loads(msg.data)
        except ValueError:
            return None
        if not isinstance(body, dict) or body.get("type") != "hello":
            return None
        epoch = body.get("epoch")
        raw_last = body.get("last") or {}
        if not isinstance(raw_last, dict) or (epoch is not None and not isinstance(epoch, str)):
            return None
        last = {k: v for k, v in raw_last.items()
                if isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0}
        return last, epoch

    @staticmethod
    async def _write(ws: web.WebSocketResponse, client: _Client) -> None:
        while True:
            # default=str: a Decimal or date in a customer record must not poison the stream
            await ws.send_str(json.dumps(await client.queue.get(), default=str, ensure_ascii=False))

    async def close(self) -> None:
        """Close every socket (server shutdown)."""
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"server shutdown")
