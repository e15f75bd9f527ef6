"""pytest plugin: the real sandbox Asterisk for integration tests, plus an AMI event recorder.

CI builds and starts it (scripts/setup.sh installs debootstrap); these tests never skip.

Several pytest sessions on one machine (teammates, or CI shards) share one running
sandbox: each session holds a lease (a file named by its pid, under a lock) and only
the last one out stops Asterisk. They share one sounds folder too (prompt files are
named by content hash), `<root>.test-sounds` unless CTISERVER_TEST_SOUNDS says
otherwise, so a second session finds the sandbox it needs and does not restart it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ctiserver import sandbox
from ctiserver.ami.client import AmiClient
from ctiserver.config import AmiServer

LEASES = "ctiserver-leases"


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One session at a time decides whether to start or stop the shared sandbox."""
    lock = root.with_name(root.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _live_leases(root: Path) -> list[int]:
    """Pids of sessions using the sandbox; leases of dead sessions are removed."""
    folder = root / LEASES
    alive = []
    for lease in folder.glob("*") if folder.exists() else []:
        if lease.name.isdigit() and _pid_alive(int(lease.name)):
            alive.append(int(lease.name))
        else:
            lease.unlink(missing_ok=True)
    return alive


def shared_sounds_dir(root: Path) -> Path:
    return Path(os.environ.get("CTISERVER_TEST_SOUNDS") or root.with_name(root.name + ".test-sounds"))


@pytest.fixture(scope="session")
def asterisk_sandbox() -> Iterator[sandbox.SandboxInfo]:
    root = sandbox.ensure_chroot(None).resolve()
    with _locked(root):
        info = sandbox.up(root, sounds_dir=shared_sounds_dir(root))
        (root / LEASES).mkdir(exist_ok=True)
        (root / LEASES / str(os.getpid())).touch()
    try:
        yield info
    finally:
        with _locked(root):
            (root / LEASES / str(os.getpid())).unlink(missing_ok=True)
            if not _live_leases(root):
                sandbox.down(root)


def ami_server_config(info: sandbox.SandboxInfo, **overrides: Any) -> AmiServer:
    return AmiServer(name="pbx1", host=info.ami_host, port=info.ami_port, username=info.ami_user,
                     secret=info.ami_secret, **overrides)


class AmiRecorder:
    """An AMI client that keeps every event, for tests to wait on."""

    def __init__(self, info: sandbox.SandboxInfo) -> None:
        self.events: list[Any] = []
        self._changed = asyncio.Event()
        self.client = AmiClient(ami_server_config(info), on_event=self._on_event)

    def _on_event(self, msg: Any) -> None:
        self.events.append(msg)
        self._changed.set()

    async def start(self) -> None:
        await self.client.start()
        await self.client.wait_connected(15)

    async def close(self) -> None:
        await self.client.close()

    async def action(self, name: str, fields: dict[str, Any] | None = None) -> Any:
        return await self.client.action(name, fields or {})

    async def setvar(self, name: str, value: str) -> None:
        """Set a dialplan global (no Channel)."""
        (await self.action("Setvar", {"Variable": name, "Value": value})).raise_for_error("Setvar")

    def matching(self, pred: Callable[[Any], bool]) -> list[Any]:
        return [e for e in self.events if pred(e)]

    async def wait_for(self, pred: Callable[[Any], bool], timeout: float = 20.0, count: int = 1) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.matching(pred)
            if len(found) >= count:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                names = [e.get("Event") for e in self.events[-30:]]
                raise AssertionError(f"timed out waiting for {count} matching AMI events; last events: {names}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=min(left, 0.5))
            except TimeoutError:
                pass


@pytest.fixture
async def ami(asterisk_sandbox: sandbox.SandboxInfo) -> AsyncIterator[AmiRecorder]:
    rec = AmiRecorder(asterisk_sandbox)
    await rec.start()
    try:
        yield rec
    finally:
        await rec.close()


def event_is(name: str, **headers: str) -> Callable[[Any], bool]:
    def pred(msg: Any) -> bool:
        if msg.get("Event") != name:
            return False
        return all((msg.get(k) or "") == v for k, v in headers.items())
    return pred


async def originate_caller(rec: AmiRecorder, number: str, plan: str, *, name: str = "", hold_s: int = 60,
                           exten: str = "95598", agi: str | None = None) -> None:
    """A simulated caller dialling the hotline, pressing keys per `plan` (e.g. `w4|1|w6|0`).

    `agi` ("host:port") sends this caller's IVR to that FastAGI server (a channel variable
    beats the dialplan global, so concurrent test sessions do not steal each other's callers)."""
    caller_id = f'"{name}" <{number}>' if name else number
    variables = [f"SIM_CALLER_NUM={number}", f"DTMF_PLAN={plan}", f"HOLD_S={hold_s}"]
    if agi:
        variables.append(f"CTI_AGI={agi}")
    if name:
        variables.append(f"SIM_CALLER_NAME={name}")
    (await rec.action("Originate", {
        "Channel": f"Local/{exten}@hotline", "Context": "sim-callers", "Exten": "s", "Priority": "1",
        "CallerID": caller_id, "Async": "true", "Variable": variables,
    })).raise_for_error("Originate")


def sounds_dir(info: sandbox.SandboxInfo) -> Path:
    assert info.sounds_dir is not None
    return Path(info.sounds_dir)
