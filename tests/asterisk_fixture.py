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
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ctiserver.ami.client import AmiClient
from ctiserver.config import AmiServer
from ctiserver.sandbox import chroot as sandbox

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


async def _listening(host_port: str) -> bool:
    """Whether a FastAGI server accepts connections at `host:port`."""
    host, _, port = host_port.rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host or "127.0.0.1", int(port)), 5)
    except (OSError, ValueError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
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


RECORDING_SPOOL = "var/spool/asterisk/monitor/cti"  # config/recording.yaml's asterisk_dir, in the chroot


def discard_spooled_recordings(root: Path) -> None:
    """The first session on the sandbox starts with an empty recording spool: what is there was left by
    sessions and load tests that are gone (a load test stopped with hundreds unencoded), and the first
    recording test's server would otherwise encode all of it before the test's own call."""
    spool = root / RECORDING_SPOOL
    files = [f for f in spool.iterdir() if f.is_file()] if spool.is_dir() else []
    for f in files:
        f.unlink(missing_ok=True)
    if files:
        print(f"asterisk_fixture: removed {len(files)} file(s) left in the recording spool {spool}", file=sys.stderr)


@pytest.fixture(scope="session")
def asterisk_sandbox() -> Iterator[sandbox.SandboxInfo]:
    root = sandbox.ensure_chroot(None).resolve()
    with _locked(root):
        if not _live_leases(root):
            discard_spooled_recordings(root)
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
    fields: dict[str, Any] = {"name": "pbx1", "host": info.ami_host, "port": info.ami_port,
                              "username": info.ami_user, "secret": info.ami_secret}
    return AmiServer(**{**fields, **overrides})


WATCH_USER, WATCH_SECRET = "ctiwatch", "ctiwatch-sandbox"  # asterisk/manager.conf: the tests' own observer


class AmiRecorder:
    """An AMI client that keeps every event, for tests to wait on. It logs in as the tests' observer, who sees
    every event (the CTI's user does not get the bridges and music it never reads); `as_cti=True` logs in as
    the CTI's user, for a test of what that user may do and see."""

    def __init__(self, info: sandbox.SandboxInfo, *, as_cti: bool = False) -> None:
        self.info = info
        self._ears: CallerEars | None = None
        self.originated: set[str] = set()  # caller numbers, hung up when the test ends
        self._globals_before: dict[str, str] = {}
        self.events: list[Any] = []
        self.listeners: list[Callable[[str, Any], None]] = []  # as the CTI server's ami_listeners get them
        self._changed = asyncio.Event()
        who = {} if as_cti else {"username": WATCH_USER, "secret": WATCH_SECRET}
        self.client = AmiClient(ami_server_config(info, **who), on_event=self._on_event)

    def _on_event(self, msg: Any) -> None:
        self.events.append(msg)
        self._changed.set()
        for listener in self.listeners:
            listener("pbx1", msg)

    async def start(self) -> None:
        await self.client.start()
        await self.client.wait_connected(15)
        await self.hang_up_orphans()

    async def hang_up_orphans(self) -> list[str]:
        """End callers waiting in Asterisk's fallback Queue() whose CTI is gone: left over from an earlier
        test (a server stopped just as it placed a caller), they would give up or ring a sim agent in the
        middle of this test, seen by its server as Asterisk's fallback traffic. A caller of another live
        test session (CTI_TEST_SESSION = its pid) is left alone. Returns the channels hung up."""
        resp = (await self.action("CoreShowChannels")).raise_for_error("CoreShowChannels")
        ended = []
        for msg in resp.events:
            chan = msg.get("Channel") or ""
            if msg.get("Application") != "Queue" or not str(msg.get("ApplicationData") or "").startswith("fallback"):
                continue
            owner = (await self.action("Getvar", {"Channel": chan, "Variable": "CTI_TEST_SESSION"})).get("Value")
            if owner and owner.isdigit() and int(owner) != os.getpid() and _pid_alive(int(owner)):
                continue
            agi = (await self.action("Getvar", {"Channel": chan, "Variable": "CTI_AGI"})).get("Value") or ""
            if any([await _listening(host_port) for host_port in agi.split("|") if host_port]):
                continue
            with contextlib.suppress(Exception):
                await self.action("Hangup", {"Channel": chan})
                ended.append(chan)
        if ended:
            print(f"asterisk_fixture: hung up {len(ended)} orphaned fallback caller(s): {ended}", file=sys.stderr)
        return ended

    async def close(self) -> None:
        if self._ears is not None:
            await self._ears.close()
        await self.client.close()

    async def hang_up_callers(self) -> None:
        """End every channel of the callers this test originated: a caller left holding would
        fall back to Asterisk's Queue() and ring the next test's agents."""
        if not self.originated:
            return
        resp = (await self.action("CoreShowChannels")).raise_for_error("CoreShowChannels")
        for msg in resp.events:
            if self.originated & {msg.get("CallerIDNum"), msg.get("ConnectedLineNum")}:
                with contextlib.suppress(Exception):
                    await self.action("Hangup", {"Channel": msg.get("Channel") or ""})

    async def ears(self) -> CallerEars:
        """The simulated callers' ears, started on first use and closed with this recorder."""
        if self._ears is None:
            self._ears = CallerEars(self.info)
            await self._ears.start()
        return self._ears

    async def action(self, name: str, fields: dict[str, Any] | None = None) -> Any:
        return await self.client.action(name, fields or {})

    async def setvar(self, name: str, value: str) -> None:
        """Set a dialplan global (no Channel); it gets its old value back when the test ends."""
        if name not in self._globals_before:
            self._globals_before[name] = (await self.action("Getvar", {"Variable": name})).get("Value") or ""
        (await self.action("Setvar", {"Variable": name, "Value": value})).raise_for_error("Setvar")

    async def restore_globals(self) -> None:
        """Globals a test set (a sim agent told to answer) must not answer for the next test."""
        for name, value in self._globals_before.items():
            with contextlib.suppress(Exception):
                await self.action("Setvar", {"Variable": name, "Value": value})
        self._globals_before.clear()

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
        with contextlib.suppress(Exception):
            await rec.hang_up_callers()
        await rec.restore_globals()
        await rec.close()


@pytest.fixture
async def cti_ami(asterisk_sandbox: sandbox.SandboxInfo) -> AsyncIterator[AmiRecorder]:
    """An AMI recorder logged in as the CTI's own user (its rights, its event filters)."""
    rec = AmiRecorder(asterisk_sandbox, as_cti=True)
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


LISTENING = ("STREAM FILE", "WAIT FOR DIGIT", "GET DATA", "GET OPTION", "CONTROL STREAM FILE")


def listens_for(command: str, key: str) -> bool:
    """Does this AGI command read `key` from the caller (a prompt with it among its escape digits)?"""
    upper = command.upper()
    if upper.startswith(("WAIT FOR DIGIT", "GET DATA")):
        return True
    if upper.startswith(("STREAM FILE", "GET OPTION", "CONTROL STREAM FILE")):
        parts = command.split(None, 3)
        return len(parts) > 3 and key in parts[3].strip().strip('"')
    return False


class CallerEars:
    """Presses a simulated caller's keys when Asterisk is listening for them.

    A key sent while the CTI is between two AGI commands is thrown away by Asterisk, so a
    timed key plan (`w6|1`) fails on a busy machine. The ears (sandbox AMI user `simcaller`,
    read=agi) watch AGIExecStart on the caller's own channel and press each key as soon as a
    command that reads it has started: one step per command, in order."""

    def __init__(self, info: sandbox.SandboxInfo) -> None:
        self.events: list[Any] = []
        self._changed = asyncio.Event()
        self.client = AmiClient(ami_server_config(info, username="simcaller", secret="simcaller-sandbox"),
                                on_event=self._on_event)

    def _on_event(self, msg: Any) -> None:
        if msg.get("Event") == "AGIExecStart":
            self.events.append(msg)
            self._changed.set()

    async def start(self) -> None:
        await self.client.start()
        await self.client.wait_connected(15)

    async def close(self) -> None:
        await self.client.close()

    async def press(self, number: str, keys: list[str], since: int, timeout: float) -> None:
        used: set[tuple[str, str]] = set()
        seen = since
        loop = asyncio.get_running_loop()
        hit: str | None = None
        for key in keys:
            if key.startswith("!") and hit is not None:  # at once, on the channel of the step before: a key
                await self._play(hit, key[1:])  # the CTI hears from Asterisk's DTMF events, not a command
                continue
            deadline = loop.time() + timeout
            while True:
                hit = None
                for msg in self.events[seen:]:
                    seen += 1
                    chan = msg.get("Channel") or ""
                    ident = (chan, msg.get("CommandId") or "")
                    if msg.get("CallerIDNum") != number or ident in used:
                        continue
                    used.add(ident)
                    command = msg.get("Command") or ""
                    if key == ">" and command.upper().startswith("STREAM FILE"):
                        hit = chan
                        break
                    if key.startswith("~"):  # the CTI holds the caller (music on hold): a key it hears over AMI
                        if command.upper().startswith("EXEC STARTMUSICONHOLD"):
                            hit = chan
                            break
                        continue
                    if key != ">" and listens_for(command, key[0]):
                        hit = chan
                        break
                if hit is not None:
                    break
                if loop.time() > deadline:
                    raise AssertionError(f"caller {number}: nobody listened for key {key!r} within {timeout:g} s")
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.5)
            if key == ">":
                continue
            await self._play(hit, key.lstrip("~"))  # a step of several keys is typed into one command (GET DATA)

    async def _play(self, chan: str, digits: str) -> None:
        # written to the other half of the Local pair, the DTMF is read by the AGI's half
        other = chan[:-1] + ("1" if chan.endswith(";2") else "2") if chan[-2:] in (";1", ";2") else chan
        for digit in digits:
            (await self.client.action("PlayDTMF", {"Channel": other, "Digit": digit, "Duration": "120"})
             ).raise_for_error("PlayDTMF")


