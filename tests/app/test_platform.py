"""Platform acceptance: `ctiserver serve` against the real sandbox Asterisk records every call.

The server runs as a real subprocess (the command an operator types); calls are
placed in Asterisk with AMI Originate; the test then reads the event store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ctiserver.events import Kind
from ctiserver.sandbox import chroot as sandbox
from ctiserver.store.engine import make_engine
from ctiserver.store.query import fetch_events
from tests.asterisk_fixture import AmiRecorder
from tests.pgutil import fresh_database

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """`ctiserver serve` in a subprocess with its own config folder and ports."""

    def __init__(self, tmp: Path, db_url: str, info: sandbox.SandboxInfo) -> None:
        self.dir = tmp / "cti"
        self.config = self.dir / "config"
        shutil.copytree(REPO / "config", self.config)  # the sample hotline's IVR, ACD, KPI... config
        self.http_port, self.agi_port = free_port(), free_port()
        (self.config / "ctiserver.yaml").write_text(f"""
asterisk:
  - name: pbx1
    host: {info.ami_host}
    port: {info.ami_port}
    username: {info.ami_user}
    secret_env: TEST_AMI_SECRET
    ping_interval_s: 1
    ping_timeout_s: 2
    reconnect_min_s: 0.2
    reconnect_max_s: 2
database:
  url: {db_url}
  flush_interval_s: 0.1
  journal: var/journal.jsonl
http: {{host: 127.0.0.1, port: {self.http_port}}}
agi: {{host: 127.0.0.1, port: {self.agi_port}}}
""", encoding="utf-8")
        self.log = open(self.dir / "serve.log", "wb")  # closed in stop()
        env = {**os.environ, "TEST_AMI_SECRET": info.ami_secret}
        self.proc = subprocess.Popen([sys.executable, "-m", "ctiserver", "serve", "--config", str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir, env=env)

    def health(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/healthz", timeout=2) as r:
                return dict(json.load(r))
        except urllib.error.HTTPError as exc:  # 503 while degraded still carries the body
            return dict(json.load(exc))

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=2) as r:
            return str(r.read().decode())

    async def wait_healthy(self, timeout: float = 120.0, **want: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"ctiserver exited {self.proc.returncode}: {self.log_text()[-3000:]}")
            try:
                last = self.health()
                if last["status"] == "ok" and all(last["ami"]["pbx1"].get(k) == v for k, v in want.items()):
                    return last
            except OSError as exc:
                last = exc
            await asyncio.sleep(0.2)
        raise AssertionError(f"server not healthy: {last}\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return (self.dir / "serve.log").read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        return int(self.proc.returncode)


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'cti.db'}"
    else:
        # per process: test sessions running side by side on one PostgreSQL must not share (and drop) it
        yield await fresh_database(f"ctitest_platform_{os.getpid()}")


async def call_events(db_url: str, call_id: str, want: set[str], timeout: float = 60.0) -> list[Any]:
    engine = make_engine(db_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            rows = await fetch_events(engine, call_id=call_id)
            if want <= {e.kind for e in rows} or time.monotonic() > deadline:
                return rows
            await asyncio.sleep(0.3)
    finally:
        await engine.dispose()


async def place_call(ami: AmiRecorder, agent: str, talk_s: int = 1) -> str:
    """An answered Local call that hangs up by itself; returns its call id (the Linkedid).

    The channel gets our own ChannelId, so no other call on the shared sandbox can be mistaken for it."""
    await ami.setvar(f"AGENT_{agent}_MODE", "answer")
    await ami.setvar(f"AGENT_{agent}_TALK", str(talk_s))
    await ami.setvar(f"AGENT_{agent}_RING", "0")
    channel_id = f"plat-{uuid.uuid4().hex[:16]}"
    (await ami.action("Originate", {"Channel": f"Local/{agent}@sim-agents", "Application": "Wait", "Data": "2",
                                     "Async": "true", "CallerID": '"王五" <13900000001>',
                                     "ChannelId": channel_id})).raise_for_error()
    try:
        await ami.wait_for(lambda m: m.get("Event") == "Hangup" and m.get("Uniqueid") == channel_id, timeout=20)
    finally:
        await ami.setvar(f"AGENT_{agent}_MODE", "")  # leave no answering sim agent behind for other tests
    return channel_id  # the first channel of a call: its Uniqueid is the call's Linkedid


LIFECYCLE = {Kind.CALL_NEW, Kind.CALL_ANSWER, Kind.CALL_HANGUP, Kind.CALL_END}


def ami_stamp(ami: AmiRecorder, event: str, call_id: str, *, last: bool = False) -> float:
    """Asterisk's Timestamp of the first (or last) `event` of a call, as the recorder received it."""
    stamps = [m.timestamp for m in ami.events if m.get("Event") == event and m.get("Linkedid") == call_id]
    assert stamps and None not in stamps, f"{event} of {call_id} without Timestamp (manager.conf timestampevents)"
    return float(max(stamps) if last else min(stamps))


