"""The ACD adapters drive the real engine and turn its refusals into 4xx answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ctiserver.acd.config import load_acd_config
from ctiserver.acd.engine import AcdEngine
from ctiserver.acd.runtime import AcdRuntime
from ctiserver.clock import FakeClock
from ctiserver.events import Event, Kind
from ctiserver.web.acd_ports import AcdAgentControl, AcdWallboard
from ctiserver.web.app import create_desktop_app
from ctiserver.web.config import DesktopConfig
from ctiserver.web.ports import PortError

from .conftest import START, login, make_desk
from .fakes import FakeCalls, FakeCustomers

REPO = Path(__file__).resolve().parents[2]


def runtime() -> tuple[AcdRuntime, list[Event]]:
    events: list[Event] = []
    return AcdRuntime(AcdEngine(load_acd_config(REPO / "config")), FakeClock(START), events.append), events


async def test_agent_control_over_the_engine() -> None:
    rt, events = runtime()
    agents = AcdAgentControl(rt)
    await agents.login("1001")
    await agents.set_ready("1001")
    assert agents.state("1001") == {"agent_id": "1001", "state": "available", "reason": None, "call_id": None}
    await agents.set_not_ready("1001", "lunch")
    assert agents.state("1001")["state"] == "not_ready"  # type: ignore[index]
    with pytest.raises(PortError) as err:
        await agents.login("1001")
    assert err.value.status == 409 and err.value.error_id == "acd-illegal-transition"
    with pytest.raises(PortError) as err:
        await agents.set_ready("nobody")
    assert err.value.status == 404
    assert agents.state("nobody") is None
    assert {a["agent_id"] for a in agents.all_states()} >= {"1001", "1002"}
    # the wallboard's agent table: each agent's name (acd.yaml) and time in state
    mine = next(a for a in agents.all_states() if a["agent_id"] == "1001")
    assert mine["name"] == "张伟" and mine["in_state_s"] == 0.0
    assert [e.data["state"] for e in events if e.kind == Kind.AGENT_STATE][-1] == "not_ready"
    snap = AcdWallboard(rt, today=lambda: {"service_level": 0.9}).snapshot()
    assert snap["agents"]["not_ready"] == 1 and snap["service_level"] == 0.9
    assert all({"queue", "waiting", "longest_wait_s"} <= set(q) for q in snap["queues"])


async def test_desktop_api_on_the_real_acd(tmp_path: Path) -> None:
    desk = await make_desk(tmp_path)  # users and database
    rt, _ = runtime()
    app, _hub = create_desktop_app(engine=desk.engine, agents=AcdAgentControl(rt), calls=FakeCalls(),
                                   wallboard=AcdWallboard(rt), customers=FakeCustomers(), emit=lambda e: None,
                                   config=DesktopConfig(), clock=desk.clock)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        h = await login(client, "1001")
        for action, state in [("login", "not_ready"), ("ready", "available")]:
            r = await client.post("/api/agents/1001/state", headers=h, json={"action": action})
            assert (await r.json())["state"] == state
        r = await client.post("/api/agents/1001/state", headers=h, json={"action": "login"})
        assert r.status == 409 and (await r.json())["error"]["id"] == "acd-illegal-transition"
        hs = await login(client, "2001")
        wall = await (await client.get("/api/wallboard", headers=hs)).json()
        assert wall["agents"]["available"] == 1
    finally:
        await client.close()
        await desk.engine.dispose()


async def test_the_wallboard_counts_callers_on_the_line_and_callbacks_apart() -> None:
    rt, _ = runtime()
    rt.login("1001", ready=False)  # staffed, nobody free: everyone waits
    rt.apply(lambda now: rt.engine.enqueue("live", "billing", "normal", "13900000001", now))
    rt.apply(lambda now: rt.engine.enqueue("kept", "billing", "normal", "13900000002", now))
    rt.apply(lambda now: rt.engine.request_callback("kept", now))
    rt.apply(lambda now: rt.engine.enqueue_callback("cb-1-1", "billing", "priority", "13900000003", now))
    [billing] = [q for q in AcdWallboard(rt).snapshot()["queues"] if q["queue"] == "billing"]
    assert (billing["waiting"], billing["callbacks"]) == (1, 2)


async def test_a_supervisor_moves_a_waiting_caller_up_over_the_api(tmp_path: Path) -> None:
    """Item 18: the engine's retier behind POST /api/queue/{call_id}/priority, for supervisors only,
    declared in the OpenAPI document and logged as acd.retier with who did it."""
    desk = await make_desk(tmp_path)
    rt, events = runtime()
    app, _hub = create_desktop_app(engine=desk.engine, agents=AcdAgentControl(rt), calls=FakeCalls(),
                                   wallboard=AcdWallboard(rt), customers=FakeCustomers(), emit=lambda e: None,
                                   config=DesktopConfig(), clock=desk.clock)
    rt.login("1001", ready=False)  # staffed, nobody free: callers wait
    rt.apply(lambda now: rt.engine.enqueue("c-first", "billing", "normal", "13900000001", now))
    rt.clock.jump(30)  # type: ignore[attr-defined]
    rt.apply(lambda now: rt.engine.enqueue("c-second", "billing", "normal", "13900000002", now))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        hs, ha = await login(client, "2001"), await login(client, "1001")
        wall = await (await client.get("/api/wallboard", headers=hs)).json()
        assert [(c["call_id"], c["tier"]) for c in wall["waiting_calls"]] == [
            ("c-first", "normal"), ("c-second", "normal")]
        assert wall["tiers"] == ["vip", "priority", "normal", "blacklist"]

        r = await client.post("/api/queue/c-second/priority", headers=ha, json={"tier": "vip"})
        assert r.status == 403 and (await r.json())["error"]["id"] == "forbidden"  # agents may not
        assert rt.engine.position("c-second", rt.clock.now()).position == 2

        r = await client.post("/api/queue/c-second/priority", headers=hs, json={"tier": "vip"})
        assert r.status == 200, await r.text()
        assert await r.json() == {"call_id": "c-second", "tier": "vip", "previous": "normal", "changed": True}
        assert rt.engine.position("c-second", rt.clock.now()).position == 1  # served first now
        [ev] = [e for e in events if e.kind == Kind.ACD_RETIER]
        assert (ev.call_id, ev.queue, ev.tier, ev.data["previous"], ev.data["by"]) == (
            "c-second", "billing", "vip", "normal", "2001")
        wall = await (await client.get("/api/wallboard", headers=hs)).json()
        assert [(c["call_id"], c["tier"]) for c in wall["waiting_calls"]] == [
            ("c-second", "vip"), ("c-first", "normal")]

        r = await client.post("/api/queue/c-second/priority", headers=hs, json={"tier": "vip"})
        assert (await r.json())["changed"] is False  # no second event for the same tier
        assert len([e for e in events if e.kind == Kind.ACD_RETIER]) == 1
        for call_id, body, status, error_id in [
                ("gone", {"tier": "vip"}, 404, "not-waiting"),
                ("c-first", {"tier": "gold"}, 422, "unknown-tier"),
                ("c-first", {"tier": "VIP; DROP"}, 422, "invalid"),
                ("c-first", {"tier": "vip", "extra": 1}, 422, "invalid")]:
            r = await client.post(f"/api/queue/{call_id}/priority", headers=hs, json=body)
            assert (r.status, (await r.json())["error"]["id"]) == (status, error_id), (call_id, body)
        assert rt.engine.position("c-first", rt.clock.now()).position == 2  # refusals changed nothing

        doc = await (await client.get("/api/openapi.json")).json()
        op = doc["paths"]["/api/queue/{call_id}/priority"]["post"]
        assert op["x-roles"] == ["admin", "supervisor"]
        assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/PriorityIn")
        assert "tier" in doc["components"]["schemas"]["PriorityIn"]["properties"]
    finally:
        await client.close()
        await desk.engine.dispose()
