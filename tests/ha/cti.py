"""What a rig test talks to: both Asterisks' AMI (recorders from tests/asterisk_fixture.py) and each node's REST
API as the shift supervisor (agents are logged in and made ready through it, as on the desktop)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from ctiserver.sandbox import chroot as sandbox
from tests.asterisk_fixture import AmiRecorder
from tests.ha.rig import Rig

SUPERVISOR, PASSWORD = "2001", "rig-password-1"
log = logging.getLogger(__name__)


def _info(rig: Rig, pbx: str) -> sandbox.SandboxInfo:
    ami = rig.ami(pbx)
    return sandbox.SandboxInfo(root=str(rig.root), pid=0, ami_host=ami["host"], ami_port=ami["port"],
                               ami_user=ami["username"], ami_secret=ami["secret"], sounds_dir=str(rig.sounds_dir()),
                               log_path=str(rig.log_path(pbx)))


class RigCti:
    def __init__(self, rig: Rig) -> None:
        self.rig = rig
        self.ami = {pbx: AmiRecorder(_info(rig, pbx)) for pbx in rig.pbxs}
        self._http: dict[str, aiohttp.ClientSession] = {}
        self.token = ""  # the supervisor's bearer token (sessions live in the shared database)

    async def start(self) -> None:
        if not getattr(self.rig, "supervisor_added", False):
            await asyncio.to_thread(self._add_supervisor)
            self.rig.supervisor_added = True  # type: ignore[attr-defined]
        for rec in self.ami.values():
            await rec.start()
        await self.reset_agents()

    def _add_supervisor(self) -> None:
        proc = subprocess.run([self.rig._ctiserver(), "user", "add", SUPERVISOR, "--name", "班长", "--role",
                               "supervisor", "--password-stdin", "--config",
                               str(self.rig.config_dir(self.rig.nodes[0]))],
                              input=PASSWORD + "\n", capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr

    async def close(self) -> None:
        for rec in self.ami.values():
            with contextlib.suppress(Exception):
                await rec.hang_up_callers()
            with contextlib.suppress(Exception):
                await rec.restore_globals()
            await rec.close()
        for session in self._http.values():
            await session.close()

    def restore(self) -> None:
        """Bring back what a test stopped or cut: links up, Asterisks and nodes running."""
        for host in (*self.rig.nodes, *self.rig.pbxs):
            self.rig.heal(host)
        for pbx in self.rig.pbxs:
            if pbx not in self.rig.procs:
                self.rig.start_pbx(pbx)
        for node in self.rig.nodes:
            if node not in self.rig.procs:
                self.rig.start_node(node)
                self.rig.wait_node(node)

    # --- HTTP ----------------------------------------------------------------------------------
    async def session(self, node: str) -> aiohttp.ClientSession:
        if node not in self._http:
            # cookies for a bare IP address need an unsafe jar: the rig's nodes have no host names
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10),
                                            cookie_jar=aiohttp.CookieJar(unsafe=True))
            async with session.post(f"{self.rig.http(node)}/api/auth/login",
                                    json={"agent_no": SUPERVISOR, "password": PASSWORD}) as r:
                assert r.status == 200, await r.text()
                self.token = str((await r.json())["token"])
            self._http[node] = session
        return self._http[node]

    async def agent(self, node: str, agent_no: str, action: str, reason: str | None = None) -> None:
        """Log an agent in or out, make them ready or not (`reason`) on a node, as their supervisor."""
        body: dict[str, Any] = {"action": action, **({"reason": reason} if reason else {})}
        session = await self.session(node)
        async with session.post(f"{self.rig.http(node)}/api/agents/{agent_no}/state", json=body) as r:
            assert r.status == 200, (node, agent_no, action, r.status, await r.text())

    def log_tail(self, part: str, lines: int = 60) -> str:
        """The end of a rig process's log (for a failure's message)."""
        text = self.rig.log_path(part).read_text(errors="replace").splitlines()
        return f"--- {part} log ---\n" + "\n".join(text[-lines:])

    async def reset_agents(self, timeout: float = 20.0) -> None:
        """Every agent logged out on every node that runs an ACD: what one test (or a restart's restore of
        agents) left logged in must not take the next test's callers. An agent still on a call (its caller
        being hung up) is logged out once the ACD lets it."""
        deadline = time.monotonic() + timeout
        for node in self.rig.nodes:
            while True:
                try:
                    states = await self.agent_states(node)
                except AssertionError:  # a standby: its ACD does not run
                    break
                left = [a for a, (state, _) in states.items() if state != "logged_out"]
                if not left:
                    break
                session = await self.session(node)
                for agent in left:
                    async with session.post(f"{self.rig.http(node)}/api/agents/{agent}/state",
                                            json={"action": "logout"}) as r:
                        await r.read()
                if time.monotonic() > deadline:  # e.g. on a call the ACD rebuilt after a takeover
                    log.warning("agents still logged in on %s: %s", node, left)
                    break
                await asyncio.sleep(0.2)

    async def leader(self, timeout: float = 30.0) -> str:
        """The node that leads now (waits while nobody does, e.g. during a takeover)."""
        return str(await until("a leader", self.rig.leader, timeout))

    async def get(self, node: str, path: str) -> Any:
        session = await self.session(node)
        async with session.get(f"{self.rig.http(node)}{path}") as r:
            assert r.status == 200, (node, path, r.status, await r.text())
            return await r.json()

    async def agent_states(self, node: str) -> dict[str, tuple[str, str | None]]:
        """agent -> (state, reason) as the node's ACD has them (GET /api/agents)."""
        return {a["agent_id"]: (a["state"], a["reason"]) for a in await self.get(node, "/api/agents")}

    async def wait_agents(self, node: str, want: dict[str, tuple[str, str | None]], timeout: float = 60.0) -> None:
        """Until the node's ACD shows these agents in these states (polls its REST answers)."""
        deadline = time.monotonic() + timeout
        while True:
            states = await self.agent_states(node)
            if all(states.get(a) == s for a, s in want.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"agents on {node}: want {want}, have { {a: states.get(a) for a in want} }\n"
                                     + self.log_tail(node))
            await asyncio.sleep(0.2)

    async def wait_waiting(self, node: str, callers: list[str], timeout: float = 60.0) -> list[dict[str, Any]]:
        """Until the node's ACD holds exactly these callers waiting, in this order (its wallboard's list)."""
        deadline = time.monotonic() + timeout
        while True:
            waiting = (await self.get(node, "/api/wallboard"))["waiting_calls"]
            if [c["caller"] for c in waiting] == callers:
                return list(waiting)
            if time.monotonic() > deadline:
                raise AssertionError(f"waiting on {node}: want {callers}, have {[c['caller'] for c in waiting]}\n"
                                     + self.log_tail(node))
            await asyncio.sleep(0.2)

    async def sim_agents(self, pbx: str, agents: dict[str, str], talk_s: int = 60) -> None:
        """How each rig agent's phone behaves (`answer`, `noanswer`, `busy`), on the Asterisk it is on."""
        for agent, mode in agents.items():
            await self.ami[pbx].setvar(f"AGENT_{agent}_MODE", mode)
            await self.ami[pbx].setvar(f"AGENT_{agent}_TALK", str(talk_s))


async def until(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll a cheap condition (a process state, a health answer) until it holds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
