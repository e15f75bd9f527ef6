"""The server exactly as `ctiserver serve` builds it, on real sockets, with no Asterisk.

For HTTP and FastAGI tests that must hit the production app (its middlewares, every feature's
routes) rather than an app assembled for the test: the shipped config/ copied to a temp folder,
a temp SQLite database, HTTP and FastAGI on ports the OS picks, the AMI pointed at a port that
refuses connections (the server keeps retrying in the background, as it does in production
while Asterisk is down), and the TTS cache on the test sounds folder so start-up renders nothing
new. Users are added with `add_user`; `login` returns a session cookie.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from ctiserver.app import settings
from ctiserver.app.server import CtiServer
from ctiserver.app.wiring import build_server
from ctiserver.sandbox import chroot as sandbox
from ctiserver.web.app import DESKTOP_KEY
from ctiserver.web.auth import create_user
from tests.asterisk_fixture import shared_sounds_dir

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "test-password-1"


def edit_yaml(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def production_config(tmp: Path, ami_port: int) -> Path:
    """config/ as shipped, with a temp database, OS-picked ports and the AMI at `ami_port`."""
    cfg = tmp / "config"
    shutil.copytree(REPO / "config", cfg)

    def server(data: dict[str, Any]) -> None:
        data["asterisk"][0].update(host="127.0.0.1", port=ami_port)
        data["database"].update(url=f"sqlite+aiosqlite:///{tmp / 'cti.db'}", journal=str(tmp / "journal.jsonl"),
                                flush_interval_s=0.05)
        data["http"] = {"host": "127.0.0.1", "port": 0}
        data["agi"] = {**data.get("agi", {}), "host": "127.0.0.1", "port": 0}

    def ivr(data: dict[str, Any]) -> None:
        data["tts"]["cache_dir"] = str(shared_sounds_dir(sandbox.root_dir(None)))

    edit_yaml(cfg / "ctiserver.yaml", server)
    edit_yaml(cfg / "ivr" / "settings.yaml", ivr)
    return cfg


@dataclass
class Running:
    server: CtiServer
    url: str  # http://127.0.0.1:<port>

    @property
    def origin(self) -> str:
        return self.url

    @property
    def agi_port(self) -> int:
        return int(self.server.agi.port)

    async def add_user(self, agent_no: str, role: str = "agent", password: str = PASSWORD) -> None:
        await create_user(self.server.http_app[DESKTOP_KEY].engine, agent_no, f"user {agent_no}", role, password,
                          now=self.server.clock.now())

    async def login(self, session: aiohttp.ClientSession, agent_no: str, password: str = PASSWORD) -> str:
        """Log in over HTTP; returns the session token (also kept as the session's cookie)."""
        async with session.post(f"{self.url}/api/auth/login",
                                json={"agent_no": agent_no, "password": password}) as r:
            assert r.status == 200, await r.text()
            return str((await r.json())["token"])


@asynccontextmanager
async def production_server(tmp: Path, edit: Callable[[Path], None] | None = None) -> AsyncIterator[Running]:
    """Build with `ctiserver.app.wiring.build_server` (as `serve` does), start, yield, stop.

    `edit(config_dir)` may change the copied configuration first (see `edit_yaml`)."""
    with socket.socket() as refusing:  # bound, never listening: AMI connects are refused, the port stays ours
        refusing.bind(("127.0.0.1", 0))
        cfg_dir = production_config(tmp, refusing.getsockname()[1])
        if edit is not None:
            edit(cfg_dir)
        server = await build_server(cfg_dir, settings.load_server(cfg_dir), base_dir=tmp)
        await server.start()
        try:
            yield Running(server, f"http://127.0.0.1:{server.http_port}")
        finally:
            await server.stop()
