"""The AMI connection: login, one non-blocking reader, ordered events, actions, pings, reconnects.

Why not panoramisk's `Manager`: its defects sit in the core of it rather than at
the edges (design.md): per-chunk decoding loses split UTF-8, coroutine handlers
run unordered via `ensure_future`, a handler exception escapes `data_received`
and drops the link, Ping replies are never checked, reconnects use a fixed delay,
actions have no timeout and, worst, unanswered actions (Originate included) are
re-sent after a reconnect. Subclassing would mean overriding nearly every method,
so this is a small client of our own on asyncio streams, using our sans-IO
`AmiFramer` and `encode_action`.

Shape:
- one reader task per session: bytes -> framer -> route, one read at a time with a
  yield to the event loop after each (a junk burst cannot stall it; see framing.py).
  Routing is cheap and never waits: responses complete their action's future, list
  events are collected into that action's `AmiResponse`, every other event goes on
  ONE in-order inbox. (Asterisk drops a session whose writes block for 100 ms.)
- each frame is stamped with the time it was read (`AmiMessage.received`, from the
  injected clock): the fallback for an event without Asterisk's own `Timestamp`.
- one consumer task for the client's life: takes the inbox in order and calls
  `on_event` synchronously; an exception there is logged and the stream goes on.
  Connection changes travel through the same queue, so `on_disconnect` runs after
  every event of the lost session and `on_connect` after it.
- a Ping every `ping_interval_s`; no reply within `ping_timeout_s` drops the link, unless bytes kept
  arriving meanwhile (the reply is queued behind a burst we are still reading: the link is alive), up to
  `PING_PATIENCE` timeouts in a row.
- reconnects back off exponentially with jitter between `reconnect_min_s` and
  `reconnect_max_s`; the attempt count resets once a session has stayed up.
- pending actions fail with `AmiDisconnected` when the link drops and are never
  re-sent: an Originate must not ring a customer twice. Give Originate your own
  `ChannelId` and reconcile by it.
- after each login, `on_connect(ConnectInfo)` tells a restart of Asterisk from a
  network blip: a `Shutdown` event on the old link, the `CoreStatus` startup
  stamp, or the start time implied by `FullyBooted`'s Uptime (see _connect_info).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from ..clock import Clock, SystemClock
from ..config import AmiServer
from .actions import FieldValue, encode_action
from .errors import (
    AmiActionError,
    AmiDisconnected,
    AmiError,
    AmiLoginError,
    AmiTimeout,
)
from .framing import AmiFramer
from .message import AmiMessage
from .reconnect import BootMark, ConnectInfo, backoff_delay, detect_restart
from .replies import AmiResponse, Pending, ends_list

__all__ = ["AmiClient", "AmiResponse", "ConnectInfo"]  # the replies and login facts its users handle

log = logging.getLogger(__name__)

READ_CHUNK = 16 * 1024  # one read is framed at a time, then the loop runs others: bounds a burst's stall
PING_PATIENCE = 10  # a Ping may wait this many ping_timeout_s while bytes keep arriving (a burst ahead of it)
BOOT_WAIT_S = 0.5  # FullyBooted comes right after the login reply when Asterisk is up
BOOT_WAIT_LONG_S = 5.0  # ...or when boot completes: waited for only if CoreStatus cannot tell us
YIELD_EVERY = 32  # the consumer lets the reader run at least this often
QUEUE_WARN = 10_000


def _float(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


# --- internals -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Connected:
    info: ConnectInfo


@dataclass(frozen=True, slots=True)
class _Lost:
    reason: str


class AmiClient:
    """One Asterisk server's AMI link, kept up until `close()`."""

    def __init__(
        self,
        server: AmiServer,
        on_event: Callable[[AmiMessage], None],
        on_connect: Callable[[ConnectInfo], Awaitable[None]] | None = None,
        on_disconnect: Callable[[str], None] | None = None,
        *,
        rng: random.Random | None = None,
        boot_wait_s: float = BOOT_WAIT_LONG_S,
        clock: Clock | None = None,
    ) -> None:
        self.server = server
        self._on_event = on_event
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._rng = rng or random.Random()
        self._clock: Clock = clock or SystemClock()  # stamps each frame's receive time (epoch seconds)
        self._boot_wait_s = boot_wait_s  # longest wait for a late FullyBooted (see _connect_info)
        # ONE in-order inbox for the consumer (a deque and a wake-up: an asyncio.Queue's get() per event cost
        # more than the rest of the event's routing)
        self._inbox: deque[AmiMessage | _Connected | _Lost] = deque()
        self._inbox_ready = asyncio.Event()
        self._framer = AmiFramer()
        self._rx_bytes = 0  # read from Asterisk, ever (a Ping's wait goes on while this grows)
        self._pending: dict[str, Pending] = {}
        self._abandoned: OrderedDict[str, bool] = OrderedDict()  # timed-out ids -> listing seen
        self._ids = itertools.count(1)
        self._session_no = 0
        self._writer: asyncio.StreamWriter | None = None
        self._runner: asyncio.Task[None] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._connect_task: asyncio.Task[None] | None = None
        self._connected = False
        self._connected_evt = asyncio.Event()
        self._closing = False
        self._drop_reason: str | None = None
        self._boot_msg: AmiMessage | None = None
        self._boot_seen = asyncio.Event()
        self._boot: BootMark | None = None
        self._saw_shutdown = False  # the last session ended with Asterisk's Shutdown event
        # counters for status()
        self._since: float | None = None
        self._logins = 0
        self._connect_failures = 0
        self._last_error: str | None = None
        self._events_total = 0
        self._queue_warn_at = QUEUE_WARN

    # --- public API ---------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    async def start(self) -> None:
        """Start connecting in the background; returns at once (Asterisk may be down)."""
        if self._runner is not None:
            return
        self._closing = False
        self._consumer = asyncio.create_task(self._consume(), name=f"ami-consume-{self.server.name}")
        self._runner = asyncio.create_task(self._run(), name=f"ami-run-{self.server.name}")

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until logged in (raises TimeoutError after `timeout`)."""
        async with asyncio.timeout(timeout):
            await self._connected_evt.wait()

    async def close(self) -> None:
        """Log off, stop every task, and deliver the events already received."""
        if self._closing:
            return
        self._closing = True
        if self._connected:
            with contextlib.suppress(AmiError, OSError):
                await self._request("Logoff", {}, timeout=1.0)
        self._drop("client closed")
        for task in (self._connect_task, self._runner):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._runner = None
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
            self._consumer = None
        while self._inbox:  # what was read before the close still gets delivered
            self._deliver(self._inbox.popleft(), spawn=False)

    async def action(self, name: str, fields: Mapping[str, FieldValue] | None = None,
                     timeout: float | None = None) -> AmiResponse:
        """Send one action and wait for its response (and list events). Never re-sent.

        Raises AmiDisconnected (not logged in, or the link dropped before the reply),
        AmiTimeout (no reply within `timeout`, default `action_timeout_s`), or
        AmiActionError (a CR/LF/NUL or a caller-chosen ActionID in `fields`).
        A `Response: Error` is returned, not raised: see `AmiResponse.raise_for_error`.
        """
        if not self._connected:
            raise AmiDisconnected(f"AMI {self.server.name} is not connected")
        return await self._request(name, fields or {}, timeout)

    def status(self) -> dict[str, object]:
        return {
            "server": self.server.name,
            "connected": self._connected,
            "since": self._since,
            "reconnects": max(0, self._logins - 1),
            "connect_failures": self._connect_failures,
            "last_error": self._last_error,
            "events_total": self._events_total,
            "queue_depth": len(self._inbox),
            "pending_actions": len(self._pending),
            "ami_version": self._framer.version,
            "frames_dropped": self._framer.dropped,
        }

    # --- the connection loop ----------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        while not self._closing:
            began = loop.time()
            logged_in = False
            try:
                logged_in = await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._connect_failures += 1
                error = _describe(exc)
                # an Asterisk down for hours must not flood the log: say each new error once
                level = logging.WARNING if error != self._last_error else logging.DEBUG
                self._last_error = error
                log.log(level, "AMI %s (%s:%s): %s", self.server.name, self.server.host, self.server.port,
                        error)
            if self._closing:
                return
            if logged_in and loop.time() - began >= self.server.reconnect_max_s:
                attempt = 0  # a session that held: a blip, reconnect quickly
            delay = backoff_delay(attempt, self.server.reconnect_min_s, self.server.reconnect_max_s,
                                  self._rng.random())
            attempt += 1
            log.debug("AMI %s: reconnecting in %.2fs (attempt %d)", self.server.name, delay, attempt)
            await asyncio.sleep(delay)

    async def _session(self) -> bool:
        """One connection from open to drop; True if it got as far as a login."""
        srv = self.server
        secret = srv.resolved_secret()  # ValueError (env var unset) counts as a failed attempt
        async with asyncio.timeout(srv.action_timeout_s):
            reader, writer = await asyncio.open_connection(srv.host, srv.port)
        self._session_no += 1
        self._writer = writer
        self._framer.reset()
        self._drop_reason = None
        self._boot_msg = None
        self._boot_seen.clear()
        reader_task = asyncio.create_task(self._read_loop(reader), name=f"ami-read-{srv.name}")
        ping_task: asyncio.Task[None] | None = None
        logged_in = False
        try:
            resp = await self._request("Login", {"Username": srv.username, "Secret": secret, "Events": "on"},
                                       srv.action_timeout_s)
            if not resp.success:
                raise AmiLoginError(f"login as {srv.username!r} refused: {resp.message or 'Error'}")
            logged_in = True
            info = await self._connect_info()
            self._logins += 1
            self._connected = True
            self._connected_evt.set()
            self._since = self._clock.now()
            self._last_error = None
            log.info("AMI %s connected (AMI %s, uptime %s, restarted=%s)", srv.name, info.ami_version,
                     info.uptime, info.restarted)
            self._post(_Connected(info))
            ping_task = asyncio.create_task(self._ping_loop(), name=f"ami-ping-{srv.name}")
            reason = await asyncio.shield(reader_task)
            self._last_error = reason
            log.warning("AMI %s lost: %s", srv.name, reason)
        finally:
            if ping_task is not None:
                ping_task.cancel()
            self._drop(self._drop_reason or "session ended")
            if not reader_task.done():
                reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader_task
            self._writer = None
            with contextlib.suppress(Exception):
                writer.close()
            if self._connected:
                self._connected = False
                self._connected_evt.clear()
                self._since = None
                self._post(_Lost(self._drop_reason or "session ended"))
        return logged_in

    async def _connect_info(self) -> ConnectInfo:
        """Uptime from FullyBooted, start stamp from CoreStatus, and whether Asterisk restarted.

        Three signals, any one suffices: a `Shutdown` event ended the previous
        session; the start time implied by `Uptime` moved; the CoreStatus startup
        stamp changed. An Asterisk still booting sends FullyBooted only when boot
        completes, so when CoreStatus is not allowed (write= lacks system/reporting)
        we wait up to BOOT_WAIT_LONG_S for it; otherwise a short wait suffices.
        """
        srv = self.server
        loop = asyncio.get_running_loop()
        stamp: str | None = None
        try:
            core = await self._request("CoreStatus", {}, srv.action_timeout_s)
        except AmiTimeout:
            core = None
        if core is not None and core.success:
            date, clock = core.get("CoreStartupDate"), core.get("CoreStartupTime")
            if date and clock:
                stamp = f"{date} {clock}"
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(BOOT_WAIT_S, self._boot_wait_s) if stamp else self._boot_wait_s):
                await self._boot_seen.wait()
        uptime = last_reload = None
        started_at: float | None = None
        if self._boot_msg is not None:
            uptime = _float(self._boot_msg.get("Uptime"))
            last_reload = _float(self._boot_msg.get("LastReload"))
            if uptime is not None:
                started_at = loop.time() - uptime
        mark = BootMark(started_at=started_at, stamp=stamp)
        restarted = self._saw_shutdown or detect_restart(self._boot, mark)
        first = self._logins == 0
        self._saw_shutdown = False
        if mark.started_at is not None or mark.stamp is not None:
            self._boot = mark
        return ConnectInfo(srv.name, uptime, last_reload, restarted, self._framer.version, first)

    async def _ping_loop(self) -> None:
        srv = self.server
        while True:
            await asyncio.sleep(srv.ping_interval_s)
            reply = asyncio.ensure_future(self._request("Ping", {}, srv.ping_timeout_s * PING_PATIENCE))
            try:
                for _ in range(PING_PATIENCE):
                    seen = self._rx_bytes
                    done, _pending = await asyncio.wait({reply}, timeout=srv.ping_timeout_s)
                    if done or self._rx_bytes == seen:  # answered, or a silent link
                        break
                if not reply.done():
                    reply.cancel()
                    await asyncio.gather(reply, return_exceptions=True)
                    self._drop(f"no Ping reply within {srv.ping_timeout_s:g}s")
                    return
                reply.result()
            except AmiTimeout:
                self._drop(f"no Ping reply within {srv.ping_timeout_s * PING_PATIENCE:g}s while data kept coming")
                return
            except AmiDisconnected:
                return
            finally:
                if not reply.done():
                    reply.cancel()

    def _drop(self, reason: str) -> None:
        """Abort the transport (first reason wins); the reader then ends the session."""
        if self._drop_reason is None:
            self._drop_reason = reason
        writer = self._writer
        if writer is not None:
            writer.transport.abort()

    # --- reading ---------------------------------------------------------------
    async def _read_loop(self, reader: asyncio.StreamReader) -> str:
        reason = "connection closed by Asterisk"
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                if not data:
                    break
                self._rx_bytes += len(data)
                for msg in self._framer.feed(data, self._clock.now()):
                    try:
                        self._route(msg)
                    except Exception:  # routing is ours and cheap; a bug must not drop the link
                        log.exception("AMI %s: could not route %r", self.server.name, msg)
                # read() returns at once while the stream holds data: without this a burst (megabytes
                # of junk from a broken peer) would be framed in one go, stalling every other task. Twice:
                # the first wake-up is queued ahead of the timers that fell due during this read's work,
                # the second behind them, so they run before the next read (not after two reads' work)
                await asyncio.sleep(0)
                await asyncio.sleep(0)
        except (ConnectionError, OSError) as exc:
            reason = f"read error: {exc}"
        finally:
            self._framer.problems.flush()  # the last burst's count is logged with the session (a close too)
        if self._closing:
            reason = "client closed"
        if self._drop_reason is None:
            self._drop_reason = reason
        self._fail_pending(self._drop_reason)
        return self._drop_reason

    def _route(self, msg: AmiMessage) -> None:
        name = msg.event
        # an event is an action's only while one is pending or abandoned (list members, late replies)
        if name is None or self._pending or self._abandoned:
            aid = msg.action_id
            if aid is not None:
                pending = self._pending.get(aid)
                if pending is not None:
                    self._route_pending(aid, pending, msg)
                    return
                if aid in self._abandoned and self._route_abandoned(aid, msg):
                    return
            if name is None:
                if msg.is_response:
                    log.debug("AMI %s: response for unknown ActionID %r dropped", self.server.name, aid)
                return  # the framer only yields Event/Response frames; nothing else is ours to pass on
        if name == "FullyBooted":
            self._boot_msg = msg
            self._boot_seen.set()
        elif name == "Shutdown":
            self._saw_shutdown = True
            if self._drop_reason is None:
                self._drop_reason = (f"Asterisk shut down ({msg.get('Shutdown', '?')}, "
                                     f"restart={msg.get('Restart', '?')})")
        self._events_total += 1
        inbox = self._inbox
        inbox.append(msg)
        self._inbox_ready.set()
        depth = len(inbox)
        if depth >= self._queue_warn_at:
            log.warning("AMI %s: %d events waiting for the consumer", self.server.name, depth)
            self._queue_warn_at *= 10

    def _route_pending(self, aid: str, pending: Pending, msg: AmiMessage) -> None:
        if msg.is_response and pending.response is None:
            pending.response = msg
            if msg.success and (msg.get("EventList") or "").lower() == "start":
                pending.listing = True
                return
            self._finish(aid, pending)
            return
        pending.events.append(msg)
        if pending.listing and ends_list(msg):
            self._finish(aid, pending)

    def _route_abandoned(self, aid: str, msg: AmiMessage) -> bool:
        """Late frames of a timed-out action: drop its response and list events (True if dropped)."""
        if msg.is_response:
            if msg.success and (msg.get("EventList") or "").lower() == "start":
                self._abandoned[aid] = True
            else:
                self._abandoned.pop(aid, None)
            return True
        if self._abandoned[aid]:
            if ends_list(msg):
                self._abandoned.pop(aid, None)
            return True
        return False  # e.g. OriginateResponse of an Originate whose ack was late: callers need it

    def _finish(self, aid: str, pending: Pending) -> None:
        self._pending.pop(aid, None)
        if not pending.future.done() and pending.response is not None:
            pending.future.set_result(AmiResponse(pending.response, tuple(pending.events)))

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for aid, p in pending.items():
            if not p.future.done():
                p.future.set_exception(AmiDisconnected(f"AMI {self.server.name}: {reason} "
                                                       f"before the reply to {p.name}; not re-sent", aid))

    # --- sending ---------------------------------------------------------------
    async def _request(self, name: str, fields: Mapping[str, FieldValue],
                       timeout: float | None) -> AmiResponse:
        if any(str(k).lower() == "actionid" for k in fields):
            raise AmiActionError("ActionID", "is set by the client; reconcile Originate by ChannelId")
        writer = self._writer
        if writer is None or writer.is_closing() or self._drop_reason is not None:
            raise AmiDisconnected(f"AMI {self.server.name} is not connected")
        aid = f"cti-{self._session_no}-{next(self._ids)}"
        data = encode_action(name, {**fields, "ActionID": aid})
        future: asyncio.Future[AmiResponse] = asyncio.get_running_loop().create_future()
        pending = Pending(name, future)
        self._pending[aid] = pending
        limit = self.server.action_timeout_s if timeout is None else timeout
        try:
            writer.write(data)
            async with asyncio.timeout(limit):
                await writer.drain()
                return await future
        except TimeoutError:
            raise AmiTimeout(f"AMI {self.server.name}: no reply to {name} within {limit:g}s", aid) from None
        except (ConnectionError, OSError) as exc:
            raise AmiDisconnected(f"AMI {self.server.name}: {exc} while sending {name}; "
                                  "not re-sent", aid) from None
        finally:
            if self._pending.pop(aid, None) is not None:  # timed out or the caller was cancelled
                self._abandon(aid, pending)

    def _abandon(self, aid: str, pending: Pending) -> None:
        self._abandoned[aid] = pending.listing
        while len(self._abandoned) > 256:
            self._abandoned.popitem(last=False)

    # --- delivering ------------------------------------------------------------
    def _post(self, item: _Connected | _Lost) -> None:
        self._inbox.append(item)
        self._inbox_ready.set()

    async def _consume(self) -> None:
        inbox, ready, deliver = self._inbox, self._inbox_ready, self._deliver
        n = 0
        while True:
            if not inbox:
                ready.clear()
                await ready.wait()
                continue
            deliver(inbox.popleft(), spawn=True)
            n += 1
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a burst must not starve the reader (Asterisk writetimeout)

    def _deliver(self, item: AmiMessage | _Connected | _Lost, *, spawn: bool) -> None:
        if isinstance(item, AmiMessage):
            try:
                self._on_event(item)
            except Exception:
                log.exception("AMI %s: on_event failed on %s; continuing", self.server.name, item.event)
        elif isinstance(item, _Lost):
            if self._on_disconnect is not None:
                try:
                    self._on_disconnect(item.reason)
                except Exception:
                    log.exception("AMI %s: on_disconnect failed", self.server.name)
        elif spawn and self._on_connect is not None:
            if self._connect_task is not None and not self._connect_task.done():
                self._connect_task.cancel()  # a stale resync must not finish after a newer login
            self._connect_task = asyncio.create_task(self._run_on_connect(item.info),
                                                     name=f"ami-on-connect-{self.server.name}")

    async def _run_on_connect(self, info: ConnectInfo) -> None:
        assert self._on_connect is not None
        try:
            await self._on_connect(info)
        except asyncio.CancelledError:
            raise
        except AmiError as exc:  # e.g. the link dropped again mid-resync: expected, no traceback
            log.warning("AMI %s: on_connect did not finish: %s", self.server.name, exc)
        except Exception:
            log.exception("AMI %s: on_connect failed", self.server.name)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not isinstance(exc, AmiError):
        return "connect timed out"
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, AmiError | ValueError) else f"{type(exc).__name__}: {text}"
