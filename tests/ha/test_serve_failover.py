"""Two real `ctiserver serve` processes on one PostgreSQL (loopback, their own HTTP and FastAGI ports, no
Asterisk needed for the election): one leads, the other stands by and says so; `kill -9` the leader and
the standby leads within TTL + 2 s, measured on the lease rows' own timestamps (ha_epochs), not on ours.
Every wait is on a log line or an HTTP answer."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text

from ctiserver.store.engine import make_engine, migrate

from ..pgutil import fresh_database
from ..production import edit_yaml, production_config

PG_DB = f"ctitest_ha_serve_{os.getpid()}"
TTL_S = 3.0
BOUND_S = 60.0  # only a hung test waits this long; the figures come from the database's stamps
CTISERVER = [sys.executable, "-m", "ctiserver"]
UP = re.compile(r"ctiserver up: http 127\.0\.0\.1:(\d+)")


@contextmanager
def refusing_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


class Node:
    """One `ctiserver serve` process and what it logged."""

    def __init__(self, name: str, config: Path) -> None:
        self.name, self.config = name, config
        self.lines: list[str] = []
        self.http = ""
        self._grew = asyncio.Condition()
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        env = {**os.environ, "CTISERVER_HA_NODE": self.name, "PYTHONUNBUFFERED": "1"}
        self.proc = await asyncio.create_subprocess_exec(
            *CTISERVER, "serve", "--config", str(self.config), cwd=self.config.parent, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        self._reader = asyncio.ensure_future(self._read())
        line = await self.wait_for(UP)
        self.http = "http://127.0.0.1:" + UP.search(line).group(1)  # type: ignore[union-attr]

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            async with self._grew:
                self.lines.append(raw.decode(errors="replace").rstrip())
                self._grew.notify_all()
        async with self._grew:
            self.lines.append("<exited>")
            self._grew.notify_all()

    async def wait_for(self, pattern: str | re.Pattern[str]) -> str:
        """The first logged line matching `pattern` (waits for it)."""
        rx = re.compile(pattern)

        def found() -> str | None:
            return next((ln for ln in self.lines if rx.search(ln)), None)

        async def seen() -> str:
            async with self._grew:
                await self._grew.wait_for(lambda: found() is not None or "<exited>" in self.lines)
            line = found()
            assert line is not None, f"{self.name} exited before logging {pattern!r}:\n" + "\n".join(self.lines[-30:])
            return line

        return await asyncio.wait_for(seen(), BOUND_S)

    async def get(self, path: str) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as http, http.get(self.http + path) as r:
            body = await r.text()
            return r.status, json.loads(body) if r.content_type == "application/json" else body

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), BOUND_S)
        if self._reader is not None:
            await self._reader
        return code


async def ha_status(config: Path) -> str:
    proc = await asyncio.create_subprocess_exec(*CTISERVER, "ha", "status", "--config", str(config),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), BOUND_S)
    return out.decode()


@pytest.fixture
async def pg() -> AsyncIterator[str]:
    url = await fresh_database(PG_DB)
    await migrate(url)
    yield url


def node_config(tmp: Path, name: str, ami_port: int, url: str) -> Path:
    cfg = production_config(tmp / name, ami_port)

    def server(data: dict[str, Any]) -> None:
        data["database"]["url"] = url
        data["ha"] = {"node": "set-by-CTISERVER_HA_NODE", "lease_ttl_s": TTL_S}

    edit_yaml(cfg / "ctiserver.yaml", server)
    return cfg


async def test_kill_9_the_leader_and_the_standby_leads_within_the_ttl_plus_2_s(tmp_path: Path, pg: str) -> None:
    engine = make_engine(pg)
    nodes: list[Node] = []
    with refusing_port() as ami_port:
        try:
            a = Node("a", node_config(tmp_path, "a", ami_port, pg))
            b = Node("b", node_config(tmp_path, "b", ami_port, pg))
            nodes += [a, b]
            await a.start()
            await a.wait_for(r"HA: a leads now \(epoch 1\)")
            await b.start()
            # a's term now (1, unless a busy machine stalled a past a renewal and a took the lease again)
            _, a_health = await a.get("/healthz")
            term = a_health["ha"]["epoch"]
            _, health = await b.get("/healthz")
            ha = health["ha"]
            assert (ha["enabled"], ha["role"], ha["node"], ha["epoch"], ha["leader"]) == (True, "standby", "b", term,
                                                                                         "a")
            assert ha["leader_address"].startswith("http://127.0.0.1:")  # a's, once its HTTP listens
            _, metrics = await a.get("/metrics")
            assert 'ctiserver_ha_leader{node="a"} 1' in metrics and f"ctiserver_ha_epoch {term}" in metrics
            out = await ha_status(b.config)
            assert re.search(r"^role\s+standby$", out, re.M) and re.search(r"^leader\s+a$", out, re.M), out
            async with aiohttp.ClientSession() as http, \
                    http.post(b.http + "/api/agents/1001/state", json={"state": "ready"}) as r:
                refused = await r.json()
            assert r.status == 503 and refused["error"]["id"] == "not-leader", refused
            assert refused["error"]["details"][0]["leader"] == "a"

            await a.stop(signal.SIGKILL)
            line = await b.wait_for(r"HA: b leads now \(epoch \d+\)")
            new_term = int(re.search(r"epoch (\d+)", line).group(1))  # type: ignore[union-attr]
            assert new_term > term
            async with engine.connect() as conn:
                holder, prev, took_s = (await conn.execute(text(
                    "SELECT holder, prev_holder, acquired_ts - prev_renewed_ts FROM ha_epochs WHERE epoch = :e"),
                    {"e": new_term})).one()
            print(f"takeover after kill -9: {took_s:.2f} s from a's last renewal to b's lease (TTL {TTL_S:g} s)")
            assert (holder, prev) == ("b", "a") and took_s <= TTL_S + 2.0
            await b.wait_for(rf"HA: leader features started \(epoch {new_term}\)")
            _, health = await b.get("/healthz")
            assert health["ha"]["role"] == "leader" and health["ha"]["epoch"] == new_term
            assert re.search(r"^leader\s+b$", await ha_status(b.config), re.M)

            assert await b.stop() == 0  # a clean stop gives the lease up at once
            assert "Traceback" not in "\n".join(a.lines + b.lines)
            async with engine.connect() as conn:
                expired = (await conn.execute(text(
                    "SELECT expires_ts <= EXTRACT(EPOCH FROM clock_timestamp()) FROM ha_lease"))).scalar_one()
            assert expired
        finally:
            for n in nodes:
                await n.stop(signal.SIGKILL)
            await engine.dispose()

