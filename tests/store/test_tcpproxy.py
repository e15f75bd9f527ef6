"""The test TCP proxy behaves as documented (other areas' tests rely on it too)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from .tcpproxy import TcpProxy


@pytest.fixture
async def echo() -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def roundtrip(port: int, payload: bytes = "你好\n".encode()) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(len(payload)), 5)
    finally:
        writer.close()


async def test_forwards_cuts_and_restores_on_the_same_port(echo: int) -> None:
    async with TcpProxy("127.0.0.1", echo) as proxy:
        port = proxy.port
        assert await roundtrip(port) == "你好\n".encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await proxy.cut()
        assert await asyncio.wait_for(reader.read(10), 5) == b""  # live link dropped
        writer.close()
        with pytest.raises(ConnectionRefusedError):
            await roundtrip(port)
        await proxy.restore()
        assert proxy.port == port
        assert await roundtrip(port) == "你好\n".encode()


async def test_hang_goes_silent_and_restore_resumes(echo: int) -> None:
    async with TcpProxy("127.0.0.1", echo) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        await proxy.cut("hang")
        writer.write(b"ping\n")
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(5), 0.2)
        await proxy.restore()
        assert await asyncio.wait_for(reader.readexactly(5), 5) == b"ping\n"
        writer.close()


async def test_refuses_a_dead_target_without_hanging() -> None:
    async with TcpProxy("127.0.0.1", 1) as proxy:  # nothing listens on port 1
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await asyncio.wait_for(reader.read(10), 5) == b""
        writer.close()
