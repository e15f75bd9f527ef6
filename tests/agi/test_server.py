"""FastAGI listener on loopback, driven by a scripted fake Asterisk."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from ctiserver.agi.channel import AgiChannel, AgiError, AgiHangup, AgiReply
from ctiserver.agi.server import (
    FAILED_VARIABLE,
    AgiCommandRejected,
    AgiReplyError,
    AgiSession,
    FastAGIServer,
    parse_reply_line,
    reply_endpos,
    script_path,
)

HEADERS = {
    "agi_network": "yes",
    "agi_network_script": "ivr?tree=main",
    "agi_request": "agi://127.0.0.1:4573/ivr?tree=main",
    "agi_channel": "PJSIP/trunk-sgcc-00000012",
    "agi_language": "zh",
    "agi_type": "PJSIP",
    "agi_uniqueid": "1732345678.18",
    "agi_version": "22.1.0",
    "agi_callerid": "13800138000",
    "agi_calleridname": "国网客户张三",
    "agi_context": "hotline",
    "agi_extension": "95598",
    "agi_priority": "3",
    "agi_enhanced": "0.0",
    "agi_accountcode": "",
    "agi_threadid": "140262345678912",
    "agi_arg_1": "vip",
}


def header_bytes(headers: dict[str, str] = HEADERS) -> bytes:
    return ("".join(f"{k}: {v}\n" for k, v in headers.items()) + "\n").encode()


class FakeAsterisk:
    """The Asterisk side of one FastAGI connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, headers: bytes | None = None) -> FakeAsterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        fake = cls(reader, writer)
        if headers is not None:
            writer.write(headers)
        return fake

    async def command(self) -> str:
        async with asyncio.timeout(5):
            line = await self.reader.readline()
        assert line.endswith(b"\n"), f"connection closed instead of a command ({line!r})"
        return line.decode().rstrip("\n")

    def reply(self, text: str) -> None:
        self.writer.write(text.encode())

    async def closed_by_server(self) -> bool:
        """True once the listener has closed the socket (a reset counts: it closed with data unread)."""
        try:
            async with asyncio.timeout(5):
                rest = await self.reader.read()
        except ConnectionResetError:
            return True
        return rest == b""

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def agi_server() -> AsyncIterator[Callable[..., Awaitable[FastAGIServer]]]:
    servers: list[FastAGIServer] = []

    async def make(handler: Callable[[AgiChannel], Awaitable[None]], **kw: float) -> FastAGIServer:
        server = FastAGIServer("127.0.0.1", 0, handler, **kw)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


async def test_headers_path_and_replies(agi_server) -> None:
    seen: dict[str, object] = {}

    async def handler(chan: AgiChannel) -> None:
        seen["path"], seen["headers"] = chan.path, chan.headers
        seen["data"] = await chan.execute("GET DATA welcome 5000 4")
        seen["stream"] = await chan.execute('STREAM FILE zh/menu "0123456789#*"')
        seen["var"] = await chan.execute("GET VARIABLE CTI_TIER")

    server = await agi_server(handler)
    assert server.port > 0
    ast = await FakeAsterisk.connect(server.port, header_bytes())
    assert await ast.command() == "GET DATA welcome 5000 4"
    ast.reply("200 result=123 (timeout)\n")
    assert await ast.command() == 'STREAM FILE zh/menu "0123456789#*"'
    ast.reply("200 result=0 endpos=20480\n")
    assert await ast.command() == "GET VARIABLE CTI_TIER"
    ast.reply("200 result=1 (vip (gold))\n")
    assert await ast.closed_by_server()
    assert seen["path"] == "ivr"
    headers = seen["headers"]
    assert isinstance(headers, dict) and headers["agi_calleridname"] == "国网客户张三"
    assert headers["agi_accountcode"] == "" and headers["agi_arg_1"] == "vip"
    assert seen["data"] == AgiReply(200, "123", "timeout")
    assert seen["stream"] == AgiReply(200, "0", "endpos=20480")
    assert reply_endpos(seen["stream"]) == 20480  # type: ignore[arg-type]
    assert seen["var"] == AgiReply(200, "1", "vip (gold)")
    assert server.sessions_total == 1 and server.active_sessions == 0


