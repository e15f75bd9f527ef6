"""WebSocket push: own pops only, replay after a reconnect, slow clients cut loose, supervisor updates."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from ctiserver.clock import FakeClock
from ctiserver.web.auth import User
from ctiserver.web.config import DesktopConfig
from ctiserver.web.ws import CLOSE_BAD_HELLO, Hub

from .conftest import Desk, login, make_desk

Client = TestClient[Any, Any]


async def connect(client: Client, headers: dict[str, str], last: dict[str, int] | None = None,
                  epoch: str | None = None) -> Any:
    ws = await client.ws_connect("/ws", headers=headers)
    await ws.send_json({"type": "hello", "epoch": epoch, "last": last or {}})
    hello = await ws.receive_json(timeout=5)
    assert hello["type"] == "hello"
    return ws


async def until(ws: Any, type_: str) -> dict[str, Any]:
    while True:
        msg = await ws.receive_json(timeout=5)
        if msg["type"] == type_:
            return dict(msg)


async def test_pop_reaches_only_its_agent(client: Client, desk: Desk) -> None:
    ws1 = await connect(client, await login(client, "1001"))
    ws2 = await connect(client, await login(client, "1002"))
    assert (await until(ws1, "snapshot"))["data"]["pop"] is None
    await until(ws2, "snapshot")
    desk.hub.publish_pop("1001", {"call_id": "c1", "number": "13800138000"})
    msg = await until(ws1, "pop")
    assert msg["stream"] == "agent:1001" and msg["seq"] == 1 and msg["data"]["number"] == "13800138000"
    desk.hub.publish_pop("1002", {"call_id": "c2", "number": "13900000000"})
    msg2 = await until(ws2, "pop")
    assert msg2["data"]["call_id"] == "c2"
    # ws1 got nothing of agent 1002's: its next message is its own
    desk.hub.publish_call_end("1001", "c1")
    nxt = await ws1.receive_json(timeout=5)
    assert nxt["type"] == "call_end" and nxt["stream"] == "agent:1001"
    for ws in (ws1, ws2):
        await ws.close()


async def test_agent_cannot_subscribe_to_supervisor_stream(client: Client, desk: Desk) -> None:
    ws = await client.ws_connect("/ws", headers=await login(client, "1001"))
    await ws.send_json({"type": "hello", "last": {"supervisor": 0, "agent:1002": 0}})
    hello = await ws.receive_json(timeout=5)
    assert hello["streams"] == ["agent:1001"]
    desk.hub.publish_supervisors("escalation", {"call_id": "x"})
    desk.hub.publish_pop("1002", {"call_id": "c2"})
    desk.hub.publish_pop("1001", {"call_id": "c1"})
    await until(ws, "snapshot")
    msg = await ws.receive_json(timeout=5)
    assert (msg["type"], msg["data"]["call_id"]) == ("pop", "c1")
    await ws.close()


async def test_reconnect_gets_missed_messages_then_current_state(client: Client, desk: Desk) -> None:
    h = await login(client, "1001")
    ws = await connect(client, h)
    snap = await until(ws, "snapshot")
    epoch = snap["epoch"]
    desk.hub.publish_pop("1001", {"call_id": "c1", "number": "1"})
    last = (await until(ws, "pop"))["seq"]
    await ws.close()
    # while the page is away: the call ends, another is offered, the state changes
    desk.hub.publish_call_end("1001", "c1")
    desk.hub.publish_pop("1001", {"call_id": "c2", "number": "2"})
    desk.hub.publish_state("1001", {"state": "ringing"})
    ws = await connect(client, h, last={"agent:1001": last}, epoch=epoch)
    got = [await ws.receive_json(timeout=5) for _ in range(4)]
    assert [(m["type"], m.get("seq")) for m in got] == [
        ("call_end", last + 1), ("pop", last + 2), ("state", last + 3), ("snapshot", None)]
    assert got[3]["data"]["pop"]["call_id"] == "c2"  # the live call's pop, for a page that reloads
    assert got[3]["seqs"] == {"agent:1001": last + 3}
    await ws.close()


async def test_new_epoch_replays_whole_ring_and_fresh_page_gets_none(client: Client, desk: Desk) -> None:
    h = await login(client, "1001")
    desk.hub.publish_pop("1001", {"call_id": "c1"})
    ws = await connect(client, h, last={"agent:1001": 7}, epoch="an-old-server")
    first = await ws.receive_json(timeout=5)
    assert (first["type"], first["seq"]) == ("pop", 1)
    await ws.close()
    ws = await connect(client, h)  # a page that never saw anything: state only
    assert (await ws.receive_json(timeout=5))["type"] == "snapshot"
    await ws.close()


async def test_ws_needs_session_origin_and_hello(client: Client, desk: Desk) -> None:
    r = await client.get("/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                         "Sec-WebSocket-Version": "13"})
    assert r.status == 401
    h = await login(client, "1001")
    r = await client.get("/ws", headers={**h, "Origin": "https://evil.example"})
    assert r.status == 403 and (await r.json())["error"]["id"] == "bad-origin"
    ws = await client.ws_connect("/ws", headers=h)
    await ws.send_str("not json at all")
    msg = await ws.receive(timeout=5)
    assert msg.type == WSMsgType.CLOSE and msg.data == CLOSE_BAD_HELLO
    assert desk.hub.client_count == 0


async def test_supervisor_gets_states_and_wallboard(tmp_path: Path) -> None:
    desk = await make_desk(tmp_path, config=DesktopConfig(wallboard_interval_s=0.05))
    client: Client = TestClient(TestServer(desk.app))
    await client.start_server()
    try:
        ws = await connect(client, await login(client, "2001"))
        snap = await until(ws, "snapshot")
        assert {a["agent_id"] for a in snap["data"]["agents"]} == {"1001", "1002", "2001"}
        desk.wallboard.waiting["billing"] = 3
        wall = await until(ws, "wallboard")
        assert wall["stream"] == "supervisor" and wall["data"]["queues"][0]["waiting"] == 3
        h1 = await login(client, "1001")
        await client.post("/api/agents/1001/state", headers=h1, json={"action": "login"})
        st = await until(ws, "agent_state")
        assert st["data"] == {"agent_id": "1001", "state": "not_ready", "reason": "login"}
        await ws.close()
    finally:
        await client.close()
        await desk.engine.dispose()


async def test_slow_client_is_cut_loose_and_others_get_everything() -> None:
    hub = Hub(clock=FakeClock(0.0), queue_size=10, replay_size=1000)
    sup = User("2001", "s", "supervisor")
    slow = hub.attach(sup, {}, None, {})
    fast = hub.attach(User("2002", "t", "supervisor"), {}, None, {})
    fast.queue.get_nowait()  # snapshot
    received = []
    for i in range(50):
        hub.publish_wallboard({"n": i})
        received.append(fast.queue.get_nowait())  # a reader that keeps up
    assert [m["data"]["n"] for m in received] == list(range(50))
    assert slow.kicked and slow.queue.qsize() <= 11 and hub.kicked_slow == 1
    # the slow page reconnects with its last seq and loses nothing
    last = slow.queue.get_nowait()  # snapshot
    seen = []
    while not slow.queue.empty():
        m = slow.queue.get_nowait()
        seen.append(m)
    hub.detach(slow)
    again = hub.attach(sup, {"supervisor": seen[-1]["seq"]}, hub.epoch, {})
    rest = [again.queue.get_nowait() for _ in range(again.queue.qsize())][:-1]
    assert [m["data"]["n"] for m in seen + rest] == list(range(50)) and last["type"] == "snapshot"


async def test_a_stalled_socket_does_not_stall_publishing(client: Client, desk: Desk) -> None:
    """A page that stops reading is cut loose once its queue fills; the live page keeps receiving all."""
    h_sup = await login(client, "2001")
    stalled = await connect(client, h_sup)  # never read again: TCP buffers fill, then its queue
    live = await connect(client, h_sup)
    await until(live, "snapshot")
    n = 600
    blob = "x" * 30_000  # 18 MB in all: more than loopback socket buffers hold

    async def read_all() -> list[int]:
        return [(await until(live, "note"))["data"]["i"] for _ in range(n)]

    reader = asyncio.create_task(read_all())
    for i in range(n):
        desk.hub.publish_supervisors("note", {"i": i, "blob": blob})
        await asyncio.sleep(0.002)
    assert await asyncio.wait_for(reader, 30) == list(range(n))
    assert desk.hub.kicked_slow == 1
    await stalled.close()
    await live.close()


async def test_odd_values_in_a_pop_do_not_break_the_socket(client: Client, desk: Desk) -> None:
    import datetime as dt
    from decimal import Decimal

    ws = await connect(client, await login(client, "1001"))
    await until(ws, "snapshot")
    desk.hub.publish_pop("1001", {"call_id": "c1", "customer": {"arrears": Decimal("12.30"),
                                                                "due_date": dt.date(2026, 12, 15)}})
    desk.hub.publish_pop("1001", {"call_id": "c2"})
    first, second = await until(ws, "pop"), await until(ws, "pop")
    assert first["data"]["customer"] == {"arrears": "12.30", "due_date": "2026-12-15"}
    assert second["data"]["call_id"] == "c2"
    await ws.close()
