"""The bridge turns catalogue events into pops, state pushes and call ends, in order."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ctiserver.clock import FakeClock
from ctiserver.events import Event, Kind
from ctiserver.web.auth import User
from ctiserver.web.bridge import DesktopBridge
from ctiserver.web.ws import Hub

from .fakes import FakeCustomers


def drain(client: Any) -> list[dict[str, Any]]:
    return [client.queue.get_nowait() for _ in range(client.queue.qsize())]


async def test_offer_answer_complete_for_a_known_caller() -> None:
    hub = Hub(clock=FakeClock(0))
    bridge = DesktopBridge(hub, FakeCustomers())
    page = hub.attach(User("1001", "a", "agent"), {}, None, {})
    other = hub.attach(User("1002", "b", "agent"), {}, None, {})
    sup = hub.attach(User("2001", "s", "supervisor"), {}, None, {})
    for c in (page, other, sup):
        drain(c)
    await bridge.start()
    try:
        for ev in [
            Event(Kind.CALL_NEW, ts=0.0, call_id="L1", data={"caller_num": "13800138000"}),
            Event(Kind.IVR_NODE, ts=0.0, call_id="L1", data={"node": "welcome"}),
            Event(Kind.IVR_NODE, ts=0.0, call_id="L1", data={"node": "fault_menu"}),
            Event(Kind.ACD_ENQUEUE, ts=0.0, call_id="L1", queue="fault", tier="vip", data={"caller": "13800138000"}),
            Event(Kind.ACD_OFFER, ts=0.0, call_id="L1", agent_id="1001", queue="fault", tier="vip",
                  data={"wait_s": 12.5}),
            Event(Kind.AGENT_STATE, ts=0.0, agent_id="1001", data={"state": "on_call", "previous": "ringing"}),
            Event(Kind.ACD_ANSWER, ts=0.0, call_id="L1", agent_id="1001", data={"wait_s": 15.0}),
            Event(Kind.ACD_COMPLETE, ts=0.0, call_id="L1", agent_id="1001", data={"talk_s": 60}),
            Event(Kind.CALL_END, ts=0.0, call_id="L1", data={"duration_s": 90}),
            Event(Kind.SURVEY_RATING, ts=0.0, call_id="L1", data={"rating": 5}),  # not ours: ignored
        ]:
            bridge.on_event(ev)
        await asyncio.wait_for(bridge.drain(), 5)
    finally:
        await bridge.close()
    got = drain(page)
    assert [m["type"] for m in got] == ["pop", "state", "pop", "call_end"]
    offer, answer = got[0]["data"], got[2]["data"]
    assert offer["phase"] == "offer" and offer["number"] == "13800138000" and offer["wait_s"] == 12.5
    assert offer["ivr_path"] == ["welcome", "fault_menu"] and offer["customer"]["name"] == "王小明"
    assert answer["phase"] == "answer" and answer["wait_s"] == 15.0
    assert [m["seq"] for m in got] == [1, 2, 3, 4]
    assert drain(other) == []
    assert [m["type"] for m in drain(sup)] == ["agent_state"]
    assert hub.active_pop("1001") is None and bridge._calls == {}


class SlowCustomers(FakeCustomers):
    async def by_phone(self, phone: str) -> dict[str, Any] | None:
        await asyncio.sleep(10)
        return None


async def test_slow_lookup_pops_without_record_and_unknown_caller_still_pops() -> None:
    hub = Hub(clock=FakeClock(0))
    bridge = DesktopBridge(hub, SlowCustomers(), lookup_timeout_s=0.05)
    page = hub.attach(User("1001", "a", "agent"), {}, None, {})
    drain(page)
    await bridge.start()
    try:
        bridge.on_event(Event(Kind.ACD_ENQUEUE, ts=0.0, call_id="L2", queue="billing", data={"caller": "13900000000"}))
        bridge.on_event(Event(Kind.ACD_OFFER, ts=0.0, call_id="L2", agent_id="1001", data={"wait_s": 3}))
        bridge.on_event(Event(Kind.ACD_RONA, ts=0.0, call_id="L2", agent_id="1001", data={"ring_s": 20}))
        await asyncio.wait_for(bridge.drain(), 5)
    finally:
        await bridge.close()
    got = drain(page)
    assert [m["type"] for m in got] == ["pop", "call_end"]
    assert got[0]["data"]["customer"] is None and got[0]["data"]["number"] == "13900000000"
    assert got[1]["data"] == {"call_id": "L2", "reason": "acd.rona"}


async def test_backlog_and_call_memory_are_bounded() -> None:
    hub = Hub(clock=FakeClock(0))
    bridge = DesktopBridge(hub, FakeCustomers(), max_calls=10, max_backlog=5)
    for i in range(8):  # not started: the queue fills, the rest are counted, never block the caller
        bridge.on_event(Event(Kind.CALL_NEW, ts=0.0, call_id=f"C{i}", data={"caller_num": "1"}))
    assert bridge.dropped == 3
    for i in range(50):
        await bridge.handle(Event(Kind.CALL_NEW, ts=0.0, call_id=f"D{i}", data={"caller_num": "1"}))
    assert len(bridge._calls) == 10 and "D49" in bridge._calls


async def test_the_pop_carries_the_routing_tier_and_the_callerid_name() -> None:
    """The record says normal; the IVR (or the tier rules) routed the call as vip, and a supervisor may
    move it: the pop's tier is the one the ACD routes on. A caller without a record keeps the CallerID
    name Asterisk gave."""
    hub = Hub(clock=FakeClock(0))
    customers = FakeCustomers()
    customers.records["13800138001"] = {"account": "3100012346", "name": "赵六", "tier": "normal"}
    bridge = DesktopBridge(hub, customers)
    page = hub.attach(User("1001", "a", "agent"), {}, None, {})
    drain(page)
    await bridge.start()
    try:
        for ev in [
            Event(Kind.ACD_ENQUEUE, ts=0.0, call_id="L3", queue="fault", tier="vip", data={"caller": "13800138001"}),
            Event(Kind.ACD_OFFER, ts=0.0, call_id="L3", agent_id="1001", queue="fault", data={"wait_s": 1}),
            Event(Kind.ACD_ENQUEUE, ts=0.0, call_id="L4", queue="billing", tier="normal",
                  data={"caller": "13900000004", "caller_name": "钱七"}),
            Event(Kind.ACD_RETIER, ts=0.0, call_id="L4", queue="billing", tier="priority", data={"previous": "normal"}),
            Event(Kind.ACD_OFFER, ts=0.0, call_id="L4", agent_id="1001", queue="billing", data={"wait_s": 2}),
            Event(Kind.CALL_NEW, ts=0.0, call_id="L5", data={"caller_num": "", "caller_name": ""}),
            Event(Kind.CALL_CALLERID, ts=0.0, call_id="L5",
                  data={"caller_num": "95598", "caller_name": "回拨 callback"}),
            Event(Kind.ACD_OFFER, ts=0.0, call_id="L5", agent_id="1001", queue="outbound", tier="normal",
                  data={"wait_s": 0}),
        ]:
            bridge.on_event(ev)
        await asyncio.wait_for(bridge.drain(), 5)
    finally:
        await bridge.close()
    first, second, third = (m["data"] for m in drain(page))
    assert first["tier"] == "vip" and first["customer"]["tier"] == "normal"
    assert (second["tier"], second["caller_name"], second["customer"]) == ("priority", "钱七", None)
    assert (third["number"], third["caller_name"]) == ("95598", "回拨 callback")


async def test_a_reconnect_closing_50k_stale_calls_is_one_warning_and_a_count(caplog) -> None:
    """Issue 12 item 5: a resync that found 50k calls gone emitted 50k call.end at once; the bridge's
    backlog (10k) overflowed and wrote a WARNING per event (40k in 0.5 s). Now: one, then a count."""
    from ctiserver.calls.tracker import CallTracker

    tracker = CallTracker("pbx1")
    for i in range(50_000):
        tracker.feed({"Event": "Newchannel", "Uniqueid": f"{i}.1", "Linkedid": f"{i}.1", "Channel": f"X/{i}"}, 1.0)
    bridge = DesktopBridge(Hub(clock=FakeClock(0)), FakeCustomers())
    await bridge.start()
    caplog.set_level(logging.INFO)
    try:
        tracker.begin_resync()
        for event in tracker.end_resync(2.0):  # Asterisk lists none of them: all ended meanwhile
            bridge.on_event(event)
        during = [r for r in caplog.records if r.name == "ctiserver.web.bridge"]
        assert len(during) == 1 and "backlog full" in during[0].getMessage()
        await asyncio.wait_for(bridge.drain(), 30)
    finally:
        await bridge.close()
    logged = [r.getMessage() for r in caplog.records if r.name == "ctiserver.web.bridge"]
    assert bridge.dropped == 40_000
    assert len(logged) == 2 and "39999 more in " in logged[1], logged


async def test_the_pop_carries_the_ivr_steps_with_their_names() -> None:
    hub = Hub(clock=FakeClock(0))
    bridge = DesktopBridge(hub, FakeCustomers())
    page = hub.attach(User("1001", "a", "agent"), {}, None, {})
    drain(page)
    await bridge.start()
    try:
        for ev in [Event(Kind.IVR_NODE, ts=0.0, call_id="L6", data={"node": "who", "node_kind": "lookup"}),
                   Event(Kind.IVR_NODE, ts=0.0, call_id="L6", data={"node": "main", "node_kind": "menu",
                                                             "title": {"zh": "主菜单", "en": "Main menu"}}),
                   Event(Kind.ACD_ENQUEUE, ts=0.0, call_id="L6", queue="billing", tier="normal", data={"caller": "1"}),
                   Event(Kind.ACD_OFFER, ts=0.0, call_id="L6", agent_id="1001", queue="billing", data={"wait_s": 1})]:
            bridge.on_event(ev)
        await asyncio.wait_for(bridge.drain(), 5)
    finally:
        await bridge.close()
    [pop] = [m["data"] for m in drain(page)]
    assert pop["ivr_path"] == ["who", "main"]
    assert pop["ivr_steps"] == [{"id": "who", "kind": "lookup", "name": None},
                                {"id": "main", "kind": "menu", "name": {"zh": "主菜单", "en": "Main menu"}}]