async def test_eof_mid_headers_closes_without_spinning(agi_server, caplog) -> None:
    called: list[AgiChannel] = []

    async def handler(chan: AgiChannel) -> None:
        called.append(chan)

    server = await agi_server(handler)
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.001)

    tick_task = asyncio.create_task(ticker())
    with caplog.at_level(logging.WARNING):
        ast = await FakeAsterisk.connect(server.port, b"agi_network: yes\nagi_request: agi://127.0.0.1/ivr\n")
        ast.writer.write_eof()  # Asterisk (or a probe) goes away half-way through the headers
        assert await ast.closed_by_server()
        before = ticks
        await asyncio.sleep(0.05)
        after = ticks
    stop.set()
    await tick_task
    assert after > before  # the loop kept running: no busy read of b'' forever
    assert called == [] and server.rejected_total == 1
    assert "closed after 2 AGI headers" in caplog.text
    # and the listener still serves the next call
    ok = await FakeAsterisk.connect(server.port, header_bytes())
    assert await ok.closed_by_server() and len(called) == 1


async def test_garbage_is_rejected_at_the_first_line(agi_server) -> None:
    async def handler(chan: AgiChannel) -> None:
        raise AssertionError("must not run")

    server = await agi_server(handler, header_timeout_s=30.0)
    ast = await FakeAsterisk.connect(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert await ast.closed_by_server()  # at once, long before the 30 s header timeout
    ast2 = await FakeAsterisk.connect(server.port, b"\n")
    assert await ast2.closed_by_server()
    assert server.rejected_total == 2 and server.sessions_total == 0


async def test_a_port_scan_is_one_log_line_and_a_count_not_a_warning_per_connection(agi_server, caplog) -> None:
    """Issue 12 item 5: every probe of the FastAGI port (connect, close; or a stray HTTP request) used
    to write its own WARNING. Now the first is logged and the rest counted, the count logged once."""
    async def handler(chan: AgiChannel) -> None:
        raise AssertionError("must not run")

    server = await agi_server(handler)
    caplog.set_level(logging.INFO)
    probes = 300
    for i in range(probes):
        ast = await FakeAsterisk.connect(server.port, b"GET / HTTP/1.0\r\n\r\n" if i % 2 else None)
        ast.writer.close()
    async with asyncio.timeout(10):
        while server.rejected_total < probes:  # noqa: ASYNC110  (no event for "the server saw it close")
            await asyncio.sleep(0.01)
    during = [r for r in caplog.records if r.name == "ctiserver.agi.server"
             and r.levelno >= logging.WARNING]
    assert len(during) == 1 and "closed before an AGI session began" in during[0].getMessage()
    await server.close()
    after = [r.getMessage() for r in caplog.records if r.name == "ctiserver.agi.server"
             and r.levelno >= logging.WARNING]
    assert len(after) == 2 and f"{probes - 1} more in " in after[1], after
    assert server.sessions_total == 0


async def test_silent_peer_hits_the_header_timeout(agi_server) -> None:
    async def handler(chan: AgiChannel) -> None:
        raise AssertionError("must not run")

    server = await agi_server(handler, header_timeout_s=0.2)
    ast = await FakeAsterisk.connect(server.port, b"agi_network: yes\n")
    assert await ast.closed_by_server()
    assert server.rejected_total == 1


async def test_oversized_header_line_is_rejected(agi_server) -> None:
    async def handler(chan: AgiChannel) -> None:
        raise AssertionError("must not run")

    server = await agi_server(handler)
    ast = await FakeAsterisk.connect(server.port, b"agi_network: " + b"y" * 200_000 + b"\n\n")
    assert await ast.closed_by_server()
    assert server.rejected_total == 1


async def test_hangup_line_raises_and_later_commands_are_not_sent(agi_server) -> None:
    outcome: list[str] = []

    async def handler(chan: AgiChannel) -> None:
        try:
            await chan.execute("STREAM FILE zh/welcome \"\"")
        except AgiHangup:
            outcome.append("hangup")
        with pytest.raises(AgiHangup):
            await chan.execute("SAY DIGITS 123 \"\"")
        outcome.append("second refused")

    server = await agi_server(handler)
    ast = await FakeAsterisk.connect(server.port, header_bytes())
    assert (await ast.command()).startswith("STREAM FILE")
    ast.reply("HANGUP\n")
    assert await ast.closed_by_server()  # nothing more was written after HANGUP
    assert outcome == ["hangup", "second refused"]


async def test_hangup_between_commands_is_noticed_at_once(agi_server) -> None:
    """A caller parked under CTI control (no command under way) who hangs up is seen promptly."""
    reasons: list[str] = []
    parked = asyncio.Event()

    async def handler(chan: AgiChannel) -> None:
        assert isinstance(chan, AgiSession)
        await chan.execute("EXEC StartMusicOnHold default")
        parked.set()
        async with asyncio.timeout(5):  # e.g. racing the ACD's agent search
            reasons.append(await chan.wait_hangup())
        with pytest.raises(AgiHangup):
            await chan.execute("EXEC StopMusicOnHold")

    server = await agi_server(handler)
    ast = await FakeAsterisk.connect(server.port, header_bytes())
    await ast.command()
    ast.reply("200 result=0\n")
    await parked.wait()
    ast.reply("HANGUP\n")
    ast.reply("200 result=-1\n")  # a stray reply after HANGUP is ignored, never taken for the next
    assert await ast.closed_by_server()
    assert reasons == ["the caller hung up"]


async def test_socket_closed_between_commands_is_noticed_at_once(agi_server) -> None:
    reasons: list[str] = []
    parked = asyncio.Event()

    async def handler(chan: AgiChannel) -> None:
        assert isinstance(chan, AgiSession)
        parked.set()
        async with asyncio.timeout(5):
            reasons.append(await chan.wait_hangup())
        assert chan.hung_up

    server = await agi_server(handler)
    ast = await FakeAsterisk.connect(server.port, header_bytes())
    await parked.wait()
    ast.close()
    for _ in range(300):
        if reasons:
            break
        await asyncio.sleep(0.01)
    assert reasons == ["the AGI socket closed"]


async def test_hangup_exception_from_handler_is_not_a_failure(agi_server, caplog) -> None:
    async def handler(chan: AgiChannel) -> None:
        await chan.execute("ANSWER")

    server = await agi_server(handler)
    ast = await FakeAsterisk.connect(server.port, header_bytes())
    assert await ast.command() == "ANSWER"
    ast.close()  # the socket goes away mid-command: also a hangup
    with caplog.at_level(logging.ERROR):
        for _ in range(200):
            if server.sessions_total == 1 and server.active_sessions == 0:
                break
            await asyncio.sleep(0.01)
    assert server.failed_total == 0 and server.active_sessions == 0
    assert "failed" not in caplog.text


async def test_error_codes_and_multiline_usage(agi_server) -> None:
    errors: list[tuple[int, str]] = []
    final: list[AgiReply] = []

    async def handler(chan: AgiChannel) -> None:
        for cmd in ("FOO BAR", "EXEC Playback x", "GET DATA"):
            try:
                await chan.execute(cmd)
            except AgiError as exc:
                assert isinstance(exc, AgiReplyError)
                errors.append((exc.code, exc.text))
        final.append(await chan.execute("ANSWER"))

    server = await agi_server(handler)
    ast = await FakeAsterisk.connect(server.port, header_bytes())
    assert await ast.command() == "FOO BAR"
    ast.reply("510 Invalid or unknown command\n")
    assert await ast.command() == "EXEC Playback x"
    ast.reply("511 Command Not Permitted on a dead channel or intercept routine\n")
    assert await ast.command() == "GET DATA"
    ast.reply("520-Invalid command syntax.  Proper usage follows:\n"
              "Usage: GET DATA <file to be streamed> [timeout] [maxdigits]\n"
              "  Stream the given file, and receive DTMF data.\n"
              "520 End of proper usage.\n")
    assert await ast.command() == "ANSWER"  # still in step after the multi-line reply
    ast.reply("200 result=0\n")
    assert await ast.closed_by_server()
    assert [c for c, _ in errors] == [510, 511, 520]
    assert "Usage: GET DATA" in errors[2][1]
    assert final == [AgiReply(200, "0", "")]


async def test_command_timeout_closes_the_session(agi_server) -> None:
    outcome: list[str] = []

    async def handler(chan: AgiChannel) -> None:
        with pytest.raises(TimeoutError):
            await chan.execute("GET DATA welcome 5000 4")
        outcome.append("timeout")
        with pytest.raises(AgiHangup):
            await chan.execute("ANSWER")
        outcome.append("dead")

    server = await agi_server(handler, command_timeout_s=0.1)
    ast = await FakeAsterisk.connect(server.port, header_bytes())
    assert (await ast.command()).startswith("GET DATA")
    assert await ast.closed_by_server()  # we never answered; the listener gave up and hung up
    assert outcome == ["timeout", "dead"]


async def test_per_command_timeout_override(agi_server) -> None:
    got: list[AgiReply] = []

    async def handler(chan: AgiChannel) -> None:
        assert isinstance(chan, AgiSession)
        got.append(await chan.execute("EXEC Dial PJSIP/agent1001,30", timeout=5.0))

    server = await agi_server(handler, command_timeout_s=0.05)
    ast = await FakeAsterisk.connect(server.port, header_bytes())
    await ast.command()
    await asyncio.sleep(0.15)  # longer than the default, inside the override
    ast.reply("200 result=0\n")
    assert await ast.closed_by_server()
    assert got == [AgiReply(200, "0", "")]


async def test_cr_lf_in_a_command_is_refused_before_sending(agi_server) -> None:
    async def handler(chan: AgiChannel) -> None:
        for bad in ("SET VARIABLE NOTE x\nEXEC Hangup", "SET VARIABLE NOTE x\r", "", "   ", "A\0B"):
            with pytest.raises(AgiCommandRejected):
                await chan.execute(bad)
        await chan.execute("NOOP")

    server = await agi_server(handler)
    ast = await FakeAsterisk.connect(server.port, header_bytes())
    assert await ast.command() == "NOOP"  # the first thing on the wire
    ast.reply("200 result=0\n")
    assert await ast.closed_by_server()


async def test_handler_crash_is_isolated_and_flags_the_channel(agi_server, caplog) -> None:
    calls = 0

    async def handler(chan: AgiChannel) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("IVR bug")
        await chan.execute("ANSWER")

    server = await agi_server(handler)
    with caplog.at_level(logging.ERROR):
        first = await FakeAsterisk.connect(server.port, header_bytes())
        assert await first.command() == f"SET VARIABLE {FAILED_VARIABLE} 1"
        first.reply("200 result=1\n")
        assert await first.closed_by_server()
    assert "IVR bug" in caplog.text and server.failed_total == 1
    second = await FakeAsterisk.connect(server.port, header_bytes())
    assert await second.command() == "ANSWER"
    second.reply("200 result=0\n")
    assert await second.closed_by_server()
    assert server.sessions_total == 2 and server.active_sessions == 0


async def test_close_ends_active_sessions(agi_server) -> None:
    started = asyncio.Event()
    cancelled: list[bool] = []

    async def handler(chan: AgiChannel) -> None:
        started.set()
        try:
            await chan.execute("EXEC MusicOnHold default")
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    server = await agi_server(handler)
    ast = await FakeAsterisk.connect(server.port, header_bytes())
    await ast.command()
    await started.wait()
    assert server.active_sessions == 1
    await server.close()
    assert cancelled == [True] and server.active_sessions == 0
    assert await ast.closed_by_server()


async def test_port_in_use_is_a_clear_error(agi_server) -> None:
    async def handler(chan: AgiChannel) -> None:
        return None

    first = await agi_server(handler)
    second = FastAGIServer("127.0.0.1", first.port, handler)
    with pytest.raises(OSError, match=f"FastAGI cannot listen on 127.0.0.1:{first.port}"):
        await second.start()


# --- pure parsing --------------------------------------------------------------------
@pytest.mark.parametrize(("line", "reply"), [
    ("200 result=1", AgiReply(200, "1", "")),
    ("200 result=-1", AgiReply(200, "-1", "")),
    ("200 result=1 (timeout)", AgiReply(200, "1", "timeout")),
    ("200 result=0 (timeout) endpos=1234", AgiReply(200, "0", "timeout endpos=1234")),
    ("200 result=0 endpos=8000", AgiReply(200, "0", "endpos=8000")),
    ("200 result=49 (dtmf) endpos=160", AgiReply(200, "49", "dtmf endpos=160")),
    ("200 result=1 (国网 (客户))", AgiReply(200, "1", "国网 (客户)")),
    ("200 result=", AgiReply(200, "", "")),
])
def test_parse_reply_line(line: str, reply: AgiReply) -> None:
    assert parse_reply_line(line) == reply


@pytest.mark.parametrize("line", ["", "hello", "200", "200 ok", "2000 result=1",
                                  "510 Invalid or unknown command"])
def test_bad_reply_lines_are_errors(line: str) -> None:
    with pytest.raises(AgiReplyError):
        parse_reply_line(line)


def test_script_path_from_either_header() -> None:
    assert script_path({"agi_network_script": "ivr?tree=main&lang=zh"}) == (
        "ivr", {"tree": "main", "lang": "zh"})
    assert script_path({"agi_request": "agi://10.0.0.5:4573/outbound/notice?campaign=7"}) == (
        "outbound/notice", {"campaign": "7"})
    assert script_path({"agi_network_script": "/ivr/"}) == ("ivr", {})
    assert script_path({}) == ("", {})
    assert reply_endpos(AgiReply(200, "0", "timeout")) is None
