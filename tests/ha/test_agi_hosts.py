"""The dialplan's ordered FastAGI hosts ([cti-agi] in asterisk/extensions.conf), on the real sandbox Asterisk.

A caller's CTI_AGI lists four hosts: one refusing connections (a dead node), one ending the session at once
without CTI_DONE (a standby), one that dies mid-session (a leader killed), and one that takes the call. Each
is tried in turn with the same path; each retry carries CTI_RESUME = its host's place in the list; nobody
falls back.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from tests.asterisk_fixture import AmiRecorder, event_is, originate_caller

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[str]]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _command(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str) -> str:
    writer.write(line.encode() + b"\n")
    return (await asyncio.wait_for(reader.readline(), 10)).decode().strip()


async def _resume(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    reply = await _command(reader, writer, "GET VARIABLE CTI_RESUME")  # 200 result=1 (3) / 200 result=0
    return reply.partition("(")[2].rstrip(")")


async def _standby(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    resume = await _resume(reader, writer)
    writer.close()  # ends the session without CTI_DONE: the dialplan moves on
    return resume


async def _dies(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    resume = await _resume(reader, writer)
    writer.transport.abort()  # a kill -9: the socket is reset, no goodbye
    return resume


async def _takes_the_call(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
    resume = await _resume(reader, writer)
    await _command(reader, writer, "SET VARIABLE CTI_DONE 1")
    writer.close()
    return resume


async def test_each_host_is_tried_in_order_and_a_retry_says_it_resumes(ami: AmiRecorder):
    seen: list[tuple[str, str, str]] = []
    done = asyncio.Event()
    servers = []

    def host(name: str, script: Script) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                                    Awaitable[None]]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = (await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)).decode()
            script_path = next(v for k, _, v in (ln.partition(": ") for ln in head.splitlines())
                               if k == "agi_network_script")
            resume = await script(reader, writer)
            seen.append((name, script_path, resume))
            if name == "leader":
                done.set()
        return handle

    hosts = [f"127.0.0.1:{_closed_port()}"]
    for name, script in (("standby", _standby), ("dying", _dies), ("leader", _takes_the_call)):
        server = await asyncio.start_server(host(name, script), "127.0.0.1", 0)
        servers.append(server)
        hosts.append(f"127.0.0.1:{server.sockets[0].getsockname()[1]}")
    try:
        await originate_caller(ami, "13900000301", hold_s=10, agi="|".join(hosts))
        await asyncio.wait_for(done.wait(), 30)
    finally:
        for server in servers:
            server.close()
    # the standby after a refused host gets no CTI_RESUME: that host never had the caller
    assert seen == [("standby", "ivr", ""), ("dying", "ivr", "3"), ("leader", "ivr", "4")]
    hangup = await ami.wait_for(lambda m: m.get("Event") == "Hangup" and m.get("CallerIDNum") == "13900000301")
    linked = hangup[0].get("Linkedid")
    assert not ami.matching(lambda m: event_is("UserEvent", UserEvent="CtiFallback")(m)
                            and m.get("Linkedid") == linked)


async def test_the_list_wraps_around_once_to_reach_a_leader_earlier_in_it(ami: AmiRecorder):
    """The first host refuses new callers (a standby about to lead); the second takes the caller and dies
    (the old leader, later in the list): the caller comes back to the first, now with CTI_RESUME=1."""
    seen: list[tuple[str, str]] = []
    done = asyncio.Event()
    calls = {"first": 0}

    async def first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)
        calls["first"] += 1
        resume = await _resume(reader, writer)
        seen.append(("first", resume))
        if calls["first"] == 2:
            await _command(reader, writer, "SET VARIABLE CTI_DONE 1")
            done.set()
        writer.close()

    async def second(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)
        seen.append(("second", await _resume(reader, writer)))
        writer.transport.abort()

    servers = [await asyncio.start_server(h, "127.0.0.1", 0) for h in (first, second)]
    try:
        await originate_caller(ami, "13900000303", hold_s=10,
                               agi="|".join(f"127.0.0.1:{s.sockets[0].getsockname()[1]}" for s in servers))
        await asyncio.wait_for(done.wait(), 30)
    finally:
        for server in servers:
            server.close()
    assert seen == [("first", ""), ("second", "2"), ("first", "1")]


async def test_a_caller_no_host_takes_falls_back_after_the_last(ami: AmiRecorder):
    hosts = "|".join(f"127.0.0.1:{_closed_port()}" for _ in range(3))
    await originate_caller(ami, "13900000302", hold_s=5, agi=hosts)
    fallback = await ami.wait_for(lambda m: event_is("UserEvent", UserEvent="CtiFallback")(m), timeout=20)
    assert fallback[0].get("AgiStatus") == "FAILURE"
    join = await ami.wait_for(event_is("QueueCallerJoin", Queue="fallback"))
    assert join[0].get("CallerIDNum") == "13900000302"
