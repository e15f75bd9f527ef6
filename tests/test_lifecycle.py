"""One lifecycle: the server as `ctiserver serve` builds it starts, stops and starts again in one process and
leaves no task or socket behind; a start that fails half-way stops what it started; the leader features (ACD,
dialer, callbacks) stop and start again at runtime while HTTP keeps serving. And the pieces: FeatureGroup and
TaskOwner (ctiserver/lifecycle.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from ctiserver.acd.model import ScheduleCallback
from ctiserver.app import settings
from ctiserver.app.server import CtiServer, run_until_signalled
from ctiserver.app.wiring import build_server
from ctiserver.lifecycle import Feature, FeatureGroup, TaskOwner
from tests.production import PASSWORD, Running, edit_yaml, production_config

# --- what a process holds ------------------------------------------------------------------------------


def open_fds() -> dict[int, str]:
    """This process's open file descriptors and what they point at (socket:[inode], pipe:[..], paths)."""
    out: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            out[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return out


class Snapshot:
    """Tasks and descriptors before; `left_behind()` says what is there now that was not then."""

    def __init__(self) -> None:
        self.tasks = set(asyncio.all_tasks())
        self.fds = open_fds()

    async def left_behind(self, settle_s: float = 15.0) -> tuple[list[str], list[str]]:
        """What is still there, once what is already closing has closed: a transport's close runs on the
        next loop turns and a database driver's thread closes its file when it gets the CPU (late on a busy
        machine), so the answer is the first empty look, or the last look after `settle_s`."""
        deadline = asyncio.get_running_loop().time() + settle_s
        while True:
            await asyncio.sleep(0)
            tasks = sorted(t.get_name() for t in asyncio.all_tasks() - self.tasks if not t.done())
            fds = sorted(f"{fd}->{target}" for fd, target in open_fds().items() if self.fds.get(fd) != target)
            if (not tasks and not fds) or asyncio.get_running_loop().time() > deadline:
                return tasks, fds
            await asyncio.sleep(0.05)


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A port that is bound, never listening: connects are refused, and it stays ours meanwhile."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


async def built(tmp: Path, ami_port: int) -> CtiServer:
    cfg_dir = production_config(tmp, ami_port)
    return await build_server(cfg_dir, settings.load_server(cfg_dir), base_dir=tmp)


async def healthz(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as r:
        await r.read()
        return r.status


async def test_the_server_starts_stops_and_starts_again_leaving_nothing_behind(tmp_path: Path) -> None:
    with refusing_port() as ami_port:
        server = await built(tmp_path, ami_port)
        before = Snapshot()
        ports = []
        for _ in range(2):
            await server.start()
            assert server.running and server.features.leader.running
            await server.features.ivr.wait_prerendered()
            ports.append(server.http_port)
            # 503: the AMI link is down (the port refuses); what matters is that the server answers
            assert await healthz(f"http://127.0.0.1:{server.http_port}") == 503
            names = {t.get_name() for t in asyncio.all_tasks()}
            assert {"acd-timer", "outbound-dialer", "acd-callbacks", "event-store-writer", "wallboard-kpi",
                    "desktop-bridge"} <= names, names
            await server.stop()
            assert not server.running and not server.features.leader.running
            left = await before.left_behind()
            assert left == ([], []), left
        with pytest.raises(aiohttp.ClientConnectionError):  # stopped: nobody listens any more
            await healthz(f"http://127.0.0.1:{ports[-1]}")


async def test_stop_runs_only_for_what_started_and_twice_is_harmless(tmp_path: Path) -> None:
    with refusing_port() as ami_port:
        server = await built(tmp_path, ami_port)
        before = Snapshot()
        await server.stop()  # never started: nothing to stop, nothing raised
        await server.start()
        await server.stop()
        await server.stop()
        assert await before.left_behind() == ([], [])


@asynccontextmanager
async def busy_port() -> AsyncIterator[int]:
    """A port someone else is listening on."""
    blocker = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    try:
        yield blocker.sockets[0].getsockname()[1]
    finally:
        blocker.close()
        await blocker.wait_closed()


@pytest.mark.parametrize("broken", ["http port in use", "database away"])
async def test_a_start_that_fails_leaves_nothing_running(tmp_path: Path, broken: str,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    async with busy_port() as taken:
        with refusing_port() as ami_port, refusing_port() as db_port:
            cfg_dir = production_config(tmp_path, ami_port)

            def change(data: dict[str, object]) -> None:
                if broken == "http port in use":
                    data["http"] = {"host": "127.0.0.1", "port": taken}
                else:  # the migration fails and retries in the background, the leader features start and
                    # wait for the database (the dialer and the callbacks retry their checks); HTTP cannot listen
                    data["database"] = {**data["database"],  # type: ignore[dict-item]
                                        "url": f"postgresql+asyncpg://cti:x@127.0.0.1:{db_port}/cti"}
                    data["http"] = {"host": "127.0.0.1", "port": taken}

            edit_yaml(cfg_dir / "ctiserver.yaml", change)
            server = await build_server(cfg_dir, settings.load_server(cfg_dir), base_dir=tmp_path)
            before = Snapshot()
            failing = taken  # with the database away the start goes on as far as HTTP (issue 13: it waits for it)
            with caplog.at_level(logging.INFO), pytest.raises(OSError, match=str(failing)):
                await server.start()
            assert not server.running
            assert await before.left_behind() == ([], [])
            if broken != "http port in use":
                assert "retrying in the background" in caplog.text  # the retry task existed, and is gone
            # a failed start can be followed by a stop (run_until_signalled does it) without harm
            await server.stop()
            assert await before.left_behind() == ([], [])


async def test_run_until_signalled_cleans_up_a_half_started_server(tmp_path: Path) -> None:
    async with busy_port() as taken:
        with refusing_port() as ami_port:
            cfg_dir = production_config(tmp_path, ami_port)
            edit_yaml(cfg_dir / "ctiserver.yaml", lambda d: d.update(http={"host": "127.0.0.1", "port": taken}))
            server = await build_server(cfg_dir, settings.load_server(cfg_dir), base_dir=tmp_path)
            before = Snapshot()
            ready = asyncio.Event()
            with pytest.raises(OSError):
                await run_until_signalled(server, ready)
            assert not ready.is_set()
            assert await before.left_behind() == ([], [])


async def agi_session(port: int, script: str) -> bytes:
    """One FastAGI session as Asterisk opens it; what the CTI sends back before it closes the socket
    (answering every command with 200 result=1)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"agi_network: yes\nagi_network_script: {script}\nagi_request: agi://127.0.0.1/{script}\n"
                     "agi_channel: PJSIP/caller-00000001\nagi_uniqueid: 1700000000.1\n"
                     "agi_callerid: 13900000001\n\n".encode())
        await writer.drain()
        got = b""
        while line := await asyncio.wait_for(reader.readline(), 10):
            got += line
            writer.write(b"200 result=1\n")
            await writer.drain()
        return got
    finally:
        writer.close()


async def test_the_leader_features_stop_and_start_again_while_http_serves(tmp_path: Path) -> None:
    with refusing_port() as ami_port:
        server = await built(tmp_path, ami_port)
        await server.start()
        try:
            running = Running(server, f"http://127.0.0.1:{server.http_port}")
            await running.add_user("2001", "supervisor")
            leader, outbound = server.features.leader, server.features.outbound
            assert leader.names == ["ACD", "agent phones", "outbound", "recording", "fallback queue", "SMS",
                                    "campaign SMS", "repair orders", "crew calls", "shift handover",
                                    "database retention", "KPI rollups"]
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
                await running.login(http, "2001", PASSWORD)
                campaigns = f"{running.url}/api/outbound/campaigns"
                async with http.get(campaigns) as r:
                    assert r.status == 200

                tasks_before = Snapshot()
                names_before = {t.get_name() for t in tasks_before.tasks}
                await leader.stop()
                assert outbound.service is None and outbound.callbacks is None
                assert await tasks_before.left_behind() == ([], [])
                gone = names_before - {t.get_name() for t in asyncio.all_tasks()}
                assert {"acd-timer", "outbound-dialer", "acd-callbacks", "wfm-handover-watch"} <= gone, gone

                # the rest keeps serving: the desktop, health, the outbound API says why it cannot answer
                async with http.get(f"{running.url}/api/me") as r:
                    assert r.status == 200
                async with http.get(campaigns) as r:
                    assert r.status == 503 and (await r.json())["error"]["id"] == "outbound_not_ready"
                # a caller sent to a queue gets no CTI_DONE: the dialplan's fallback takes them
                sent = await agi_session(server.agi.port, "queue/billing")
                assert b"CTI_DONE" not in sent and b"EXEC" not in sent, sent
                # the ACD asks for a callback meanwhile (a caller still in its session left a voicemail):
                # kept, and handed to the callbacks when they start again
                now = server.clock.now()
                server.features.hooks.on_callback(ScheduleCallback("in-77", "13900000077", "billing", "normal",
                                                                   now + 3600, "voicemail"))
                # a complaint closed meanwhile (on a standby, the same): its satisfaction callback is recorded
                # before the desktop is answered, and the callbacks plan it when they start again
                token = await running.login(http, "2001", PASSWORD)
                auth = {"Authorization": f"Bearer {token}"}
                async with http.post(f"{running.url}/api/workorders", headers=auth, json={
                        "call_id": "in-78", "incoming_number": "13900000078", "category": "complaint",
                        "customer_name": "李四", "content": "投诉：抄表员态度差"}) as r:
                    assert r.status == 201, await r.text()
                    wo = await r.json()
                status = f"{running.url}/api/workorders/{wo['id']}/status"
                for step in ({"status": "dispatched", "unit": "city_station"}, {"status": "resolved"},
                             {"status": "closed", "satisfaction_callback": True}):
                    async with http.post(status, headers=auth, json=step) as r:
                        assert r.status == 200, (step, r.status, await r.text())

                await leader.start()
                assert outbound.service is not None and outbound.callbacks is not None
                await outbound.callbacks.drain()
                [row] = await outbound.callbacks.store.by_origin("in-77")
                assert row.number == "13900000077" and row.reason == "voicemail"
                [row] = await outbound.callbacks.store.by_origin(f"wo-{wo['id']}")
                assert row.number == "13900000078" and row.reason == "workorder"
                async with http.get(campaigns) as r:
                    assert r.status == 200
                names = [t.get_name() for t in asyncio.all_tasks()]
                for name in ("acd-timer", "outbound-dialer", "acd-callbacks"):
                    assert names.count(name) == 1, (name, names)
        finally:
            await server.stop()


# --- the pieces --------------------------------------------------------------------------------------------


def recorder(log: list[str], name: str, *, fail_start: bool = False, fail_stop: bool = False) -> Feature:
    @asynccontextmanager
    async def feature() -> AsyncIterator[None]:
        log.append(f"start {name}")
        if fail_start:
            raise RuntimeError(f"{name} cannot start")
        try:
            yield
        finally:
            log.append(f"stop {name}")
            if fail_stop:
                raise RuntimeError(f"{name} cannot stop")

    return feature


async def test_a_group_stops_in_reverse_only_what_started(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    group = FeatureGroup("g", [("a", recorder(log, "a")), ("b", recorder(log, "b")),
                               ("c", recorder(log, "c", fail_start=True)), ("d", recorder(log, "d"))])
    with pytest.raises(RuntimeError, match="c cannot start"):
        await group.start()
    assert log == ["start a", "start b", "start c", "stop b", "stop a"] and not group.running
    log.clear()
    await group.stop()
    assert log == []


async def test_a_stop_that_fails_is_logged_once_and_the_others_still_stop(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    inner = FeatureGroup("inner", [("x", recorder(log, "x"))])
    group = FeatureGroup("g", [("a", recorder(log, "a")), ("b", recorder(log, "b", fail_stop=True)),
                               ("inner", inner)])
    await group.start()
    assert group.running and inner.running
    await inner.stop()  # at runtime, while the rest keeps running
    await inner.start()
    await group.stop()
    assert log == ["start a", "start b", "start x", "stop x", "start x", "stop x", "stop b", "stop a"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == ["g: stopping b failed"]
    await group.start()  # and again
    await group.stop()


async def test_a_task_owner_logs_a_failure_once_and_awaits_everything_on_close(
        caplog: pytest.LogCaptureFixture) -> None:
    cleaned = asyncio.Event()

    async def fails() -> None:
        raise ValueError("boom")

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # a cleanup that awaits: close() must wait for it
            cleaned.set()

    async with TaskOwner("feature") as tasks:
        failing = tasks.spawn(fails(), name="failing")
        tasks.spawn(forever(), name="forever")
        await asyncio.wait([failing])
        await asyncio.sleep(0)
        assert len(tasks) == 1
    assert cleaned.is_set() and len(tasks) == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["feature: task failing failed: boom"]
    assert errors[0].exc_info is not None  # with its traceback
