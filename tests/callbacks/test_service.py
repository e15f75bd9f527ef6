"""ACD callbacks end to end with the real engine and store, a scripted AMI and scripted agent legs.

The ACD schedules (a priority caller's abandon) or keeps (the callback key) a callback; the
service stores it, hands it to the engine, rings the agent the engine picks with an Originate,
and on the agent's answer (the AGI session of the agent leg) dials the customer and records the
outcome: done, retried later, given up, cancelled by a redial, or recovered after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.acd.engine import AcdEngine
from ctiserver.acd.runtime import AcdHooks, AcdRuntime
from ctiserver.agi.channel import AgiHangup, AgiReply
from ctiserver.callbacks.rules import CallbackStatus
from ctiserver.callbacks.service import AcdCallbackService
from ctiserver.callbacks.store import TABLES, CallbackStore
from ctiserver.clock import FakeClock
from ctiserver.events import Event, Kind
from ctiserver.outbound.model import OutboundConfig
from ctiserver.store.schema import metadata
from ctiserver.web.guard import new_app
from tests.acd.helpers import config

T0 = 1_795_500_000.0  # 2026-11-23 10:40 in Shanghai: inside the calling window


@dataclass
class Reply:
    success: bool = True
    message: str = ""
    response: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeAmi:
    actions: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    refuse: bool = False

    async def action(self, name: str, fields: Any = None, /) -> Reply:
        self.actions.append((name, dict(fields or {})))
        return Reply(not self.refuse, "refused" if self.refuse else "queued",
                     {"ActionID": f"a{len(self.actions)}"})

    def originates(self) -> list[dict[str, Any]]:
        return [f for n, f in self.actions if n == "Originate"]


@dataclass
class AgentLeg:
    """The agent's answered leg in the [acd-callback] dialplan, talking AGI to us."""

    uniqueid: str
    dialstatus: str = "ANSWER"
    hangup_in_dial: bool = False
    commands: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"agi_uniqueid": self.uniqueid}

    @property
    def path(self) -> str:
        return "callback"

    async def execute(self, command: str) -> AgiReply:
        self.commands.append(command)
        if command.startswith("EXEC Dial"):
            if self.hangup_in_dial:
                raise AgiHangup("the agent hung up")
            return AgiReply(200, "0")
        if command == "GET VARIABLE DIALSTATUS":
            return AgiReply(200, "1", self.dialstatus)
        if command.startswith("SET VARIABLE "):
            name, _, value = command[len("SET VARIABLE "):].partition(" ")
            self.variables[name] = value
        return AgiReply(200, "0")