async def asterisk_duration(ami: AmiRecorder, call_id: str) -> float:
    """A call's length by Asterisk's clock: first Newchannel to the Hangup of its last channel."""
    def all_gone(_: Any) -> bool:
        def uids(name: str) -> set[str]:
            return {m.get("Uniqueid") for m in ami.events if m.get("Event") == name and m.get("Linkedid") == call_id}
        return bool(uids("Newchannel")) and uids("Newchannel") <= uids("Hangup")
    await ami.wait_for(all_gone, timeout=20)
    return ami_stamp(ami, "Hangup", call_id, last=True) - ami_stamp(ami, "Newchannel", call_id)


async def test_serve_records_a_call_lifecycle(asterisk_sandbox, ami: AmiRecorder, db_url: str, tmp_path: Path):
    server = ServeProcess(tmp_path, db_url, asterisk_sandbox)
    try:
        await server.wait_healthy(connected=True)
        call_id = await place_call(ami, "1008")
        rows = await call_events(db_url, call_id, LIFECYCLE)
        kinds = [e.kind for e in rows]
        assert LIFECYCLE <= set(kinds), kinds
        assert kinds.index(Kind.CALL_NEW) < kinds.index(Kind.CALL_ANSWER) < kinds.index(Kind.CALL_END)
        assert kinds[-1] == Kind.CALL_END
        end = rows[-1]
        # the duration is what Asterisk saw: its own Timestamps, from the first channel to the last hang-up,
        # however late the server (on a busy machine) read those events
        assert end.data["answered"] is True
        assert end.data["duration_s"] == pytest.approx(await asterisk_duration(ami, call_id), abs=0.0015)
        assert end.data["duration_s"] >= 1.0  # the agent talked 1 s by Asterisk's clock
        new, answer = rows[kinds.index(Kind.CALL_NEW)], rows[kinds.index(Kind.CALL_ANSWER)]
        assert new.ts == ami_stamp(ami, "Newchannel", call_id)
        assert end.ts == ami_stamp(ami, "Hangup", call_id, last=True)
        assert new.ts < answer.ts < end.ts
        assert all(e.server == "pbx1" for e in rows)
        metrics = server.metrics()
        assert 'ctiserver_ami_connected{server="pbx1"} 1' in metrics
        assert "ctiserver_db_up 1" in metrics
    finally:
        assert server.stop() == 0, server.log_text()[-2000:]
    assert "Traceback" not in server.log_text()


async def start_long_call(ami: AmiRecorder, agent: str) -> str:
    """An answered Local call that lasts until `hang_up`; returns its call id once it is answered."""
    await ami.setvar(f"AGENT_{agent}_MODE", "answer")
    await ami.setvar(f"AGENT_{agent}_TALK", "120")
    await ami.setvar(f"AGENT_{agent}_RING", "0")
    channel_id = f"plat-{uuid.uuid4().hex[:16]}"
    try:
        (await ami.action("Originate", {"Channel": f"Local/{agent}@sim-agents", "Application": "Wait",
                                         "Data": "120", "Async": "true", "ChannelId": channel_id})
         ).raise_for_error()
        await ami.wait_for(lambda m: m.get("Event") == "Newstate" and m.get("Linkedid") == channel_id
                           and m.get("ChannelState") == "6", timeout=20)
    finally:
        await ami.setvar(f"AGENT_{agent}_MODE", "")
    return channel_id


