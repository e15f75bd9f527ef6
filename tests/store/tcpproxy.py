"""A TCP proxy for tests that can cut a link the way networks and servers fail.

    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()            # listens on 127.0.0.1:<proxy.port>
    await proxy.cut()              # "refuse": drop every connection, refuse new ones (server down)
    await proxy.cut("hang")        # accept but never answer, stall live links (half-open / blackhole)
    await proxy.restore()          # back to normal, on the same port
    await proxy.close()

Usable for anything over TCP (PostgreSQL, AMI, FastAGI, HTTP). Also an async
context manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Literal

Mode = Literal["open", "refuse", "hang"]


class TcpProxy:
    """Forward listen_host:listen_port to target_host:target_port until told to fail."""

    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1",
                 listen_port: int = 0) -> None:
        self.target_host, self.target_port = target_host, target_port
        self.listen_host = listen_host
        self.port = listen_port
        self.mode: Mode = "open"
        self.connections_total = 0
        self._server: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    @property
    def active(self) -> int:
        """Client connections currently held open by the proxy."""
        return len(self._links)

    async def start(self) -> None:
        await self._listen()

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.listen_host, self.port))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._handle, sock=sock)

    async def cut(self, mode: Mode = "refuse") -> None:
        """Fail the link: 'refuse' closes everything (connect gets ECONNREFUSED); 'hang' goes silent."""
        if mode == "open":
            raise ValueError("use restore() to reopen the link")
        self.mode = mode
        if mode == "refuse":
            self._flowing.set()
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
                self._server = None
            self._drop_all()
        else:
            self._flowing.clear()

    async def restore(self) -> None:
        """Forward again; links held during a 'hang' resume where they stopped."""
        previous, self.mode = self.mode, "open"
        self._flowing.set()
        if previous == "refuse" and self._server is None:
            await self._listen()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._flowing.set()
        self._drop_all()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def _drop_all(self) -> None:
        for client, upstream in list(self._links):
            _abort(client)
            if upstream is not None:
                _abort(upstream)
        self._links.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_total += 1
        link: tuple[asyncio.StreamWriter, asyncio.StreamWriter | None] = (writer, None)
        self._links.add(link)
        try:
            await self._flowing.wait()  # 'hang': the client sees a connect but no answer
            if link not in self._links:
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                _abort(writer)
                return
            self._links.discard(link)
            link = (writer, up_writer)
            self._links.add(link)
            pumps = [asyncio.create_task(self._pump(reader, up_writer)),
                     asyncio.create_task(self._pump(up_reader, writer))]
            for t in pumps:
                self._tasks.add(t)
                t.add_done_callback(self._tasks.discard)
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            for t in pumps:
                t.cancel()
        finally:
            self._links.discard(link)
            _abort(writer)
            if link[1] is not None:
                _abort(link[1])

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    return
                await self._flowing.wait()
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            return


def _abort(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()
