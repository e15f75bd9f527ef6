"""The Asterisk test harness ends callers an earlier test left in the fallback queue, and no one else's; the
first session on a sandbox starts with an empty recording spool."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from ctiserver.sandbox import chroot as sandbox
from tests.asterisk_fixture import RECORDING_SPOOL, AmiRecorder, discard_spooled_recordings, event_is, originate_caller


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again: nobody listens there


async def test_a_caller_left_in_the_fallback_queue_is_hung_up_by_the_next_test(
        asterisk_sandbox: sandbox.SandboxInfo) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    live_port = server.sockets[0].getsockname()[1]
    first = AmiRecorder(asterisk_sandbox)
    await first.start()
    try:
        # one caller whose CTI is gone (the earlier test's server stopped), one whose CTI still listens
        # (it drops the FastAGI connection at once, so this caller reaches the fallback queue too)
        await originate_caller(first, "13900000071", hold_s=120, agi=f"127.0.0.1:{_dead_port()}")
        await originate_caller(first, "13900000072", hold_s=120, agi=f"127.0.0.1:{live_port}")
        await first.wait_for(event_is("QueueCallerJoin", Queue="fallback"), timeout=60, count=2)
        first.originated.clear()  # as if the test that placed them had forgotten them
        nxt = AmiRecorder(asterisk_sandbox)
        await nxt.start()  # hangs up the orphan
        try:
            await nxt.wait_for(lambda m: m.get("Event") == "QueueCallerAbandon"
                               and m.get("CallerIDNum") == "13900000071", timeout=30)
            left = (await nxt.action("CoreShowChannels")).events
            assert any(m.get("CallerIDNum") == "13900000072" and m.get("Application") == "Queue" for m in left)
        finally:
            nxt.originated.add("13900000072")
            await nxt.hang_up_callers()
            await nxt.close()
    finally:
        await first.close()
        server.close()
        await server.wait_closed()


def test_recordings_left_in_the_spool_are_discarded_by_the_first_session(tmp_path: Path) -> None:
    spool = tmp_path / RECORDING_SPOOL
    spool.mkdir(parents=True)
    for name in ("load1-1700000000.1-1001-1700000000000-caller.wav", "load1-1700000000.1-1001-1700000000000.done"):
        (spool / name).write_bytes(b"RIFF")
    discard_spooled_recordings(tmp_path)
    assert spool.is_dir() and not list(spool.iterdir())
    discard_spooled_recordings(tmp_path / "no-such-root")  # a chroot without a spool yet: nothing to do