async def hang_up(ami: AmiRecorder, call_id: str) -> None:
    [new] = [m for m in ami.events if m.get("Event") == "Newchannel" and m.get("Uniqueid") == call_id]
    (await ami.action("Hangup", {"Channel": new.get("Channel")})).raise_for_error("Hangup")


async def wait_live_calls(server: ServeProcess, n: int, timeout: float = 120.0) -> None:
    """Until the server's resync adopted `n` live calls (it reports them in /healthz)."""
    deadline = time.monotonic() + timeout
    while server.health().get("live_calls", 0) < n:
        assert time.monotonic() < deadline, server.log_text()[-2000:]
        await asyncio.sleep(0.2)


async def test_a_restarted_server_records_a_live_call_once_and_measures_it_whole(
        asterisk_sandbox, ami: AmiRecorder, db_url: str, tmp_path: Path):
    """Item 24: the CTI restarts mid-call. The new process adopts the call from Asterisk's channel list
    without a second call.new (nor call.leg/call.answer), and its call.end measures the whole call from
    the call.new the first process wrote, as Asterisk timed it, not from the restart."""
    first = ServeProcess(tmp_path / "first", db_url, asterisk_sandbox)
    call_id = ""
    try:
        await first.wait_healthy(connected=True)
        call_id = await start_long_call(ami, "1009")
        await call_events(db_url, call_id, {Kind.CALL_NEW, Kind.CALL_ANSWER})
        assert first.stop() == 0, first.log_text()[-2000:]
        before = await call_events(db_url, call_id, set())  # all the first process wrote (it flushed on stop)
        second = ServeProcess(tmp_path / "second", db_url, asterisk_sandbox)
        try:
            await second.wait_healthy(connected=True)
            await wait_live_calls(second, 1)
            await hang_up(ami, call_id)
            rows = await call_events(db_url, call_id, LIFECYCLE, timeout=60)
        finally:
            assert second.stop() == 0, second.log_text()[-2000:]
    finally:
        first.stop()
        if call_id:
            with contextlib.suppress(Exception):
                await hang_up(ami, call_id)
    kinds = [e.kind for e in rows]
    assert kinds.count(Kind.CALL_NEW) == 1 and kinds.count(Kind.CALL_END) == 1, kinds
    starts = {Kind.CALL_NEW, Kind.CALL_LEG, Kind.CALL_ANSWER}
    assert [e for e in rows if e.kind in starts] == [e for e in before if e.kind in starts], "nothing recorded twice"
    end = rows[-1]
    assert end.kind == Kind.CALL_END and end.data["answered"] is True
    assert end.data["duration_s"] == pytest.approx(await asterisk_duration(ami, call_id), abs=0.0015)


async def test_a_call_that_ended_while_no_server_ran_is_closed_at_the_next_start(
        asterisk_sandbox, ami: AmiRecorder, db_url: str, tmp_path: Path):
    """The CTI stops mid-call and the call ends before it is back: the next process finds the call.new with
    no call.end and the call gone from Asterisk, and records its end once, saying why (it was counted as
    still going on, a waiting caller as waiting, for hours)."""
    first = ServeProcess(tmp_path / "first", db_url, asterisk_sandbox)
    call_id = ""
    try:
        await first.wait_healthy(connected=True)
        call_id = await start_long_call(ami, "1009")
        await call_events(db_url, call_id, {Kind.CALL_NEW, Kind.CALL_ANSWER})
        assert first.stop() == 0, first.log_text()[-2000:]
    finally:
        first.stop()
        if call_id:
            with contextlib.suppress(Exception):
                await hang_up(ami, call_id)

    def of_call(event: str) -> set[str]:
        return {str(m.get("Uniqueid")) for m in ami.events if m.get("Event") == event and m.get("Linkedid") == call_id}

    await ami.wait_for(lambda m: bool(of_call("Newchannel")) and of_call("Hangup") >= of_call("Newchannel"),
                       timeout=20)  # every channel of the call is gone before the CTI is back
    second = ServeProcess(tmp_path / "second", db_url, asterisk_sandbox)
    try:
        await second.wait_healthy(connected=True)
        rows = await call_events(db_url, call_id, {Kind.CALL_NEW, Kind.CALL_END}, timeout=60)
    finally:
        assert second.stop() == 0, second.log_text()[-2000:]
    kinds = [e.kind for e in rows]
    assert kinds.count(Kind.CALL_NEW) == 1 and kinds.count(Kind.CALL_END) == 1, (kinds, second.log_text()[-3000:])
    end = rows[-1]
    assert end.kind == Kind.CALL_END and end.data == {"reason": "ended while no CTI was running", "resynced": True}
    # (the database may hold earlier tests' calls left open too: they are closed alike)
    assert re.search(r"\d+ call\(s\) ended while no CTI was running: call.end recorded", second.log_text())


