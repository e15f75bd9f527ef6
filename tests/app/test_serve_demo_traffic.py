"""README's first command: `serve --sandbox --sample-data --demo-traffic` shows the hotline routing calls.

A real `ctiserver serve` process on the sandbox Asterisk: it prints the pages and a login, then a line
when the first simulated caller is put through to a simulated agent; Ctrl-C stops it cleanly.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import urllib.request
from pathlib import Path

import pytest

from ctiserver.sandbox import chroot as sandbox
from tests.app.test_serve_banner import read_until

pytestmark = pytest.mark.asterisk

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def login(base: str, user: str, password: str) -> int:
    req = urllib.request.Request(f"{base}/api/auth/login", json.dumps({"agent_no": user, "password": password})
                                 .encode(), headers={"Content-Type": "application/json", "Origin": base})
    with urllib.request.urlopen(req, timeout=10) as r:
        return int(r.status)


async def test_readme_first_command_routes_calls_within_a_minute(asterisk_sandbox: sandbox.SandboxInfo,
                                                                 tmp_path: Path) -> None:
    env = {**os.environ, "CTISERVER_HTTP_PORT": str(free_port()), "CTISERVER_AGI_PORT": str(free_port())}
    env.pop("CTISERVER_AMI_SECRET", None)  # the sandbox's own secret is used
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ctiserver", "serve", "--config", str(REPO / "config"), "--sandbox",
        "--sample-data", "--demo-traffic", "30", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    stderr = asyncio.create_task(proc.stderr.read())
    try:
        try:
            banner = "\n".join(await read_until(proc.stdout, r"^\s+config copy", timeout=240))
        except AssertionError as exc:
            await proc.wait()
            raise AssertionError(f"{exc}\n{(await stderr).decode('utf-8', 'replace')[-4000:]}") from None
        base = re.search(r"wallboard\s+(http://[\d.]+:\d+)/wallboard", banner)
        assert base, banner
        assert f"{base.group(1)}/agent" in banner and f"{base.group(1)}/reports" in banner
        who = re.search(r"log in\s+(\S+) \(supervisor\).*password (\S+)", banner)
        assert who, banner
        assert await asyncio.to_thread(login, base.group(1), who.group(1), who.group(2)) == 200
        # a minute after start at most (on a busy machine the IVR's waits stretch: allow three)
        routed = (await read_until(proc.stdout, r"^first call routed", timeout=180))[-1]
        assert re.search(r"agent 10\d\d \(queue \w+", routed), routed
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        rc = await asyncio.wait_for(proc.wait(), 90)
    rest = (await proc.stdout.read()).decode()
    err = (await stderr).decode("utf-8", "replace")
    assert rc == 0, err[-3000:]
    assert "Traceback" not in err
    stopped = re.search(r"demo stopped: (\d+) callers placed \((\d+) failed\); (\d+) put through", rest)
    assert stopped and int(stopped.group(3)) >= 1, rest
