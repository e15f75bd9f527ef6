"""FastAGI's header phase cannot be used to exhaust memory: the server as production builds it, real sockets.

Before, one connection could make the server hold ~16 MB of headers (256 lines of 64 KB) until
the header timeout; 20 such took the server's RSS from 301 to 609 MB. Now a session's headers are
capped at 64 KB, and at most `agi.max_pending` connections may be in their header phase: one more
closes the oldest of them, so Asterisk (which sends its headers at once) is still served.
"""

from __future__ import annotations

import asyncio
import contextlib
import tracemalloc
from pathlib import Path
from typing import Any

from ctiserver.agi.server import MAX_HEADER_BYTES
from ctiserver.config import AgiConfig
from tests.agi.test_server import header_bytes
from tests.production import edit_yaml, production_server


def agi_settings(**values: Any) -> Any:
    def edit(cfg: Path) -> None:
        edit_yaml(cfg / "ctiserver.yaml", lambda d: d["agi"].update(values))
    return edit


async def closed_by_server(reader: asyncio.StreamReader, timeout: float = 20.0) -> bool:
    """True once the server closed the connection (EOF or reset); False if it sent something instead."""
    with contextlib.suppress(ConnectionError):
        async with asyncio.timeout(timeout):  # a failure guard: the server closes at once when it works
            return await reader.read(1) == b""
    return True


async def flood(port: int, line: bytes, lines: int) -> bool:
    """Send `lines` header lines (no end of headers); True if the server closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in range(lines):
            writer.write(b"agi_x%d: " % i + line)
            await writer.drain()
    except ConnectionError:
        pass
    try:
        return await closed_by_server(reader)
    finally:
        writer.close()


async def test_twenty_connections_of_megabyte_headers_hold_no_megabytes(tmp_path: Path) -> None:
    big_line = b"a" * 60_000 + b"\n"  # 16 of them: 1 MB per connection, every line under the line limit
    async with production_server(tmp_path, agi_settings(header_timeout_s=60)) as prod:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            closed = await asyncio.gather(*(flood(prod.agi_port, big_line, 16) for _ in range(20)))
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
        assert all(closed)  # each closed past 64 KB, long before the 60 s header timeout
        assert prod.server.agi.rejected_total == 20
        assert peak < 8 * 1024 * 1024, f"the header phase held {peak / 1e6:.1f} MB"
        assert MAX_HEADER_BYTES == 64 * 1024


def test_fastagi_listens_on_loopback_unless_told_otherwise_in_the_image_too() -> None:
    assert AgiConfig().host == "127.0.0.1"
    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text(encoding="utf-8")
    assert not [line for line in dockerfile.splitlines()
                if "CTISERVER_AGI_HOST" in line and not line.lstrip().startswith("#")]


async def test_connections_that_never_send_headers_cannot_keep_asterisk_out(tmp_path: Path) -> None:
    async with production_server(tmp_path, agi_settings(header_timeout_s=60, max_pending=8)) as prod:
        idle = [await asyncio.open_connection("127.0.0.1", prod.agi_port) for _ in range(20)]
        # Asterisk connects and sends its headers at once: it is served (the IVR sends its first command)
        reader, writer = await asyncio.open_connection("127.0.0.1", prod.agi_port)
        writer.write(header_bytes())
        async with asyncio.timeout(20):
            first_command = await reader.readline()
        assert first_command.strip() and not first_command.startswith(b"HANGUP")
        writer.close()
        # the 13 oldest idle connections were closed to make room (before Asterisk's was admitted);
        # the newest 7 still wait, and nothing else is in the header phase
        assert [await closed_by_server(r) for r, _ in idle[:13]] == [True] * 13
        assert not any(r.at_eof() for r, _ in idle[13:])
        assert prod.server.agi.pending == 7
        for _, w in idle:
            w.close()