async def test_a_call_that_began_while_the_server_was_down_is_measured_from_its_creation(
        asterisk_sandbox, ami: AmiRecorder, db_url: str, tmp_path: Path):
    """Item 24: no record of the call at all (it began while no CTI ran): adopted with one call.new, and
    its duration starts at the channel's creation as Asterisk lists it (whole seconds: within 0.5 s),
    not at the resync."""
    call_id = await start_long_call(ami, "1009")
    server = ServeProcess(tmp_path, db_url, asterisk_sandbox)
    try:
        await server.wait_healthy(connected=True)
        await wait_live_calls(server, 1)
        await hang_up(ami, call_id)
        rows = await call_events(db_url, call_id, LIFECYCLE, timeout=60)
    finally:
        assert server.stop() == 0, server.log_text()[-2000:]
        with contextlib.suppress(Exception):
            await hang_up(ami, call_id)
    kinds = [e.kind for e in rows]
    assert kinds.count(Kind.CALL_NEW) == 1 and rows[0].data["resynced"] is True, kinds
    end = rows[-1]
    assert end.kind == Kind.CALL_END
    assert end.data["duration_s"] == pytest.approx(await asterisk_duration(ami, call_id), abs=0.55)
    engine = make_engine(db_url)
    try:
        connected = (await fetch_events(engine, kinds=[Kind.AMI_CONNECTED]))[0]  # its first login
    finally:
        await engine.dispose()
    assert connected.ts - rows[0].ts > 1.0  # the server came up well after the call began: measured from the latter


async def test_server_survives_asterisk_restart(asterisk_sandbox, db_url: str, tmp_path: Path):
    server = ServeProcess(tmp_path, db_url, asterisk_sandbox)
    try:
        await server.wait_healthy(connected=True)
        await asyncio.to_thread(sandbox.restart)
        health = await server.wait_healthy(timeout=120)
        deadline = time.monotonic() + 30
        while health["ami"]["pbx1"]["reconnects"] < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.3)
            health = server.health()
        assert health["ami"]["pbx1"]["connected"] and health["ami"]["pbx1"]["reconnects"] >= 1
        rec = AmiRecorder(asterisk_sandbox)
        await rec.start()
        try:
            call_id = await place_call(rec, "1007")
        finally:
            await rec.close()
        rows = await call_events(db_url, call_id, LIFECYCLE)
        assert LIFECYCLE <= {e.kind for e in rows}
        engine = make_engine(db_url)
        try:
            connects = await fetch_events(engine, kinds=[Kind.AMI_CONNECTED])
            lost = await fetch_events(engine, kinds=[Kind.AMI_LOST])
        finally:
            await engine.dispose()
        assert len(connects) >= 2 and connects[-1].data["restarted"] is True
        assert lost, "the drop itself is recorded"
    finally:
        assert server.stop() == 0, server.log_text()[-2000:]


async def test_serve_exits_1_on_bad_config(tmp_path: Path):
    (tmp_path / "ctiserver.yaml").write_text("asterisk:\n  - name: pbx1\n    port: 5038\n    colour: red\n")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "ctiserver", "serve", "--config",
                                                str(tmp_path), stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert f"{tmp_path / 'ctiserver.yaml'}:4: unknown key 'colour'" in err.decode()


async def test_ami_ready_probe_refuses_wrong_port():
    assert sandbox.ami_ready(port=free_port(), timeout=0.5) is False

