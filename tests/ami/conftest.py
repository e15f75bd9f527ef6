"""A fake Asterisk AMI server on 127.0.0.1:0, scripted per test.

It speaks the wire protocol (banner, CRLF frames, ActionID echo), records every
action it receives, and can be told to stay silent on Ping or on chosen actions,
to drop every connection, or to go away and come back as a restarted Asterisk.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from ctiserver.ami.framing import AmiFramer
from ctiserver.ami.message import AmiMessage
from ctiserver.config import AmiServer

DATA = Path(__file__).parent / "data"
SECRET = "s3cret-do-not-log"


def frame(*pairs: tuple[str, str]) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n").encode()


class FakeConn:
    def __init__(self, fake: FakeAmi, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.fake, self.reader, self.writer = fake, reader, writer
        self.number = fake.connections
        self.logged_in = False

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def respond(self, action: AmiMessage, *pairs: tuple[str, str], response: str = "Success") -> None:
        self.send(frame(("Response", response), ("ActionID", action.get("ActionID", "")), *pairs))

    def send_recorded(self, name: str, action_id: str) -> None:
        """Replay a recorded .ami file, with this action's ActionID put in."""
        for msg in AmiFramer().feed((DATA / name).read_bytes()):
            pairs = [(k, action_id if k.lower() == "actionid" else v) for k, v in msg]
            self.send(frame(*pairs))


Handler = Callable[[FakeConn, AmiMessage], None]


class FakeAmi:
    def __init__(self) -> None:
        self.secret = SECRET
        self.port = 0
        self.server: asyncio.Server | None = None
        self.conns: list[FakeConn] = []
        self.connections = 0
        self.logins = 0
        self.actions: list[tuple[int, AmiMessage]] = []  # (connection number, action)
        self.silent: set[str] = set()  # lower-case action names never answered
        self.silent_pings_on: set[int] = set()  # connection numbers that ignore Ping
        # > 0: a Ping's reply comes this late, behind a trickle of events (a burst the client is still reading)
        self.ping_behind_events_s = 0.0
        self.handlers: dict[str, Handler] = {}
        self.boot_at = time.monotonic() - 3600.0  # this "Asterisk" has been up an hour
        self.send_fully_booted = True
        self.fully_booted_delay_s = 0.0
        self.core_status_allowed = True
        self.login_seen = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Asterisk goes away: stop listening and cut every connection."""
        if self.server is not None:
            self.server.close()
            self.drop_all()
            if self._tasks:  # let every connection task see its EOF and finish
                await asyncio.wait(self._tasks, timeout=2)
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
            self.server = None

    async def restart(self, down_s: float = 0.0) -> None:
        await self.stop()
        await asyncio.sleep(down_s)
        self.boot_at = time.monotonic()
        await self.start()

    def drop_all(self) -> None:
        """A network blip: connections cut, the server stays up."""
        for conn in self.conns:
            conn.writer.transport.abort()
        self.conns.clear()

    def names(self, action: str) -> list[tuple[int, AmiMessage]]:
        return [(n, a) for n, a in self.actions if (a.get("Action") or "").lower() == action.lower()]

    def client_config(self, **overrides: object) -> AmiServer:
        values: dict[str, object] = dict(name="pbx-test", host="127.0.0.1", port=self.port, username="cti",
                                         secret=self.secret, ping_interval_s=5.0, ping_timeout_s=1.0,
                                         reconnect_min_s=0.02, reconnect_max_s=0.2, action_timeout_s=2.0)
        values.update(overrides)
        return AmiServer.model_validate(values)

    # --- protocol ---------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        conn = FakeConn(self, reader, writer)
        self.conns.append(conn)
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        framer = AmiFramer(kinds=("Action",))
        try:
            while data := await reader.read(65536):
                for msg in framer.feed(data):
                    self.actions.append((conn.number, msg))
                    self._answer(conn, msg)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def _booted(self, conn: FakeConn) -> None:
        uptime = int(time.monotonic() - self.boot_at)
        conn.send(frame(("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", str(uptime)),
                        ("LastReload", str(uptime)), ("Status", "Fully Booted")))

    def _answer(self, conn: FakeConn, action: AmiMessage) -> None:
        name = (action.get("Action") or "").lower()
        if name in self.handlers:
            self.handlers[name](conn, action)
        elif name in self.silent or (name == "ping" and conn.number in self.silent_pings_on):
            return
        elif name == "login":
            if action.get("Secret") != self.secret:
                conn.respond(action, ("Message", "Authentication failed"), response="Error")
                return
            conn.logged_in = True
            self.logins += 1
            conn.respond(action, ("Message", "Authentication accepted"))
            if self.send_fully_booted:
                if self.fully_booted_delay_s:  # still booting: FullyBooted comes when boot completes
                    asyncio.get_running_loop().call_later(self.fully_booted_delay_s, self._booted, conn)
                else:
                    self._booted(conn)
            self.login_seen.set()
        elif not conn.logged_in:
            conn.respond(action, ("Message", "Permission denied"), response="Error")
        elif name == "ping" and self.ping_behind_events_s:
            loop = asyncio.get_running_loop()
            for i in range(int(self.ping_behind_events_s / 0.02)):
                loop.call_later(i * 0.02, conn.send, frame(("Event", "UserEvent"), ("UserEvent", f"burst-{i}")))
            loop.call_later(self.ping_behind_events_s, conn.respond, action, ("Ping", "Pong"))
        elif name == "ping":
            conn.respond(action, ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}"))
        elif name == "coreshowchannels":
            conn.send_recorded("coreshowchannels.ami", action.get("ActionID", ""))
        elif name == "corestatus":
            if not self.core_status_allowed:  # a manager.conf write= without system/reporting
                conn.respond(action, ("Message", "Permission denied"), response="Error")
                return
            started = time.localtime(time.time() - (time.monotonic() - self.boot_at))
            conn.respond(action, ("CoreStartupDate", time.strftime("%Y-%m-%d", started)),
                         ("CoreStartupTime", time.strftime("%H:%M:%S", started)),
                         ("CoreReloadDate", time.strftime("%Y-%m-%d", started)),
                         ("CoreReloadTime", time.strftime("%H:%M:%S", started)), ("CoreCurrentCalls", "0"))
        elif name == "logoff":
            conn.respond(action, ("Message", "Thanks for all the fish."), response="Goodbye")
            conn.writer.close()
        elif name == "originate":
            conn.respond(action, ("Message", "Originate successfully queued"))
        else:
            conn.respond(action, ("Message", "Invalid/unknown command"), response="Error")


@pytest.fixture
async def fake_ami() -> AsyncIterator[FakeAmi]:
    fake = FakeAmi()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
