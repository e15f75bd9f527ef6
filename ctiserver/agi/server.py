"""FastAGI listener: Asterisk connects, sends `agi_*` headers, then we drive the call by commands.

Why not panoramisk's `fast_agi.Application`: its header loop is
`while b'\\n\\n' not in buffer: buffer += await reader.read(...)`, which on EOF
reads b'' forever and freezes the whole event loop (every call, the AMI link).
Here the headers are read line by line under one deadline (`header_timeout_s`):
EOF, a line that is not `agi_name: value`, too many lines or more than 64 KB in
all close the socket at once. At most `max_pending` connections may be in their
header phase together; one more closes the oldest of them (Asterisk sends its
headers at once, so the oldest is the one that is not Asterisk). So the header
phase holds at most max_pending x ~200 KB, whatever connects to the port; the
port itself has no authentication: listen on loopback or a private address only.
Commands run one at a time with `command_timeout_s`;
Asterisk's asynchronous `HANGUP` line (AGISIGHUP / AGIEXITONHANGUP) becomes
`AgiHangup`, and is seen even between commands (`AgiSession.wait_hangup`, for
callers parked under CTI control). A handler that raises is logged and its socket closed; the listener
keeps serving. When a handler fails for any reason other than a hangup we set
the channel variable `CTI_AGI_FAILED=1` (best effort) before closing, so the
dialplan can send the caller to its fallback queue instead of hanging up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from urllib.parse import parse_qsl, urlsplit

from ..lograte import LogBurst
from .channel import AgiChannel, AgiError, AgiHandler, AgiHangup, AgiReply

log = logging.getLogger(__name__)

MAX_HEADER_LINES = 256
MAX_HEADER_BYTES = 64 * 1024  # all of one session's headers (Asterisk sends 1-2 KB)
MAX_PENDING = 64  # connections still in their header phase at once
MAX_LINE = 64 * 1024
MAX_USAGE_LINES = 200
FAILED_VARIABLE = "CTI_AGI_FAILED"
_REPLY = re.compile(r"^(\d{3})(?:[ -](.*))?$")
_ENDPOS = re.compile(r"\bendpos=(-?\d+)")


class AgiCommandRejected(ValueError):
    """A command we refuse to send (empty, or holding CR/LF/NUL that would inject a second command)."""


class AgiReplyError(AgiError):
    """Asterisk answered with a non-200 code (510 invalid, 511 dead channel, 520 usage) or garbage."""

    def __init__(self, code: int, text: str) -> None:
        self.code = code
        self.text = text
        super().__init__(f"{code} {text}" if code else text)


class _BadHeaders(Exception):
    pass


# --- pure parsing ------------------------------------------------------------------
def parse_reply_line(line: str) -> AgiReply:
    """`200 result=1 (timeout)` -> AgiReply(200, '1', 'timeout'); raise AgiReplyError otherwise.

    `data` is what the parentheses hold; anything after them (`endpos=1234`) follows after a
    space, and with no parentheses `data` is the rest of the line (`endpos=1234`).
    """
    m = _REPLY.match(line)
    if m is None:
        raise AgiReplyError(0, f"unreadable AGI reply {line[:120]!r}")
    code, rest = int(m.group(1)), (m.group(2) or "").strip()
    if code != 200:
        raise AgiReplyError(code, rest)
    if not rest.startswith("result="):
        raise AgiReplyError(0, f"200 reply without result= ({line[:120]!r})")
    result, _, tail = rest[len("result="):].partition(" ")
    tail = tail.strip()
    if tail.startswith("("):
        close = tail.rfind(")")
        inner, extra = (tail[1:close], tail[close + 1:].strip()) if close > 0 else (tail[1:], "")
        data = f"{inner} {extra}" if extra else inner
    else:
        data = tail
    return AgiReply(200, result, data)


def reply_endpos(reply: AgiReply) -> int | None:
    """The `endpos=` sample offset of a STREAM FILE / RECORD FILE reply, if present."""
    m = _ENDPOS.search(reply.data)
    return int(m.group(1)) if m else None


def check_command(command: str) -> str:
    if not command.strip():
        raise AgiCommandRejected("empty AGI command")
    for ch, what in (("\r", "CR"), ("\n", "LF"), ("\0", "NUL")):
        if ch in command:
            raise AgiCommandRejected(f"AGI command {command.split(' ', 1)[0]!r} contains {what}")
    return command


def script_path(headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The script path (`ivr`) and its query parameters, from agi_network_script or agi_request."""
    script = headers.get("agi_network_script")
    if script is None:
        request = headers.get("agi_request", "")
        parts = urlsplit(request)
        script = parts.path + (f"?{parts.query}" if parts.query else "") if parts.scheme else request
    path, _, query = script.partition("?")
    return path.strip("/"), dict(parse_qsl(query))


