"""`ctiserver serve` tells a newcomer where to go: the pages, how to log in, how to place a first call.

A real process on a fresh copy of the config (no var/ folder), as a newcomer runs it.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import stat
import sys
import urllib.request
from pathlib import Path
from types import SimpleNamespace

from ctiserver.app.cli import serve_banner
from ctiserver.sandbox.chroot import SandboxInfo
from tests.production import edit_yaml

REPO = Path(__file__).resolve().parents[2]


async def read_until(stream: asyncio.StreamReader, pattern: str, timeout: float) -> list[str]:
    """Lines from `stream` up to the first that matches `pattern` (waits on the pipe, no polling)."""
    lines: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            raw = await stream.readline()
            if not raw:
                raise AssertionError(f"output ended before {pattern!r}: {lines}")
            lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
            if re.search(pattern, lines[-1]):
                return lines


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as r:
        return int(r.status)


async def test_serve_prints_where_to_go_on_a_fresh_checkout(tmp_path: Path) -> None:
    shutil.copytree(REPO / "config", tmp_path / "config")
    with socket.socket() as refusing:  # no Asterisk: a port that refuses, as while Asterisk is down
        refusing.bind(("127.0.0.1", 0))

        def server(d: dict) -> None:
            d["asterisk"][0].update(port=refusing.getsockname()[1], secret="written-here")
            d["asterisk"][0].pop("secret_env", None)

        edit_yaml(tmp_path / "config" / "ctiserver.yaml", server)
        env = {**os.environ, "CTISERVER_HTTP_PORT": "0", "CTISERVER_AGI_PORT": "0"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "ctiserver", "serve", "--config", "config", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        try:
            lines = await read_until(proc.stdout, r"^\s+first call", timeout=120)
            text = "\n".join(lines)
            base = re.search(r"agent desktop\s+(http://127\.0\.0\.1:\d+)/agent", text)
            assert base, text
            url = base.group(1)
            for page in ("/wallboard", "/reports", "/healthz"):
                assert f"{url}{page}" in text
            assert not url.endswith(":0")
            assert "no desktop user yet" in text and "ctiserver user add" in text and "--role supervisor" in text
            assert "agi://<this host>:" in text and "--demo-traffic" in text
            for page in ("/agent", "/wallboard", "/reports"):  # the printed URLs work
                assert await asyncio.to_thread(get, url + page) == 200
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
            rc = await asyncio.wait_for(proc.wait(), 60)
        err = (await proc.stderr.read()).decode("utf-8", "replace")
    assert rc == 0, err[-3000:]
    assert "Traceback" not in err
    assert "warning: asterisk.0.secret is written in the file" in err  # a literal secret outside --sandbox
    for name in ("ctiserver.db", "journal.jsonl"):
        assert stat.S_IMODE((tmp_path / "var" / name).stat().st_mode) == 0o600, name


def test_the_sandbox_banner_says_how_to_place_a_first_call() -> None:
    cfg = SimpleNamespace(http=SimpleNamespace(host="0.0.0.0", port=8080), agi=SimpleNamespace(port=4573))
    info = SandboxInfo(root="/r", pid=1, ami_host="127.0.0.1", ami_port=5038, ami_user="ctiserver",
                       ami_secret="s", sounds_dir=None, log_path="/r/log", sip_port=5112)
    server = SimpleNamespace(cfg=cfg, http_port=8081, agi=None, features=SimpleNamespace(sandbox=info))
    text = serve_banner(server, Path("config"), users=3)
    assert "http://127.0.0.1:8081/wallboard" in text  # a wildcard listen address is shown as loopback
    assert "3 desktop user(s)" in text
    assert "127.0.0.1:5112 as agent1001 (password pw1001)" in text and "--demo-traffic" in text
