"""Kannel for tests: bearerbox + smsbox, with Kannel's own `fakesmsc` as the SMSC, on the helper's ports.

Each rig writes its own kannel.conf in a temp folder and starts the three processes itself; it waits
on their log lines (never on sleeps): bearerbox's start-up, the fake SMSC's and smsbox's connections,
smsbox's sendsms port. The fake SMSC prints every message it receives; `received()` decodes them
(UCS-2 and concatenated parts joined again).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote_to_bytes

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"
USER, PASSWORD = "cti", "kannel-test"

# 7000+100*N .. +99 for helper N (HELPERS.md); CTISERVER_TEST_PORT_BASE moves it. Five ports per rig.
_BASE = int(os.environ.get("CTISERVER_KANNEL_PORT_BASE", "7600"))
_slots = itertools.cycle(range(0, 95, 5))


def available() -> str | None:
    """None when Kannel and the fake SMSC are installed, else what is missing (scripts/setup.sh installs them)."""
    missing = [p for p in (BEARERBOX, SMSBOX, FAKESMSC) if not os.access(p, os.X_OK)]
    return f"missing {', '.join(missing)} (Debian kannel, kannel-extras)" if missing else None


@dataclass
class Ports:
    admin: int
    smsbox: int
    smsc: int
    sendsms: int
    http: int  # for the test's own delivery-report server


def next_ports() -> Ports:
    b = _BASE + next(_slots)
    return Ports(b, b + 1, b + 2, b + 3, b + 4)


CONF = """\
group = core
admin-port = {p.admin}
admin-password = {password}
smsbox-port = {p.smsbox}
box-allow-ip = 127.0.0.1
admin-allow-ip = 127.0.0.1
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = fake
port = {p.smsc}
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {p.smsbox}
sendsms-port = {p.sendsms}
global-sender = 95598

group = sendsms-user
username = {user}
password = {password}
max-messages = 10
concatenation = true

group = sms-service
keyword = default
text = ""
max-messages = 0
"""

_GOT = re.compile(r"Got message \d+: <(\S+) (\S+) (.*)>\s*$")


def _bytes(text: str) -> bytes:
    """fakesmsc prints binary data URL-encoded, a 0x20 byte as '+' (a real '+' is %2B)."""
    return unquote_to_bytes(text.replace("+", "%20"))


@dataclass(frozen=True)
class Received:
    sender: str
    to: str
    text: str
    parts: int


class _Proc:
    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name, self.proc = name, proc
        self.lines: list[str] = []
        self.changed = asyncio.Condition()
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            async with self.changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self.changed.notify_all()
        async with self.changed:
            self.lines.append("<exited>")
            self.changed.notify_all()

    async def wait_line(self, pattern: str, timeout: float = 30.0, start: int = 0) -> str:
        rx = re.compile(pattern)

        async def find() -> str:
            async with self.changed:
                while True:
                    for line in self.lines[start:]:
                        if rx.search(line):
                            return line
                    if self.lines and self.lines[-1] == "<exited>":
                        raise RuntimeError(f"{self.name} exited:\n" + "\n".join(self.lines[-20:]))
                    await self.changed.wait()

        return await asyncio.wait_for(find(), timeout)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self.reader


class KannelRig:
    """`async with KannelRig(tmp_path) as k:` a running Kannel; `k.sendsms_url`, `k.received()`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ports = next_ports()
        self.conf = folder / "kannel.conf"
        self.bearerbox: _Proc | None = None
        self.smsbox: _Proc | None = None
        self.smsc: _Proc | None = None

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.sendsms}/cgi-bin/sendsms"

    async def _spawn(self, name: str, *argv: str) -> _Proc:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT, cwd=self.folder)
        return _Proc(name, proc)

    async def start(self) -> None:
        missing = available()
        if missing:
            raise RuntimeError(f"Kannel is not installed: {missing}; run scripts/setup.sh")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(CONF.format(p=self.ports, user=USER, password=PASSWORD), encoding="utf-8")
        self.bearerbox = await self._spawn("bearerbox", BEARERBOX, "-v", "1", str(self.conf))
        await self.bearerbox.wait_line(r"Start-up done, entering mainloop")
        await self.start_smsc()
        await self.start_smsbox()

    async def start_smsc(self) -> None:
        assert self.bearerbox is not None
        mark = len(self.bearerbox.lines)
        # -m 0: send no MO messages of its own, only print what it receives
        self.smsc = await self._spawn("fakesmsc", FAKESMSC, "-H", "127.0.0.1", "-r", str(self.ports.smsc),
                                      "-m", "0", "1 2 text unused")
        await self.bearerbox.wait_line(r"Fakesmsc client connected", start=mark)

    async def start_smsbox(self) -> None:
        self.smsbox = await self._spawn("smsbox", SMSBOX, "-v", "1", str(self.conf))
        await self.smsbox.wait_line(r"Connected to bearerbox")
        await self.smsbox.wait_line(rf"Set up send sms service at port {self.ports.sendsms}")

    async def stop(self) -> None:
        for proc in (self.smsbox, self.smsc, self.bearerbox):
            if proc is not None:
                await proc.stop()

    async def __aenter__(self) -> KannelRig:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def received(self) -> list[Received]:
        """Every message the fake SMSC got, decoded; concatenated parts joined in order."""
        out: list[Received] = []
        pending: dict[tuple[str, str, int], dict[int, bytes]] = {}
        if self.smsc is None:
            return out
        for line in self.smsc.lines:
            m = _GOT.search(line)
            if not m:
                continue
            sender, to, rest = m.groups()
            kind, _, body = rest.partition(" ")
            if kind == "text":
                out.append(Received(sender, to, body, 1))
            elif kind == "ucs2" or kind == "ucs-2":
                out.append(Received(sender, to, _bytes(body).decode("utf-16-be"), 1))
            elif kind == "udh":
                udh_raw, _, data = body.partition(" data ")
                udh = _bytes(udh_raw)
                ref, total, seq = udh[3], udh[4], udh[5]  # IEI 00: 8-bit reference, total, sequence
                parts = pending.setdefault((sender, to, ref), {})
                parts[seq] = _bytes(data)
                if len(parts) == total:
                    whole = b"".join(parts[i] for i in sorted(parts))
                    out.append(Received(sender, to, whole.decode("utf-16-be"), total))
                    del pending[(sender, to, ref)]
        return out

    async def wait_received(self, n: int, timeout: float = 30.0) -> list[Received]:
        """Until the fake SMSC has `n` whole messages."""
        assert self.smsc is not None
        smsc = self.smsc

        async def enough() -> None:
            async with smsc.changed:
                while len(self.received()) < n:
                    await smsc.changed.wait()

        await asyncio.wait_for(enough(), timeout)
        return self.received()