# --- one call ----------------------------------------------------------------------------
class AgiSession(AgiChannel):
    """One FastAGI connection; commands are sent strictly one at a time.

    A single reader task owns the socket's read side: reply lines go to a queue for
    `execute`, while Asterisk's asynchronous `HANGUP` line (or EOF) is noticed at
    once, even between commands, so code parking a caller can `await wait_hangup()`.
    """

    def __init__(self, headers: dict[str, str], reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 command_timeout_s: float) -> None:
        self._headers = headers
        self._path, self.query = script_path(headers)
        self._reader = reader
        self._writer = writer
        self._timeout = command_timeout_s
        self._lock = asyncio.Lock()
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()  # None: no more replies will come
        self._over = asyncio.Event()
        self._dead: str | None = None  # why no more commands can be sent
        self._reading: asyncio.Task[None] | None = None
        self.commands = 0

    @property
    def headers(self) -> dict[str, str]:
        return dict(self._headers)

    @property
    def path(self) -> str:
        return self._path

    @property
    def hung_up(self) -> bool:
        return self._dead is not None

    async def wait_hangup(self) -> str:
        """Return (with the reason) once the caller hung up or the session's socket closed."""
        await self._over.wait()
        return self._dead or "the AGI session ended"

    async def execute(self, command: str, timeout: float | None = None) -> AgiReply:
        """Run one command; `timeout` overrides command_timeout_s (e.g. for EXEC Dial)."""
        check_command(command)
        limit = self._timeout if timeout is None else timeout
        async with self._lock:
            if self._dead is not None:
                raise AgiHangup(self._dead)
            self.commands += 1
            try:
                async with asyncio.timeout(limit):
                    self._writer.write(command.encode("utf-8") + b"\n")
                    await self._writer.drain()
                    return await self._read_reply()
            except TimeoutError:
                # a late reply would be taken for the next command's: the session is unusable
                self._kill("the AGI session was closed after a command timed out")
                raise TimeoutError(f"AGI {command.split(' ', 1)[0]} got no reply within {limit:g}s") from None
            except (ConnectionError, OSError) as exc:
                self._kill(f"AGI socket error: {exc}")
                raise AgiHangup(self._dead) from None

    # --- the read side ---------------------------------------------------------------------
    def start_reading(self) -> None:
        if self._reading is None:
            self._reading = asyncio.create_task(self._read_lines(), name="agi-read")

    async def stop_reading(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
            self._reading = None

    async def _read_lines(self) -> None:
        try:
            while True:
                try:
                    raw = await self._reader.readline()
                except ValueError:  # a line over the stream limit: the stream cannot be trusted
                    self._kill("Asterisk sent an AGI line that is too long")
                    return
                except (ConnectionError, OSError) as exc:
                    self._kill(f"AGI socket error: {exc}")
                    return
                if not raw.endswith(b"\n"):
                    self._mark_dead("the AGI socket closed")
                    return
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.strip() == "HANGUP":
                    self._mark_dead("the caller hung up")
                    self._lines.put_nowait(None)  # wake a command waiting for its reply
                elif self._dead is None:
                    self._lines.put_nowait(line)
        finally:
            self._mark_dead("the AGI session ended")
            self._lines.put_nowait(None)

    async def _readline(self) -> str:
        line = await self._lines.get()
        if line is None:
            self._lines.put_nowait(None)  # stays closed for whoever asks next
            raise AgiHangup(self._dead or "the AGI socket closed")
        return line

    async def _read_reply(self) -> AgiReply:
        line = await self._readline()
        while not line.strip():  # tolerate stray blank lines
            line = await self._readline()
        if line.startswith("520-"):
            usage = [line[4:]]
            while len(usage) < MAX_USAGE_LINES:
                nxt = await self._readline()
                if nxt.startswith("520 "):
                    break
                usage.append(nxt)
            raise AgiReplyError(520, "\n".join(usage).strip())
        return parse_reply_line(line)

    def _mark_dead(self, reason: str) -> None:
        if self._dead is None:
            self._dead = reason
        self._over.set()

    def _kill(self, reason: str) -> None:
        self._mark_dead(reason)
        self._writer.transport.abort()


# --- the listener ----------------------------------------------------------------------
class FastAGIServer:
    """Accepts FastAGI connections and runs `handler(session)` for each."""

    def __init__(self, host: str, port: int, handler: AgiHandler, header_timeout_s: float = 5.0,
                 command_timeout_s: float = 30.0, max_pending: int = MAX_PENDING) -> None:
        self.host = host
        self._port = port
        self._handler = handler
        self.header_timeout_s = header_timeout_s
        self.command_timeout_s = command_timeout_s
        self.max_pending = max_pending
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # connections in their header phase, oldest first (writer; evicted when a newer one needs the place)
        self._pending: dict[asyncio.StreamWriter, bool] = {}
        self.active_sessions = 0
        self.sessions_total = 0
        self.rejected_total = 0  # connections closed before a session began (EOF, garbage, timeout)
        self.failed_total = 0  # handlers that raised
        # a port scan makes many such connections: one line for the first, then a count per minute
        self._rejected_log = LogBurst(log, "FastAGI connections closed before an AGI session began",
                                      interval_s=60.0)

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked)."""
        if self._server is not None and self._server.sockets:
            return int(self._server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self._port, limit=MAX_LINE)
        except OSError as exc:
            raise OSError(exc.errno, f"FastAGI cannot listen on {self.host}:{self._port}: "
                                     f"{exc.strerror or exc}") from exc
        log.info("FastAGI listening on %s:%s", self.host, self.port)

    async def close(self) -> None:
        """Stop accepting, end the sessions under way (Asterisk then continues its dialplan)."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self._server.wait_closed()
        self._server = None
        self._rejected_log.flush()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        try:
            self._admit(writer)
            try:
                headers = await self._read_headers(reader)
            except (_BadHeaders, TimeoutError, ConnectionError, OSError) as exc:
                self.rejected_total += 1
                why = f"no AGI headers within {self.header_timeout_s:g}s" if isinstance(exc, TimeoutError) \
                    else str(exc) or type(exc).__name__
                if self._pending.get(writer):
                    why = f"closed for a newer connection: {self.max_pending} were in their header phase"
                self._rejected_log.add(f"from {peer}: {why}")
                return
            finally:
                self._pending.pop(writer, None)
            session = AgiSession(headers, reader, writer, self.command_timeout_s)
            session.start_reading()
            try:
                await self._run(session)
            finally:
                await session.stop_reading()
        except asyncio.CancelledError:
            # close() ends sessions under way; a connection task that re-raised would be logged by
            # asyncio's stream callback as an error on every shutdown. The socket closes below.
            if self._server is not None and self._server.is_serving():
                raise
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    @property
    def pending(self) -> int:
        """Connections still in their header phase (not counting those being closed)."""
        return sum(1 for closing in self._pending.values() if not closing)

    def _admit(self, writer: asyncio.StreamWriter) -> None:
        """Make room in the header phase for `writer`: past `max_pending`, the oldest one there is closed."""
        live = [w for w, closing in self._pending.items() if not closing]
        for oldest in live[:max(0, len(live) - self.max_pending + 1)]:
            self._pending[oldest] = True  # its task logs why and takes it out
            oldest.transport.abort()
        self._pending[writer] = False

    async def _run(self, session: AgiSession) -> None:
        self.active_sessions += 1
        self.sessions_total += 1
        who = session.headers.get("agi_uniqueid", "?")
        try:
            await self._handler(session)
        except AgiHangup as exc:
            log.info("AGI %s (%s) ended: %s", session.path, who, exc)
        except asyncio.CancelledError:
            log.info("AGI %s (%s) cancelled at shutdown", session.path, who)
            raise
        except Exception:
            self.failed_total += 1
            log.exception("AGI handler for %r (%s) failed; closing its socket", session.path, who)
            if not session.hung_up:
                with contextlib.suppress(Exception):
                    await session.execute(f"SET VARIABLE {FAILED_VARIABLE} 1", timeout=1.0)
        finally:
            self.active_sessions -= 1

    async def _read_headers(self, reader: asyncio.StreamReader) -> dict[str, str]:
        headers: dict[str, str] = {}
        size = 0
        async with asyncio.timeout(self.header_timeout_s):
            while True:
                try:
                    raw = await reader.readline()
                except ValueError:
                    raise _BadHeaders("AGI header line too long") from None
                size += len(raw)
                if size > MAX_HEADER_BYTES:
                    raise _BadHeaders(f"AGI headers over {MAX_HEADER_BYTES // 1024} KB")
                if not raw.endswith(b"\n"):
                    raise _BadHeaders(f"connection closed after {len(headers)} AGI headers")
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if not line:
                    if not headers:
                        raise _BadHeaders("blank line before any AGI header")
                    return headers
                key, sep, value = line.partition(":")
                if not sep or not key.startswith("agi_") or " " in key:
                    raise _BadHeaders(f"not an AGI header: {line[:60]!r}")
                headers[key] = value.strip()
                if len(headers) > MAX_HEADER_LINES:
                    raise _BadHeaders(f"more than {MAX_HEADER_LINES} AGI headers")