async def originate_caller(rec: AmiRecorder, number: str, plan: str = "", *, name: str = "", hold_s: int = 60,
                           exten: str = "95598", agi: str | None = None, keys: str = "",
                           key_timeout_s: float = 120.0) -> asyncio.Task[None] | None:
    """A simulated caller dialling the hotline.

    `keys` (e.g. `1|1|0`) are pressed one step at a time as soon as Asterisk listens (see
    `CallerEars`; a step of several digits, `42`, is typed into one command; `>` waits until
    the caller is played a prompt, so `>|1` presses 1 after hearing an offer; `!1` presses 1 at
    once after the step before, with no command listening; `~1` presses 1 once the CTI starts the
    caller's music on hold: both for a key the CTI hears over AMI, the waiting caller's callback key). The returned
    task raises if a key found nobody listening. `plan` is the older timed script run by the
    dialplan (`w4|1|w6|0`: wait 4 s, press 1 ...; `p<sound>` plays a sound to the far end),
    for steps that are not keys.

    `agi` ("host:port") sends this caller's IVR to that FastAGI server (a channel variable
    beats the dialplan global, so concurrent test sessions do not steal each other's callers)."""
    rec.originated.add(number)
    task = None
    if keys:
        ears = await rec.ears()
        task = asyncio.create_task(ears.press(number, keys.split("|"), len(ears.events), key_timeout_s))
    caller_id = f'"{name}" <{number}>' if name else number
    variables = [f"SIM_CALLER_NUM={number}", f"DTMF_PLAN={plan}", f"HOLD_S={hold_s}",
                 f"CTI_TEST_SESSION={os.getpid()}"]
    if agi:
        variables.append(f"CTI_AGI={agi}")
    if name:
        variables.append(f"SIM_CALLER_NAME={name}")
    (await rec.action("Originate", {
        "Channel": f"Local/{exten}@hotline", "Context": "sim-callers", "Exten": "s", "Priority": "1",
        "CallerID": caller_id, "Async": "true", "Variable": variables,
    })).raise_for_error("Originate")
    return task


def sounds_dir(info: sandbox.SandboxInfo) -> Path:
    assert info.sounds_dir is not None
    return Path(info.sounds_dir)
