"""How ACD callbacks count in the KPIs: the inbound call that asked for one is deferred (not lost,
not answered late); the callback's own queueing and dialling are outbound work, reported as the
`acd-callback` campaign."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.events import Event, Kind
from ctiserver.kpi.config import KpiConfig
from ctiserver.kpi.report import build_report

from .conftest import load

SH = ZoneInfo("Asia/Shanghai")
D0 = datetime(2026, 11, 23, tzinfo=SH).timestamp()
T = D0 + 10 * 3600


def callback_day() -> list[Event]:
    q = {"queue": "billing"}
    return [
        # k1 keeps their place (presses 1) after 40 s; an agent takes the callback 10 minutes later
        Event(Kind.CALL_NEW, T, "k1", data={"caller_num": "13900000001", "direction": "inbound"}),
        Event(Kind.ACD_ENQUEUE, T + 1, "k1", tier="normal", data={"caller": "13900000001"}, **q),
        Event(Kind.ACD_CALLBACK, T + 41, "k1", tier="normal", data={"reason": "in_place"}, **q),
        Event(Kind.CALL_END, T + 45, "k1", data={"answered": True}),
        Event(Kind.ACD_OFFER, T + 640, "k1", agent_id="1001", tier="normal", data={"kind": "callback"}, **q),
        Event(Kind.ACD_ANSWER, T + 645, "k1", agent_id="1001", tier="normal",
              data={"kind": "callback", "wait_s": 644}, **q),
        # p1, priority tier, gives up after 30 s: a callback is scheduled and queued as its own ACD call
        Event(Kind.CALL_NEW, T + 100, "p1", data={"caller_num": "13900000002", "direction": "inbound"}),
        Event(Kind.ACD_ENQUEUE, T + 101, "p1", tier="priority", data={"caller": "13900000002"}, **q),
        Event(Kind.ACD_ABANDON, T + 131, "p1", tier="priority", data={"wait_s": 30}, **q),
        Event(Kind.ACD_CALLBACK, T + 131, "p1", tier="priority", data={"reason": "abandon"}, **q),
        Event(Kind.ACD_ENQUEUE, T + 140, "cb-1-1", tier="priority",
              data={"caller": "13900000002", "kind": "callback", "reason": "abandon"}, **q),
        Event(Kind.ACD_OFFER, T + 700, "cb-1-1", agent_id="1001", tier="priority", data={"kind": "callback"}, **q),
        Event(Kind.ACD_ANSWER, T + 703, "cb-1-1", agent_id="1001", tier="priority",
              data={"kind": "callback"}, **q),
        # the agent legs and the tries on the customers
        Event(Kind.OUT_ATTEMPT, T + 640, "cb-x-2-1", agent_id="1001", data={"leg": "agent", "callback": 2}),
        Event(Kind.CALL_NEW, T + 640, "cb-x-2-1", data={"caller_num": "13900000001", "direction": "inbound"}),
        Event(Kind.OUT_ATTEMPT, T + 645, "cb-x-2-1", data={"campaign": "acd-callback", "contact": 2, "attempt": 1}),
        Event(Kind.OUT_RESULT, T + 660, "cb-x-2-1", data={"campaign": "acd-callback", "contact": 2,
                                                         "outcome": "answered", "attempt": 1}),
        Event(Kind.OUT_ATTEMPT, T + 700, "cb-x-1-1", agent_id="1001", data={"leg": "agent", "callback": 1}),
        Event(Kind.OUT_ATTEMPT, T + 703, "cb-x-1-1", data={"campaign": "acd-callback", "contact": 1, "attempt": 1}),
        Event(Kind.OUT_RESULT, T + 740, "cb-x-1-1", data={"campaign": "acd-callback", "contact": 1,
                                                         "outcome": "busy", "attempt": 1}),
    ]


async def test_callbacks_are_deferred_inbound_calls_and_an_outbound_campaign(engine: AsyncEngine) -> None:
    await load(engine, callback_day())
    r = await build_report(engine, KpiConfig(), D0, D0 + 86400, [], now=D0 + 86400)
    t = r["total"]
    # two inbound calls; neither the callback's own ACD call nor the agent legs count as inbound
    assert (t["calls_offered"], t["queued"]) == (2, 2)
    # k1 is not "answered after 644 s": it was deferred to a callback; p1 abandoned (and got a callback)
    assert (t["answered"], t["abandoned"], t["callbacks"], t["callbacks_after_abandon"]) == (0, 1, 1, 1)
    [ob] = r["outbound"]["rows"]  # the agent legs (no campaign) are not tries on a customer
    assert ob["key"] == {"campaign": "acd-callback"}
    m = ob["metrics"]
    assert (m["contacts"], m["attempts"], m["reached"]) == (2, 2, 1)


async def test_an_escalations_consultation_leg_is_not_an_inbound_call(engine: AsyncEngine) -> None:
    q = {"queue": "billing"}
    await load(engine, [
        Event(Kind.CALL_NEW, T, "c1", data={"caller_num": "13900000003", "direction": "inbound"}),
        Event(Kind.ACD_ENQUEUE, T + 1, "c1", tier="normal", data={"caller": "13900000003"}, **q),
        Event(Kind.ACD_ANSWER, T + 6, "c1", agent_id="1003", tier="normal", data={}, **q),
        # agent 1003 escalates: the consultation leg c1-x waits at the supervisor desk and is answered
        Event(Kind.ACD_ENQUEUE, T + 60, "c1-x", queue="supervisor", tier="normal",
              data={"caller": "13900000003", "kind": "consult"}),
        Event(Kind.ACD_ANSWER, T + 90, "c1-x", agent_id="1004", queue="supervisor", tier="normal", data={}),
        Event(Kind.ACD_COMPLETE, T + 300, "c1-x", agent_id="1004", queue="supervisor", data={"talk_s": 210}),
    ])
    r = await build_report(engine, KpiConfig(), D0, D0 + 86400, [], now=D0 + 86400)
    t = r["total"]
    assert (t["calls_offered"], t["queued"], t["answered"]) == (1, 1, 1)  # one customer call, answered in 5 s
    assert t["asa_s"] == 5.0


async def test_an_unknown_caller_number_never_makes_two_strangers_one_repeat_caller(engine: AsyncEngine) -> None:
    q = {"queue": "billing"}
    evs = []
    for i, (num, later) in enumerate([("<unknown>", "13900000007"), ("<unknown>", "13900000008")]):
        cid, t = f"u{i}", T + 600 * i
        evs += [Event(Kind.CALL_NEW, t, cid, data={"caller_num": num, "direction": "inbound"}),  # as Newchannel had it
                Event(Kind.ACD_ENQUEUE, t + 1, cid, tier="normal", data={"caller": later}, **q),  # the real one
                Event(Kind.ACD_ANSWER, t + 5, cid, agent_id="1001", tier="normal", data={}, **q)]
    await load(engine, evs)
    t = (await build_report(engine, KpiConfig(), D0, D0 + 86400, [], now=D0 + 86400))["total"]
    assert (t["fcr_eligible"], t["fcr_rate"]) == (2, 1.0)  # two different callers, neither called again
