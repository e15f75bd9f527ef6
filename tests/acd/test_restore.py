"""Agents after a CTI restart: the pure rule, the log query on both databases, and applying it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from ctiserver.acd.engine import AcdEngine
from ctiserver.acd.restore import Restore, apply_restore, busy_agents, restore_plan
from ctiserver.acd.runtime import AcdRuntime
from ctiserver.clock import FakeClock
from ctiserver.events import Event, Kind
from ctiserver.store.query import last_agent_states
from ctiserver.store.schema import events, metadata
from tests.kpi.conftest import drop_pg, fresh_pg

from .helpers import config

KNOWN = ["1001", "1002", "1003", "1004", "1005", "1006"]


def test_who_comes_back_how() -> None:
    last = {"1001": ("available", None), "1002": ("available", None), "1003": ("not_ready", "lunch"),
            "1004": ("wrap_up", None), "1005": ("logged_out", None), "1006": ("not_ready", "login"),
            "9999": ("available", None)}
    plan = restore_plan(last, busy={"1002"}, known=KNOWN)
    assert plan == [Restore("1001", "available"),
                    Restore("1002", "not_ready", "cti_restart"),  # still on a call in Asterisk: never rung
                    Restore("1003", "not_ready", "lunch"),  # a break stays a break
                    Restore("1004", "not_ready", "cti_restart"),
                    Restore("1006", "not_ready", "cti_restart")]  # 1005 logged out, 9999 no longer configured


def test_busy_agents_by_their_channel_names() -> None:
    channels = ["PJSIP/agent1001-0000001a", "Local/1002@sim-agents-00000005;1", "PJSIP/agent10010-00000001",
                "PJSIP/carrier-00000002"]
    assert busy_agents(channels, lambda a: f"PJSIP/agent{a}", ["1001", "1003"]) == {"1001"}
    assert busy_agents(channels, lambda a: f"Local/{a}@sim-agents", ["1002", "1001"]) == {"1002"}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_the_last_state_of_each_agent_from_the_log(backend: str, tmp_path: Path) -> None:
    name = f"ctitest_restore_{os.getpid()}"
    url = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}" if backend == "sqlite" else await fresh_pg(name)
    engine = create_async_engine(url)
    try:
        rows = [
            Event(Kind.AGENT_STATE, 100.0, None, "1001", data={"state": "available"}),
            Event(Kind.AGENT_STATE, 200.0, "c1", "1001", data={"state": "on_call"}),
            Event(Kind.AGENT_STATE, 300.0, None, "1001", data={"state": "wrap_up"}),
            Event(Kind.AGENT_STATE, 150.0, None, "1002", data={"state": "not_ready", "reason": "lunch"}),
            Event(Kind.AGENT_STATE, 10.0, None, "1003", data={"state": "available"}),  # before the window
            Event(Kind.AGENT_STATE, 160.0, None, "1004", data={"state": 7}),  # unusable: ignored
            Event(Kind.ACD_ANSWER, 400.0, "c2", "1002", data={}),
        ]
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all, tables=[events])
            await conn.execute(events.insert(), [{**e.as_row(), "event_key": f"r-{i}"} for i, e in enumerate(rows)])
        assert await last_agent_states(engine, since=50.0) == {"1001": ("wrap_up", None),
                                                               "1002": ("not_ready", "lunch")}
    finally:
        await engine.dispose()
        if backend == "postgres":
            await drop_pg(name)


async def test_applying_logs_agents_in_and_leaves_those_who_logged_in_themselves() -> None:
    rt = AcdRuntime(AcdEngine(config({a: {"billing": 5} for a in KNOWN})), FakeClock(1000.0), lambda e: None)
    rt.login("1003", ready=True)  # logged in by hand before the restore ran
    plan = restore_plan({"1001": ("available", None), "1002": ("not_ready", "lunch"), "1003": ("not_ready", "x")},
                        busy=(), known=KNOWN)
    assert apply_restore(rt, plan) == 2
    assert rt.engine.agent_state("1001") == ("available", None)
    assert rt.engine.agent_state("1002") == ("not_ready", "lunch")
    assert rt.engine.agent_state("1003") == ("available", None)


async def test_a_restarted_server_logs_its_agents_in_again_without_ringing_a_busy_one(
        asterisk_sandbox: Any, ami: Any, tmp_path: Path) -> None:
    """Two servers one after the other on the same database and the real Asterisk: agents logged in on
    the first are logged in on the second; the one whose phone is still in a call is not made ready."""
    from ctiserver.app.wiring import build_server
    from ctiserver.config import load_server_config
    from tests.callbacks.test_asterisk import callback_config

    cfg_dir = callback_config(tmp_path, asterisk_sandbox)

    async def server() -> Any:
        srv = await build_server(cfg_dir, load_server_config(cfg_dir), base_dir=tmp_path)
        await srv.start()
        await asyncio.wait_for(srv.ami["pbx1"].wait_connected(), 20)
        return srv

    first = await server()
    try:
        acd = first.features.acd
        acd.login("1007", ready=True)
        acd.login("1008", ready=True)
        acd.login("1009", ready=False)
        acd.set_not_ready("1009", "lunch")
        acd.login("1010", ready=True)
        acd.logout("1010")
        await first.store.flush(timeout=10)
    finally:
        await first.stop()
    # while the CTI is down, agent 1008's phone gets into a call (it rings: a live channel)
    await ami.setvar("AGENT_1008_MODE", "noanswer")
    (await ami.action("Originate", {"Channel": "Local/1008@sim-agents", "Application": "Wait", "Data": "30",
                                    "Timeout": "30000", "Async": "true"})).raise_for_error("Originate")
    second = await server()
    try:
        acd = second.features.acd
        deadline = asyncio.get_running_loop().time() + 30
        while acd.engine.agent_state("1007")[0] == "logged_out":
            assert asyncio.get_running_loop().time() < deadline, "agents were not restored"
            await asyncio.sleep(0.2)
        assert acd.engine.agent_state("1007") == ("available", None)
        assert acd.engine.agent_state("1008") == ("not_ready", "cti_restart")
        assert acd.engine.agent_state("1009") == ("not_ready", "lunch")
        assert acd.engine.agent_state("1010") == ("logged_out", None)
    finally:
        await second.stop()
        await ami.setvar("AGENT_1008_MODE", "")
        await ami.action("Hangup", {"Channel": "/^Local\\/1008@sim-agents-.*$/"})
