"""Random hotline days (Hypothesis): groupings add up to the total and outcomes partition the calls."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctiserver.events import Event, Kind
from ctiserver.kpi.config import KpiConfig
from ctiserver.kpi.report import build_report

D0 = datetime(2026, 11, 23, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
OUTCOMES = ("answer", "abandon", "callback", "overflow", "blocked", "ivr_only", "ivr_hangup", "rona_answer")
COUNTS = ("calls_offered", "ivr_calls", "ivr_contained", "agent_requests", "queued", "blocked", "answered",
          "answered_within_sl", "abandoned", "short_abandoned", "overflowed", "callbacks", "call_loss",
          "transferred_calls")

call_st = st.fixed_dictionaries({
    "at": st.floats(-3600, 86400 + 3600),  # some calls fall outside the day
    "outcome": st.sampled_from(OUTCOMES),
    "wait": st.floats(0, 300),
    "tier": st.sampled_from(["vip", "normal", "blacklist", None]),
    "queue": st.sampled_from(["billing", "fault"]),
    "agent": st.sampled_from(["a1", "a2", "a3"]),
    "caller": st.sampled_from(["1380001", "1380002", "1380003", ""]),
    "talk": st.floats(1, 900),
    "transfer": st.booleans(),
})


def events_of(i: int, c: dict[str, Any]) -> list[Event]:
    cid, t, w = f"c{i}", D0 + c["at"], c["wait"]
    q, tier, ag = c["queue"], c["tier"], c["agent"]
    evs = [Event(Kind.CALL_NEW, t, cid, data={"caller_num": c["caller"], "direction": "inbound"}),
           Event(Kind.IVR_START, t + 1, cid, data={})]
    o = c["outcome"]
    if o == "ivr_only":
        return [*evs, Event(Kind.IVR_END, t + 20, cid, data={"outcome": "self_service"})]
    if o == "ivr_hangup":
        return [*evs, Event(Kind.IVR_END, t + 20, cid, data={"outcome": "agent"})]
    evs.append(Event(Kind.IVR_END, t + 10, cid, data={"outcome": "agent"}))
    if o == "blocked":
        return [*evs, Event(Kind.ACD_BLOCKED, t + 10, cid, queue=q, tier=tier, data={"reason": "full"})]
    q0 = t + 10
    evs.append(Event(Kind.ACD_ENQUEUE, q0, cid, queue=q, tier=tier, data={}))
    if o == "abandon":
        return [*evs, Event(Kind.ACD_ABANDON, q0 + w, cid, queue=q, tier=tier, data={})]
    if o == "callback":
        return [*evs, Event(Kind.ACD_CALLBACK, q0 + w, cid, queue=q, tier=tier, data={"reason": "in_place"})]
    if o == "overflow":
        return [*evs, Event(Kind.ACD_OVERFLOW, q0 + w, cid, queue=q, tier=tier, data={"reason": "max_wait"})]
    if o == "rona_answer":
        evs += [Event(Kind.ACD_OFFER, q0 + w / 3, cid, agent_id="a9", queue=q, tier=tier, data={}),
                Event(Kind.ACD_RONA, q0 + w / 2, cid, agent_id="a9", queue=q, tier=tier, data={})]
    evs += [Event(Kind.ACD_OFFER, q0 + w * 0.9, cid, agent_id=ag, queue=q, tier=tier, data={}),
            Event(Kind.ACD_ANSWER, q0 + w, cid, agent_id=ag, queue=q, tier=tier, data={"ring_s": w * 0.1})]
    if c["transfer"]:
        evs.append(Event(Kind.ACD_TRANSFER, q0 + w + 5, cid, agent_id=ag, queue=q, tier=tier, data={}))
    evs.append(Event(Kind.ACD_COMPLETE, q0 + w + c["talk"], cid, agent_id=ag, queue=q, tier=tier,
                     data={"talk_s": c["talk"], "hold_s": 0}))
    return evs


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calls=st.lists(call_st, max_size=25), by=st.sampled_from([["halfhour"], ["band"], ["tier"], ["queue"],
                                                                  ["agent"], ["hour", "tier"]]))
async def test_groupings_add_up_and_outcomes_partition(calls: list[dict[str, Any]], by: list[str]) -> None:
    evs = [e for i, c in enumerate(calls) for e in events_of(i, c)]
    r = await build_report(evs, KpiConfig(), D0, D0 + 86400, by, now=D0 + 3 * 86400)
    total = r["total"]
    in_day = [c for c in calls if D0 <= D0 + c["at"] < D0 + 86400]  # the same float sums as the events
    assert total["calls_offered"] == len(in_day)
    for k in COUNTS:
        assert sum(row["metrics"][k] for row in r["rows"]) == total[k], k
    assert sum(t["calls_offered"] for t in r["tiers"]) == total["calls_offered"]
    # Every call that wanted a person was answered, called back, or lost: nothing is counted twice.
    assert total["answered"] + total["callbacks"] + total["call_loss"] + total["in_queue"] == total["agent_requests"]
    assert total["in_queue"] == 0  # the report runs two days later: every call has finished
    expect = {o: sum(1 for c in in_day if c["outcome"] == o) for o in OUTCOMES}
    assert total["answered"] == expect["answer"] + expect["rona_answer"]
    assert total["abandoned"] == expect["abandon"]
    assert total["blocked"] == expect["blocked"]
    assert total["ivr_contained"] == expect["ivr_only"]
    for row in [*(x["metrics"] for x in r["rows"]), total]:
        for k in ("service_level", "abandon_rate", "call_loss_rate", "agent_connection_rate", "fcr_rate"):
            assert row[k] is None or 0.0 <= row[k] <= 1.0, (k, row[k])
        if row["agent_connection_rate"] is not None:
            assert abs(row["agent_connection_rate"] + row["customer_loss_rate"] - 1.0) < 2e-6
        assert row["answered_within_sl"] <= row["answered"] <= row["queued"]