class World:
    def __init__(self, engine: AsyncEngine, clock: FakeClock, agents: dict[str, dict[str, int]],
                 **cfg: Any) -> None:
        self.clock = clock
        self.events: list[Event] = []
        self.ami = FakeAmi()
        self.acd = AcdRuntime(AcdEngine(config(agents, dial_template="Local/{id}@sim-agents", **cfg)), clock,
                              self.events.append, hooks=AcdHooks())
        out_cfg = OutboundConfig.model_validate({"dial": {"channel": "Local/{number}@outbound-dest"},
                                                 "acd_callbacks": {"windows": ["00:00-24:00"]}})
        self.svc = AcdCallbackService(out_cfg, CallbackStore(engine), self.acd, self.ami, clock,
                                      self.events.append, server_name="pbx1")
        hooks = self.acd.hooks
        hooks.on_callback, hooks.on_callback_offer = self.svc.on_callback, self.svc.on_callback_offer
        hooks.on_callback_cancel = self.svc.on_callback_cancel

    def login(self, *agents: str) -> None:
        for a in agents:
            self.acd.login(a, ready=True)

    def kinds(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    async def agent_answers(self, leg: AgentLeg) -> None:
        await self.svc.handle_agi(leg)
        await self.svc.drain()


@pytest.fixture
async def cb_engine(engine: AsyncEngine) -> AsyncEngine:
    async with engine.begin() as conn:
        await conn.run_sync(lambda sync: metadata.drop_all(sync, tables=list(TABLES)))
        await conn.run_sync(lambda sync: metadata.create_all(sync, tables=list(TABLES)))
    return engine


def priority_abandon(w: World, call_id: str, number: str, wait_s: float = 30.0) -> None:
    """A priority caller waits (every agent busy) and gives up: the engine schedules a callback."""
    w.acd.apply(lambda now: w.acd.engine.enqueue(call_id, "billing", "priority", number, now))
    w.clock.jump(wait_s)
    w.acd.apply(lambda now: w.acd.engine.abandon(call_id, now))


def busy_agent(w: World, agent: str = "1001") -> None:
    """Make `agent` talk to a live caller so new calls have to wait."""
    now = w.clock.now()
    w.acd.engine.enqueue(f"live-{agent}", "billing", "normal", "0", now)  # the engine alone: no AGI caller
    w.acd.engine.ring_answered(f"live-{agent}", now)


async def test_priority_abandon_is_called_back_by_the_next_free_agent(cb_engine: AsyncEngine) -> None:
    w = World(cb_engine, FakeClock(T0), {"1001": {"billing": 5}})
    w.login("1001")
    busy_agent(w)
    priority_abandon(w, "in-1", "13900000001")
    await w.svc.drain()
    [row] = await w.svc.store.with_status(CallbackStatus.PENDING, CallbackStatus.QUEUED)
    assert (row.origin_call, row.number, row.reason, row.status) == ("in-1", "13900000001", "abandon", "queued")
    assert w.ami.originates() == []  # the only agent is busy: the callback waits in the ACD

    w.clock.jump(60)
    w.acd.apply(lambda now: w.acd.engine.call_ended("live-1001", now))
    w.clock.jump(10)  # wrap-up
    w.acd.apply(w.acd.engine.tick)
    await w.svc.drain()
    [orig] = w.ami.originates()
    assert orig["Channel"] == "Local/1001@sim-agents" and orig["Context"] == "acd-callback"
    assert orig["ChannelId"].startswith("cb-") and orig["Timeout"] == "12000"
    assert "CB_DIAL=Local/13900000001@outbound-dest" in orig["Variable"]
    assert w.acd.engine.agent_state("1001")[0] == "ringing"

    await w.agent_answers(AgentLeg(orig["ChannelId"], "ANSWER"))
    done = await w.svc.store.get(row.id)
    assert done is not None and (done.status, done.attempts, done.last_outcome, done.agent_id) == (
        "done", 1, "answered", "1001")
    assert w.acd.engine.agent_state("1001")[0] == "wrap_up"
    [attempt] = [e for e in w.kinds(Kind.OUT_ATTEMPT) if e.data.get("campaign") == "acd-callback"]
    [result] = w.kinds(Kind.OUT_RESULT)
    assert (attempt.call_id, result.data["outcome"], result.data["status"]) == (orig["ChannelId"], "answered",
                                                                                "done")
    [end] = w.kinds(Kind.ACD_CALLBACK_END)
    assert (end.call_id, end.data["status"]) == ("in-1", "done")
    answer = [e for e in w.kinds(Kind.ACD_ANSWER) if e.data.get("kind") == "callback"]
    assert [e.agent_id for e in answer] == ["1001"]


async def test_a_busy_customer_is_tried_again_later_then_given_up(cb_engine: AsyncEngine) -> None:
    w = World(cb_engine, FakeClock(T0), {"1001": {"billing": 5}})
    w.login("1001")
    busy_agent(w)
    priority_abandon(w, "in-1", "13900000003")
    w.acd.apply(lambda now: w.acd.engine.call_ended("live-1001", now))
    w.clock.jump(10)
    w.acd.apply(w.acd.engine.tick)  # wrap-up over: the agent is free
    await w.svc.drain()
    for attempt in (1, 2, 3):
        assert len(w.ami.originates()) == attempt
        await w.agent_answers(AgentLeg(w.ami.originates()[-1]["ChannelId"], "BUSY"))
        [row] = await w.svc.store.by_origin("in-1")
        assert (row.attempts, row.last_outcome) == (attempt, "busy")
        if attempt < 3:
            assert (row.status, row.next_ts) == ("pending", w.clock.now() + 600)
            w.clock.jump(10)
            w.acd.apply(w.acd.engine.tick)  # the agent's wrap-up after the try
            w.clock.jump(589)
            await w.svc.drain()
            assert len(w.ami.originates()) == attempt  # not before the retry delay
            w.clock.jump(1)
            await w.svc.drain()
    assert row.status == "not_reached"
    assert len(w.ami.originates()) == 3
    assert [e.data["status"] for e in w.kinds(Kind.ACD_CALLBACK_END)] == ["not_reached"]


async def test_an_agent_who_does_not_answer_is_skipped_and_the_callback_keeps_its_place(
        cb_engine: AsyncEngine) -> None:
    w = World(cb_engine, FakeClock(T0), {"1001": {"billing": 9}, "1002": {"billing": 5}})
    w.login("1001", "1002")
    busy_agent(w, "1001")
    busy_agent(w, "1002")
    priority_abandon(w, "in-1", "13900000001")
    w.acd.apply(lambda now: w.acd.engine.call_ended("live-1001", now))
    w.clock.jump(10)
    w.acd.apply(w.acd.engine.tick)
    await w.svc.drain()
    [first] = w.ami.originates()
    assert first["Channel"] == "Local/1001@sim-agents"
    w.svc.on_ami_event("pbx1", {"Event": "OriginateResponse", "Response": "Failure", "Reason": "3",
                                "ActionID": "a1", "Uniqueid": "<null>"})
    await w.svc.drain()
    assert w.acd.engine.agent_state("1001") == ("not_ready", "rona")
    w.acd.apply(lambda now: w.acd.engine.call_ended("live-1002", now))
    w.clock.jump(10)
    w.acd.apply(w.acd.engine.tick)
    await w.svc.drain()
    second = w.ami.originates()[-1]
    assert second["Channel"] == "Local/1002@sim-agents"
    await w.agent_answers(AgentLeg(second["ChannelId"], "ANSWER"))
    [row] = await w.svc.store.by_origin("in-1")
    assert (row.status, row.agent_id, row.attempts) == ("done", "1002", 1)  # the RONA cost no try


async def test_a_kept_place_is_called_at_its_turn_and_survives_a_restart(cb_engine: AsyncEngine) -> None:
    clock = FakeClock(T0)
    w = World(cb_engine, clock, {"1001": {"billing": 5}})
    w.login("1001")
    busy_agent(w)
    w.acd.apply(lambda now: w.acd.engine.enqueue("in-1", "billing", "normal", "13900000001", now))
    clock.jump(20)
    w.acd.apply(lambda now: w.acd.engine.request_callback("in-1", now))
    await w.svc.drain()
    [row] = await w.svc.store.by_origin("in-1")
    assert (row.status, row.engine_call, row.reason, row.place_ts) == ("queued", "in-1", "in_place", T0)

    # the CTI restarts: a new engine knows nothing; the stored row brings the place back
    clock.jump(30)
    w2 = World(cb_engine, clock, {"1001": {"billing": 5}})
    w2.login("1001")
    busy_agent(w2)
    w2.acd.apply(lambda now: w2.acd.engine.enqueue("in-2", "billing", "normal", "13900000002", now))
    await w2.svc.recover()
    await w2.svc.drain()
    engine_call = f"cb-{row.id}-1"
    assert w2.acd.engine.call_state(engine_call) == "waiting"
    assert w2.acd.engine.position(engine_call, clock.now()).position == 1  # ahead of in-2, who came later
    assert w2.acd.engine.position("in-2", clock.now()).position == 2
    w2.acd.apply(lambda now: w2.acd.engine.call_ended("live-1001", now))
    clock.jump(10)
    w2.acd.apply(w2.acd.engine.tick)
    await w2.svc.drain()
    [orig] = w2.ami.originates()
    assert f"CB_CALL={engine_call}" in orig["Variable"]


async def test_a_redial_cancels_the_scheduled_callback(cb_engine: AsyncEngine) -> None:
    w = World(cb_engine, FakeClock(T0), {"1001": {"billing": 5}})
    w.login("1001")
    busy_agent(w)
    priority_abandon(w, "in-1", "13900000001")
    await w.svc.drain()
    w.clock.jump(30)
    w.acd.apply(lambda now: w.acd.engine.enqueue("in-2", "billing", "priority", "13900000001", now))
    await w.svc.drain()
    [row] = await w.svc.store.by_origin("in-1")
    assert (row.status, row.last_outcome) == ("cancelled", "redial")
    assert w.acd.engine.call_state(f"cb-{row.id}-1") is None  # taken out of the ACD as well
    assert [e.data["status"] for e in w.kinds(Kind.ACD_CALLBACK_END)] == ["cancelled"]


async def test_one_open_callback_per_number(cb_engine: AsyncEngine) -> None:
    w = World(cb_engine, FakeClock(T0), {"1001": {"billing": 5}}, redial_window_s=0)
    w.login("1001")
    busy_agent(w)
    priority_abandon(w, "in-1", "13900000001")
    priority_abandon(w, "in-2", "13900000001")
    await w.svc.drain()
    open_rows = await w.svc.store.with_status(CallbackStatus.PENDING, CallbackStatus.QUEUED)
    assert [r.origin_call for r in open_rows] == ["in-1"]


async def test_a_try_cut_by_a_crash_counts_as_lost_and_is_retried(cb_engine: AsyncEngine) -> None:
    clock = FakeClock(T0)
    w = World(cb_engine, clock, {"1001": {"billing": 5}})
    w.login("1001")
    priority_abandon(w, "in-1", "13900000001")  # agent free: offered at once
    busy_agent(w)
    await w.svc.drain()
    [row] = await w.svc.store.by_origin("in-1")
    assert await w.svc.store.mark_dialing(row.id, "cb-x-1-1", "1001", clock.now())  # as if answered, then died
    w2 = World(cb_engine, clock, {"1001": {"billing": 5}})
    await w2.svc.recover()
    [row] = await w2.svc.store.by_origin("in-1")
    assert (row.status, row.attempts, row.last_outcome, row.next_ts) == ("pending", 1, "lost", clock.now() + 300)
    [result] = w2.kinds(Kind.OUT_RESULT)
    assert result.data["outcome"] == "lost"


async def test_past_due_callbacks_expire(cb_engine: AsyncEngine) -> None:
    w = World(cb_engine, FakeClock(T0), {"1001": {"billing": 5}},
              tiers=[{"name": "vip"}, {"name": "priority", "callback_on_abandon": {"min_wait_s": 0,
                                                                                  "due_within_s": 600}},
                     {"name": "normal"}, {"name": "blacklist", "last_resort": True}])
    w.login("1001")
    busy_agent(w)
    priority_abandon(w, "in-1", "13900000001")  # the only agent is busy: it waits in the ACD
    await w.svc.drain()
    [row] = await w.svc.store.by_origin("in-1")
    assert row.status == "queued" and w.acd.engine.call_state(f"cb-{row.id}-1") == "waiting"
    w.clock.jump(601)
    await w.svc.drain()
    [row] = await w.svc.store.by_origin("in-1")
    assert row.status == "expired"
    assert w.acd.engine.call_state(f"cb-{row.id}-1") is None
    assert [e.data["status"] for e in w.kinds(Kind.ACD_CALLBACK_END)] == ["expired"]


async def test_an_agent_leg_answered_after_the_acd_gave_up_is_released(cb_engine: AsyncEngine) -> None:
    w = World(cb_engine, FakeClock(T0), {"1001": {"billing": 5}})
    leg = AgentLeg("cb-unknown-1-1")
    await w.agent_answers(leg)
    assert leg.variables == {"CTI_DONE": "1"}
    assert not any(c.startswith("EXEC Dial") for c in leg.commands)


async def test_the_agent_hanging_up_before_the_customer_answers_costs_no_try(cb_engine: AsyncEngine) -> None:
    w = World(cb_engine, FakeClock(T0), {"1001": {"billing": 5}})
    w.login("1001")
    priority_abandon(w, "in-1", "13900000001")
    await w.svc.drain()
    [orig] = w.ami.originates()
    await w.agent_answers(AgentLeg(orig["ChannelId"], hangup_in_dial=True))
    [row] = await w.svc.store.by_origin("in-1")
    assert (row.status, row.last_outcome, row.next_ts) == ("pending", "agent_hangup", w.clock.now() + 60)
    assert w.acd.engine.agent_state("1001")[0] == "wrap_up"


async def test_supervisors_list_and_cancel_callbacks_over_http(cb_engine: AsyncEngine) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from ctiserver.outbound.http import add_callback_routes

    w = World(cb_engine, FakeClock(T0), {"1001": {"billing": 5}})
    w.login("1001")
    busy_agent(w)
    priority_abandon(w, "in-1", "13900000001")
    priority_abandon(w, "in-2", "13900000002")
    await w.svc.drain()
    ready: dict[str, AcdCallbackService] = {}
    app = new_app()
    add_callback_routes(app, lambda: ready.get("svc"))
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/api/outbound/callbacks")
        assert resp.status == 503 and (await resp.json())["error"]["id"] == "callbacks_not_ready"
        ready["svc"] = w.svc
        body = await (await client.get("/api/outbound/callbacks")).json()
        assert body["counts"] == {"queued": 2}
        assert [(c["number"], c["reason"]) for c in body["callbacks"]] == [("13900000001", "abandon"),
                                                                          ("13900000002", "abandon")]
        assert "customer" not in body["callbacks"][0]
        first = body["callbacks"][0]["id"]
        resp = await client.post(f"/api/outbound/callbacks/{first}/cancel")
        assert resp.status == 200 and (await resp.json())["status"] == "cancelled"
        assert w.acd.engine.call_state(f"cb-{first}-1") is None
        resp = await client.post(f"/api/outbound/callbacks/{first}/cancel")
        assert resp.status == 409 and (await resp.json())["error"]["id"] == "callback_state"
        for bad, status, error in (("999", 404, "unknown_callback"), ("1;DROP", 400, "bad_id"),
                                   ("9" * 40, 400, "bad_id")):
            resp = await client.post(f"/api/outbound/callbacks/{bad}/cancel")
            assert resp.status == status and (await resp.json())["error"]["id"] == error
        assert (await client.get("/api/outbound/callbacks?limit=x")).status == 400
        body = await (await client.get("/api/outbound/callbacks")).json()
        assert body["counts"] == {"queued": 1, "cancelled": 1}


async def test_closed_work_orders_are_called_back_by_agents_in_the_customer_class_window(
        cb_engine: AsyncEngine) -> None:
    """The rulebook's 回访: an agent with the outbound skill calls, business customers in working hours,
    residential ones after work (never after 22:00), within one working day of the closure."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from sqlalchemy import insert

    from ctiserver.outbound.service import OutboundService
    from tests.customers.test_targets import customers, md

    async with cb_engine.begin() as conn:  # the customer tables, with one business customer
        await conn.run_sync(md.drop_all)
        await conn.run_sync(md.create_all)
        await conn.execute(insert(customers), [{"account": "B1", "name": "某厂", "category": "commercial"}])
    sh = ZoneInfo("Asia/Shanghai")
    clock = FakeClock(datetime(2026, 11, 23, 10, 0, tzinfo=sh).timestamp())  # Monday 10:00
    w = World(cb_engine, clock, {"1006": {"outbound": 7}, "1001": {"billing": 9}},
              skills=["billing", "fault", "vip_desk", "english", "outbound"])
    w.login("1006", "1001")
    cfg = OutboundConfig.model_validate({"dial": {"channel": "Local/{number}@outbound-dest"}})
    assert cfg.callbacks.mode == "agent"  # the default, as the rulebook wants
    out = OutboundService(cfg, cb_engine, w.ami, "pbx1", clock, w.events.append, agent_callbacks=w.svc)
    await out.store.create_tables()
    w.svc.cfg = cfg
    await out.store.add_to_list(["13900000009"], "dnc", "asked", clock.now())
    assert await out.add_callback(workorder_id=1, number="13900000001", category="complaint", account="B1") is True
    assert await out.add_callback(workorder_id=2, number="13900000002", category="complaint") is True
    assert await out.add_callback(workorder_id=3, number="13900000001", category="report") is False  # open already
    assert await out.add_callback(workorder_id=4, number="13900000009", category="complaint") is False  # dnc
    rows = {r.origin_call: r for r in await w.svc.store.recent()}
    assert (rows["wo-1"].windows, rows["wo-2"].windows) == ("09:00-17:00", "17:00-22:00")  # no account: residential
    assert rows["wo-2"].due_ts == datetime(2026, 11, 24, 10, 0, tzinfo=sh).timestamp()  # 1 working day
    assert (rows["wo-1"].skill, rows["wo-1"].reason) == ("outbound", "workorder")

    await w.svc.drain()
    [orig] = w.ami.originates()  # 10:00: the business customer now, by the outbound agent
    assert orig["Channel"] == "Local/1006@sim-agents" and "CB_NUMBER=13900000001" in orig["Variable"]
    [offer] = [e for e in w.kinds(Kind.ACD_OFFER) if e.data.get("kind") == "callback"]
    assert (offer.agent_id, offer.data["number"]) == ("1006", "13900000001")  # the desktop pops this record
    leg = AgentLeg(orig["ChannelId"], "ANSWER")
    await w.agent_answers(leg)
    assert any(c.startswith("EXEC Dial Local/13900000001@outbound-dest") for c in leg.commands)
    # for the 回访率: each selected order is 'due', and 'done' once its customer was reached
    assert [(e.data["id"], e.data["action"], e.data["mode"]) for e in w.kinds(Kind.WORKORDER_CALLBACK)] == [
        ("1", "due", "agent"), ("2", "due", "agent"), ("1", "done", "agent")]
    clock.set(datetime(2026, 11, 23, 16, 59, tzinfo=sh).timestamp())
    w.acd.apply(w.acd.engine.tick)
    await w.svc.drain()
    assert len(w.ami.originates()) == 1  # the residential one waits for 17:00
    assert w.svc.last_plan.next_deadline == datetime(2026, 11, 23, 17, 0, tzinfo=sh).timestamp()
    clock.set(datetime(2026, 11, 23, 17, 0, tzinfo=sh).timestamp())
    await w.svc.drain()
    assert "CB_NUMBER=13900000002" in w.ami.originates()[-1]["Variable"]


async def test_a_callback_whose_number_is_listed_before_it_rings_is_given_up(cb_engine: AsyncEngine) -> None:
    """Issue 12 item 16: a priority abandon's callback, then the customer asks not to be called."""
    from ctiserver.outbound.store import OutboundStore

    w = World(cb_engine, FakeClock(T0), {"1001": {"billing": 5}})
    lists = OutboundStore(cb_engine)
    await lists.create_tables()
    w.svc.listed = lists.listed
    w.login("1001")
    busy_agent(w)
    priority_abandon(w, "in-1", "13900000001")
    await w.svc.drain()
    [row] = await w.svc.store.recent()
    assert row.status == CallbackStatus.QUEUED  # waiting in the ACD for the busy agent
    await lists.add_to_list(["13900000001"], "dnc", "asked", w.clock.now())  # after it was scheduled
    w.acd.apply(lambda now: w.acd.engine.call_ended("live-1001", now))
    w.clock.jump(10)
    w.acd.apply(w.acd.engine.tick)  # wrap-up over: the agent is free and the ACD offers the callback
    await w.svc.drain()
    [row] = await w.svc.store.recent()
    assert (row.status, row.last_outcome) == (CallbackStatus.CANCELLED, "dnc")
    assert w.ami.originates() == []  # the agent was never rung for it
    assert w.acd.engine.agent_state("1001")[0] == "available"
    [end] = w.kinds(Kind.ACD_CALLBACK_END)
    assert (end.call_id, end.data["status"], end.data["outcome"]) == ("in-1", "cancelled", "dnc")


async def test_a_database_outage_loses_no_callback_and_strands_no_agent(cb_engine: AsyncEngine,
                                                                       tmp_path: Any) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    broken = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/db.sqlite")
    w = World(cb_engine, FakeClock(T0), {"1001": {"billing": 5}})
    w.login("1001")
    busy_agent(w)
    good = w.svc.store.engine
    w.svc.store.engine = broken
    try:
        priority_abandon(w, "in-1", "13900000001")
        await w.svc.drain()
        assert w.svc._deferred and w.svc._deferred[0][0] == "schedule"  # kept, not dropped
        w.svc.store.engine = good
        w.clock.jump(1)
        await w.svc.drain()
        assert await w.svc.store.by_origin("in-1") == []  # not before the retry time
        w.clock.jump(2)
        await w.svc.drain()
        [row] = await w.svc.store.by_origin("in-1")
        assert row.status == "queued"
        # the agent gets free and answers while the database is away again: the customer is still called
        w.acd.apply(lambda now: w.acd.engine.call_ended("live-1001", now))
        w.clock.jump(10)
        w.acd.apply(w.acd.engine.tick)
        await w.svc.drain()
        [orig] = w.ami.originates()
        w.svc.store.engine = broken
        leg = AgentLeg(orig["ChannelId"], "ANSWER")
        await w.agent_answers(leg)
        assert any(c.startswith("EXEC Dial Local/13900000001@outbound-dest") for c in leg.commands)
        assert w.acd.engine.agent_state("1001")[0] == "wrap_up"  # not stuck on a call
    finally:
        w.svc.store.engine = good
        await broken.dispose()


async def test_a_callback_closed_in_the_database_by_someone_else_rings_no_agent(cb_engine: AsyncEngine) -> None:
    w = World(cb_engine, FakeClock(T0), {"1001": {"billing": 5}})
    w.login("1001")
    busy_agent(w)
    priority_abandon(w, "in-1", "13900000001")
    await w.svc.drain()
    [row] = await w.svc.store.by_origin("in-1")
    assert await w.svc.store.close(row.id, CallbackStatus.CANCELLED, w.clock.now(), outcome="tool")
    w.acd.apply(lambda now: w.acd.engine.call_ended("live-1001", now))
    w.clock.jump(10)
    w.acd.apply(w.acd.engine.tick)
    await w.svc.drain()
    assert w.ami.originates() == []
    assert w.acd.engine.call_state(f"cb-{row.id}-1") is None
    assert w.acd.engine.agent_state("1001")[0] == "available"


async def test_a_customer_who_calls_again_while_their_callback_waits_is_not_called_back(
        cb_engine: AsyncEngine) -> None:
    w = World(cb_engine, FakeClock(T0), {"1001": {"billing": 5}}, redial_window_s=0)
    w.login("1001")
    busy_agent(w)
    priority_abandon(w, "in-1", "13900000001")  # scheduled callback, queued in the ACD as cb-<id>-1
    await w.svc.drain()
    [row] = await w.svc.store.by_origin("in-1")
    assert row.status == "queued"
    w.clock.jump(600)
    w.acd.apply(lambda now: w.acd.engine.enqueue("in-2", "billing", "priority", "13900000001", now))
    await w.svc.drain()
    [row] = await w.svc.store.by_origin("in-1")
    assert (row.status, row.last_outcome) == ("cancelled", "redial")
    assert w.acd.engine.position("in-2", w.clock.now()).position == 1


async def test_a_voicemail_is_answered_by_an_agent_who_hears_it_first(cb_engine: AsyncEngine) -> None:
    from ctiserver.acd.model import ScheduleCallback

    w = World(cb_engine, FakeClock(T0), {"1001": {"billing": 5}})
    w.login("1001")
    w.svc.on_callback(ScheduleCallback("vm-call", "13900000001", "billing", "normal", T0 + 86400, "voicemail",
                                       recording="/var/spool/asterisk/monitor/vm-billing-vm-call"))
    await w.svc.drain()
    [orig] = w.ami.originates()
    leg = AgentLeg(orig["ChannelId"], "ANSWER")
    await w.agent_answers(leg)
    play = leg.commands.index('STREAM FILE /var/spool/asterisk/monitor/vm-billing-vm-call ""')
    dial = next(i for i, c in enumerate(leg.commands) if c.startswith("EXEC Dial"))
    assert play < dial  # the message first, then the caller
    [row] = await w.svc.store.by_origin("vm-call")
    assert (row.reason, row.status) == ("voicemail", "done")


async def test_the_whisper_names_the_queue_and_the_number(cb_engine: AsyncEngine) -> None:
    w = World(cb_engine, FakeClock(T0), {"1001": {"billing": 5}})
    w.svc.policy = w.svc.policy.model_copy(update={"whisper": "{skill}回拨尾号{last4}"})
    heard: list[str] = []

    async def say(chan: Any, text: str, lang: str) -> None:
        heard.append(text)

    w.svc.say = say
    w.login("1001")
    priority_abandon(w, "in-1", "13900000001")
    await w.svc.drain()
    [orig] = w.ami.originates()
    await w.agent_answers(AgentLeg(orig["ChannelId"], "ANSWER"))
    assert heard == ["billing回拨尾号0001"]


async def test_an_agent_on_another_server_is_rung_there(cb_engine: AsyncEngine) -> None:
    """Several Asterisk servers: the agent's callback leg rings on the server the agent's phone is on (no trunk
    in it); that server's answer about the ring (a failed Originate) is read by its own ActionID."""
    w = World(cb_engine, FakeClock(T0), {"1001": {"billing": 5}})
    cfg = config(None, dial_template="Local/{id}@sim-agents",
                 agents=[{"id": "1001", "skills": {"billing": 5}, "server": "pbx2"}])
    w.acd = AcdRuntime(AcdEngine(cfg), w.clock, w.events.append, hooks=AcdHooks())
    pbx2 = FakeAmi()
    out_cfg = OutboundConfig.model_validate({"dial": {"channel": "Local/{number}@outbound-dest"},
                                             "acd_callbacks": {"windows": ["00:00-24:00"]}})
    w.svc = AcdCallbackService(out_cfg, CallbackStore(cb_engine), w.acd, w.ami, w.clock, w.events.append,
                               server_name="pbx1", agent_servers={"pbx2": pbx2})
    hooks = w.acd.hooks
    hooks.on_callback, hooks.on_callback_offer = w.svc.on_callback, w.svc.on_callback_offer
    hooks.on_callback_cancel = w.svc.on_callback_cancel
    w.login("1001")
    busy_agent(w)
    priority_abandon(w, "in-1", "13900000001")
    w.clock.jump(60)
    w.acd.apply(lambda now: w.acd.engine.call_ended("live-1001", now))
    w.clock.jump(10)
    w.acd.apply(w.acd.engine.tick)
    await w.svc.drain()
    assert w.ami.originates() == []
    [orig] = pbx2.originates()
    assert orig["Channel"] == "Local/1001@sim-agents" and w.acd.engine.agent_state("1001")[0] == "ringing"
    w.svc.on_ami_event("pbx1", {"Event": "OriginateResponse", "Response": "Failure", "ActionID": "a1"})
    await w.svc.drain()
    assert w.acd.engine.agent_state("1001")[0] == "ringing"  # pbx1's a1 is another Originate
    w.svc.on_ami_event("pbx2", {"Event": "OriginateResponse", "Response": "Failure", "ActionID": "a1",
                                "Reason": "8"})
    await w.svc.drain()
    assert w.acd.engine.agent_state("1001")[0] != "ringing"
