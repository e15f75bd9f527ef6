"""Live = history on the real sandbox Asterisk (issue 14 item 3).

The whole server as it ships, a supervisor's WebSocket open: a caller gives up in the queue, a VIP and a
normal caller are answered by agent 1003's PJSIP softphone and talk (the one who gave up is a short abandon
under the shipped 20 s rule: both sides must leave it out alike). The last `kpi` message the supervisor
is pushed (no polling) holds today's figures; they equal `ctiserver report`'s for the same day, read from
the event store, in total, per tier (with each tier's own target time) and per queue.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ctiserver.app.server import CtiServer
from ctiserver.app.wiring import build_server
from ctiserver.config import load_server_config
from ctiserver.events import Event, Kind
from ctiserver.kpi.config import load_kpi_config
from ctiserver.kpi.report import build_report
from ctiserver.web.app import DESKTOP_KEY
from ctiserver.web.auth import create_user
from tests.asterisk_fixture import AmiRecorder, originate_caller
from tests.live_config import sandbox_config
from tests.production import PASSWORD
from tests.sipphone import agent_phone

pytestmark = [pytest.mark.asterisk, pytest.mark.pjsip_agents]

AGENT = "1003"
KEYS = ("calls_offered", "answered", "service_level", "asa_s", "abandon_rate", "abandoned_counted", "in_queue")


async def until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := pred()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return got


@asynccontextmanager
async def hotline(tmp: Path, info: Any) -> AsyncIterator[CtiServer]:
    """The server as `ctiserver serve --sandbox --sample-data` builds it (the CRM's VIPs included)."""
    cfg_dir = sandbox_config(tmp, info)
    server = await build_server(cfg_dir, load_server_config(cfg_dir), sample_data=True, base_dir=tmp)
    await server.start()
    try:
        await asyncio.wait_for(server.ami["pbx1"].wait_connected(), 20)
        await server.features.ivr.wait_prerendered()
        yield server
    finally:
        await server.stop()


class Pushed:
    """The supervisor's `kpi` messages, read as they come (reading also answers the server's heartbeat)."""

    def __init__(self, ws: Any) -> None:
        self.ws, self.changed = ws, asyncio.Event()
        self.figures: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = msg.json()
            if data["type"] == "kpi":
                self.figures.append(data["data"])
                self.changed.set()

    async def until(self, done: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            while not (self.figures and done(self.figures[-1])):
                self.changed.clear()
                await self.changed.wait()
            return dict(self.figures[-1])
        return await asyncio.wait_for(wait(), timeout)


async def test_the_pushed_live_figures_equal_the_report_after_real_calls(
        asterisk_sandbox: Any, ami: AmiRecorder, tmp_path: Path) -> None:
    sip = (asterisk_sandbox.ami_host, asterisk_sandbox.sip_port)
    async with hotline(tmp_path, asterisk_sandbox) as server, \
            agent_phone(AGENT, sip, answer_after_s=0.5, talk_s=2.0) as phone:
        seen: list[Event] = []
        server.event_listeners.append(seen.append)

        def of(kind: str, call_id: str | None = None) -> list[Event]:
            return [e for e in seen if e.kind == kind and (call_id is None or e.call_id == call_id)]

        await create_user(server.http_app[DESKTOP_KEY].engine, "2001", "王主管", "supervisor", PASSWORD,
                          now=server.clock.now())
        url = f"http://127.0.0.1:{server.http_port}"
        agi = f"127.0.0.1:{server.cfg.agi.port}"
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/api/auth/login", json={"agent_no": "2001", "password": PASSWORD}) as r:
                assert r.status == 200, await r.text()
                token = (await r.json())["token"]
            ws = await http.ws_connect(f"{url}/ws", headers={"Authorization": f"Bearer {token}", "Origin": url})
            await ws.send_json({"type": "hello", "epoch": None, "last": {}})
            pushed_kpi = Pushed(ws)

            acd = server.features.acd
            acd.login(AGENT, ready=False)  # staffed, not free: the first caller waits, then gives up
            await originate_caller(ami, "13900000261", keys="0", hold_s=60, agi=agi)
            [enq] = await until(lambda: of(Kind.ACD_ENQUEUE), 60, "the first caller queued")
            [new] = await until(lambda: ami.matching(lambda m: m.get("Event") == "Newchannel"
                                                     and m.get("Uniqueid") == enq.call_id), 10, "its channel")
            (await ami.action("Hangup", {"Channel": str(new.get("Channel"))})).raise_for_error("Hangup")
            await until(lambda: of(Kind.ACD_ABANDON, enq.call_id), 30, "the abandon")

            acd.set_ready(AGENT)
            for number, keys in (("13800000009", "0"), ("13900000262", "0")):  # a VIP's bound number; a stranger
                talks = len(of(Kind.ACD_COMPLETE)) + 1
                await originate_caller(ami, number, keys=keys, hold_s=60, agi=agi)
                await phone.wait_for_call("answered", timeout=60)
                await until(lambda: len(of(Kind.ACD_COMPLETE)) >= talks, 60,  # noqa: B023 (awaited here)
                            f"{number}'s talk to end")

            assert {e.tier for e in of(Kind.ACD_ENQUEUE)} >= {"vip", "normal"}
            pushed = await pushed_kpi.until(lambda d: d["today"]["total"]["answered"] == 2
                                            and d["today"]["total"]["in_queue"] == 0)
            await ws.close()
            await pushed_kpi.task

        now = server.clock.now()
        await server.store.flush(timeout=30)
        kpi = load_kpi_config(tmp_path / "config")
        start = kpi.calendar.at(kpi.calendar.today(now))
        by_tier = await build_report(server.store.engine, kpi, start, start + 86400, ["tier"], now=now)
        by_queue = await build_report(server.store.engine, kpi, start, start + 86400, ["queue"], now=now)

    today = pushed["today"]
    assert today["total"]["calls_offered"] == 3 and today["total"]["answered"] == 2, today["total"]
    assert today["total"] == {k: by_tier["total"][k] for k in KEYS}
    assert today["queues"] == {r["key"]["queue"]: {k: r["metrics"][k] for k in KEYS} for r in by_queue["rows"]
                               if r["key"]["queue"] is not None}
    tiers = {t["tier"]: t for t in by_tier["tiers"] if t["tier"] is not None}
    assert set(today["tiers"]) == set(tiers) >= {"vip", "normal"}
    for name, figures in today["tiers"].items():
        for k in ("calls_offered", "service_level", "asa_s", "abandon_rate"):
            assert figures[k] == tiers[name][k], (name, k)
