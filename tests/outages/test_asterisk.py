"""Acceptance (issue 16) on the real sandbox Asterisk: an outage a dispatcher enters through the API changes
the greeting a caller in that area hears on the very next call, and that caller's fault report attaches to it.

The whole server runs from the sample config (sample customers loaded). 杨静 (13800000006) lives in 城西区,
where the sample data has no outage: her first call goes straight to the language menu. A dispatcher
then POSTs a fault outage for 城西区; her next call hears the outage notice with its cause and expected
restoration (the sound Asterisk is told to play is the notice rendered for that outage), she presses
1 (Mandarin), 2 (faults), 1 (no power), the IVR tells her the outage is being repaired, and her call is
attached to the outage (its report count is 1, which the agent's screen-pop shows with the outage).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ctiserver.app.server import CtiServer
from ctiserver.app.wiring import build_server
from ctiserver.config import load_server_config
from ctiserver.events import Event, Kind
from ctiserver.ivr.template import render
from ctiserver.ivr.tree import load_tree
from ctiserver.web.auth import create_user
from tests.asterisk_fixture import AmiRecorder, originate_caller
from tests.live_config import sandbox_config

pytestmark = pytest.mark.asterisk

PASSWORD = "dispatch-secret-1"
CALLER = "13800000006"


class Watch:
    """The server's events as they are emitted, waited on (never slept on)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self.changed.set()

    async def until(self, pred: Any, timeout: float = 90.0) -> Event:
        async def find() -> Event:
            while True:
                for e in self.events:
                    if pred(e):
                        return e
                self.changed.clear()
                await self.changed.wait()
        return await asyncio.wait_for(find(), timeout)

    def call_of(self, caller: str, after: int) -> str | None:
        starts = [e for e in self.events[after:] if e.kind == Kind.IVR_START and e.data.get("caller") == caller]
        return starts[0].call_id if starts else None

    def path(self, call_id: str) -> list[str]:
        return [e.data["node"] for e in self.events if e.kind == Kind.IVR_NODE and e.call_id == call_id]


@pytest.fixture
async def live(asterisk_sandbox: Any, ami: AmiRecorder, tmp_path: Path) -> AsyncIterator[CtiServer]:
    cfg_dir = sandbox_config(tmp_path, asterisk_sandbox, local_agents=True)
    server = await build_server(cfg_dir, load_server_config(cfg_dir), sample_data=True, base_dir=tmp_path)
    await server.start()
    try:
        await asyncio.wait_for(server.ami["pbx1"].wait_connected(), 20)
        await server.features.ivr.wait_prerendered()
        await create_user(server.store.engine, "9001", "调度员", "dispatcher", PASSWORD, now=server.clock.now())
        yield server
    finally:
        await ami.hang_up_callers()
        await server.stop()


async def _call(live: CtiServer, ami: AmiRecorder, watch: Watch, keys: str,
                tasks: list[asyncio.Task[None]]) -> str:
    mark = len(watch.events)
    task = await originate_caller(ami, CALLER, keys=keys, name="杨静", hold_s=60,
                                  agi=f"127.0.0.1:{live.cfg.agi.port}")
    start = await watch.until(lambda e: e.kind == Kind.IVR_START and e.data.get("caller") == CALLER
                              and watch.events.index(e) >= mark)
    assert start.call_id
    if task is not None:
        tasks.append(task)  # the caller's key presses
    return start.call_id


async def test_an_outage_entered_through_the_api_is_heard_on_the_next_call_and_the_report_attaches(
        live: CtiServer, ami: AmiRecorder) -> None:
    watch = Watch()
    live.event_listeners.append(watch)
    keys: list[asyncio.Task[None]] = []
    base = f"http://127.0.0.1:{live.http_port}"

    # before: no outage in 城西区, the caller goes straight to the language menu
    first = await _call(live, ami, watch, "", keys)
    await watch.until(lambda e: e.kind == Kind.IVR_NODE and e.call_id == first and e.data["node"] == "language")
    assert "outage_notice" not in watch.path(first)
    await ami.hang_up_callers()
    await watch.until(lambda e: e.kind == Kind.IVR_END and e.call_id == first)

    # a dispatcher enters the outage through the API
    now = live.clock.now()
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/auth/login", json={"agent_no": "9001", "password": PASSWORD}) as r:
            assert r.status == 200, await r.text()
            token = (await r.json())["token"]
        auth = {"Authorization": f"Bearer {token}"}
        async with http.post(f"{base}/api/outages", headers=auth, json={
                "kind": "fault", "cause": "10千伏西环线电缆故障", "scope": {"areas": ["城西区"]},
                "start_ts": now - 120, "expected_restore_ts": now + 2 * 3600}) as r:
            assert r.status == 201, await r.text()
            outage_id = (await r.json())["outage"]["id"]

    # the very next call: the notice, then the fault menu, and the report attaches
    ears = await ami.ears()
    seen = len(ears.events)
    second = await _call(live, ami, watch, "1|2|1", keys)
    report = await watch.until(lambda e: e.kind == Kind.OUTAGE_REPORT and e.call_id == second)
    assert report.data == {"outage": outage_id, "reports": 1, "account": "9100000006"}
    path = watch.path(second)
    assert path.index("outage_notice") < path.index("language") < path.index("main") < path.index("fault_known")

    tree = load_tree(live.config_dir / "ivr" / "hotline.yaml")
    outage = await live.features.ivr.runtime.data.lookup("outages", {"area": "城西区"}, live.clock.now())
    assert outage is not None and outage["active"] and outage["reason"] == "10千伏西环线电缆故障"
    text = render(tree.tree.nodes["outage_notice"].prompt.text_for("zh"), {"outage": outage})  # type: ignore[union-attr]
    assert "10千伏西环线电缆故障" in text and "城西区" in text
    sound = live.features.ivr.tts.cached(text, "zh")
    assert sound is not None
    played = [m for m in ears.events[seen:] if m.get("CallerIDNum") == CALLER
              and (m.get("Command") or "").startswith(f"STREAM FILE {sound} ")]
    assert played, "Asterisk was not told to play the notice rendered for the new outage"

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/outages/{outage_id}", headers=auth) as r:
            body = await r.json()
        async with http.get(f"{base}/api/customers", params={"phone": CALLER}, headers=auth) as r:
            pop = await r.json()  # what the agent's screen-pop shows of this caller
    assert body["reports"] == 1 and [a["action"] for a in body["audit"]] == ["add"]
    assert pop["outage"]["id"] == outage_id and pop["outage"]["reports"] == 1
    assert pop["outage"]["reason"] == "10千伏西环线电缆故障"
    await asyncio.gather(*keys)  # every key found the IVR listening
