"""Golden test: one hand-written hotline day, every KPI worked out by hand below.

Day D = Monday 2026-11-23, Asia/Shanghai (UTC+8). Report range: D 00:00 .. D+1 00:00.
Config: SL 20 s (answered at exactly 20 s counts), short abandon < 5 s excluded,
FCR by repeat within 24 h, tier targets vip 90%/20 s, others 85%/20 s,
work orders due in 24 h, fault_repair in 2 h.

Inbound calls (caller number; tier; what happens; seconds from enqueue):
  C1  09:00:00 13800000001 normal  IVR->agent, offer a1 09:00:22, answer 09:00:30 (wait 10, ring 8),
                                   complete 09:03:30 talk 170 hold 10, disposition billing resolved
  C2  09:10:00 13900000002 vip     no IVR (green channel), enqueue 09:10:15, offer a2, answer 09:10:20
                                   (wait 5, ring 4), complete 09:14:20 talk 220 hold 20, disp billing resolved
  C3  09:20:00 13700000003 normal  IVR, enqueue 09:20:10, ABANDON 09:20:13 (3 s: short abandon)
  C4  10:00:00 13800000001 normal  (C1's number again: C1 is not first-contact resolved) enqueue 10:00:30,
                                   offer a1 10:00:31, RONA 10:00:43 (a1 -> not_ready), offer a2 10:00:44,
                                   answer 10:00:50 (wait exactly 20: within SL), complete 10:05:50 talk 300
  C5  11:00:00 13600000005 normal  enqueue 11:00:10, answer a1 11:00:45 (wait 35: late), TRANSFER to tech
                                   11:02:45 (a1 complete talk 120), re-enqueue tech, answer a2 11:02:55,
                                   complete 11:06:55 talk 240, disposition fault not resolved
  C6  13:00:00 13500000006 blacklist enqueue 13:00:20, abandon 13:01:00 (40 s)
  C7  14:00:00 13400000007 priority enqueue 14:00:10, CALLBACK in place 14:01:10 (60 s in queue)
  C8  16:00:00 13400000008 priority enqueue 16:00:05, abandon 16:00:35 (30 s) + automatic callback
  C9  12:30:00 13300000009 -       IVR self-service only (contained)
  C10 07:00:00 13200000010 normal  IVR->agent, BLOCKED (no agents logged in) 07:00:30
  C11 23:58:00 13100000011 normal  ACROSS MIDNIGHT: enqueue 23:58:30, answer a3 23:58:40 (wait 10, ring 8),
                                   complete D+1 00:03:40 talk 280 hold 20 (that leg belongs to D+1)
  C12 17:00:00 13000000012 normal  enqueue 17:00:10, overflow to voicemail 17:02:10 reason max_wait (120 s)
  C13 18:00:00 13900000002 vip     (C2's number again) enqueue 18:00:10, offer a1 18:00:15,
                                   abandon 18:00:20 while ringing (10 s)
Outbound (excluded from inbound KPIs): contact k1 confirmed; k2 no_answer then machine; k3 answered.
Survey: ratings 5, 4, 5 and one malformed ("bad").
Work orders: wo1 billing open 09:05 closed 10:00 (on time); wo2 fault_repair open 11:05 closed 14:00
(2 h 55 min > 2 h: late); wo3 query open 13:00, never closed.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.events import Event, Kind
from ctiserver.kpi import erlang
from ctiserver.kpi.config import KpiConfig
from ctiserver.kpi.render import format_csv, format_table
from ctiserver.kpi.report import build_report

from .conftest import load

TZ = ZoneInfo("Asia/Shanghai")
D0 = datetime(2026, 11, 23, tzinfo=TZ).timestamp()
D1 = D0 + 86400
NOW = D1 + 86400  # the report runs two days later: every agent state is closed


def at(hhmmss: str, day: int = 0) -> float:
    h, m, s = (int(x) for x in hhmmss.split(":"))
    return D0 + day * 86400 + h * 3600 + m * 60 + s


def cfg(**kw: Any) -> KpiConfig:
    """The golden day's config: the defaults, but short abandons under 5 s (the day was hand-computed so;
    the 20 s default is test_default_short_abandon_threshold_is_20_s's)."""
    base = KpiConfig()
    base = base.model_copy(update={"service_level": base.service_level.model_copy(update={"short_abandon_s": 5.0})})
    return base.model_copy(update=kw) if kw else base


def inbound(cid: str, t: str, caller: str, *, ivr_end: str | None, outcome: str = "agent",
            day: int = 0) -> list[Event]:
    evs = [Event(Kind.CALL_NEW, at(t, day), cid, data={"caller_num": caller, "direction": "inbound"})]
    if ivr_end is not None:
        evs += [Event(Kind.IVR_START, at(t, day) + 1, cid, data={"caller": caller}),
                Event(Kind.IVR_END, at(ivr_end, day), cid, data={"outcome": outcome})]
    return evs


def acd(event_kind: str, t: str, cid: str, tier: str, agent: str | None = None, queue: str = "billing",
        day: int = 0, **data: Any) -> Event:
    return Event(event_kind, at(t, day), cid, agent_id=agent, queue=queue, tier=tier, data=data)


def states(agent: str, timeline: list[tuple[str, str]], day: int = 0) -> list[Event]:
    out = []
    for t, st in timeline:
        d = day + (1 if t.startswith("+") else 0) - (1 if t.startswith("-") else 0)
        out.append(Event(Kind.AGENT_STATE, at(t.lstrip("+-"), d), None, agent_id=agent,
                         data={"state": st}))
    return out


def golden_day() -> list[Event]:
    e: list[Event] = []
    # C1
    e += inbound("C1", "09:00:00", "13800000001", ivr_end="09:00:20")
    e += [acd(Kind.ACD_ENQUEUE, "09:00:20", "C1", "normal", caller="13800000001"),
          acd(Kind.ACD_OFFER, "09:00:22", "C1", "normal", "a1"),
          acd(Kind.ACD_ANSWER, "09:00:30", "C1", "normal", "a1", wait_s=10, ring_s=8),
          acd(Kind.ACD_COMPLETE, "09:03:30", "C1", "normal", "a1", talk_s=170, hold_s=10),
          Event(Kind.DISPOSITION, at("09:04:00"), "C1", agent_id="a1", queue="billing", tier="normal",
                data={"category": "billing", "resolved": True})]
    # C2: no IVR
    e += inbound("C2", "09:10:00", "13900000002", ivr_end=None)
    e += [acd(Kind.ACD_ENQUEUE, "09:10:15", "C2", "vip"),
          acd(Kind.ACD_OFFER, "09:10:16", "C2", "vip", "a2"),
          acd(Kind.ACD_ANSWER, "09:10:20", "C2", "vip", "a2", ring_s=4),
          acd(Kind.ACD_COMPLETE, "09:14:20", "C2", "vip", "a2", talk_s=220, hold_s=20),
          Event(Kind.DISPOSITION, at("09:14:30"), "C2", agent_id="a2", queue="billing", tier="vip",
                data={"category": "billing", "resolved": True})]
    # C3: 3-second abandon
    e += inbound("C3", "09:20:00", "13700000003", ivr_end="09:20:10")
    e += [acd(Kind.ACD_ENQUEUE, "09:20:10", "C3", "normal"),
          acd(Kind.ACD_ABANDON, "09:20:13", "C3", "normal", wait_s=3)]
    # C4: RONA then answered at exactly 20 s
    e += inbound("C4", "10:00:00", "13800000001", ivr_end="10:00:30")
    e += [acd(Kind.ACD_ENQUEUE, "10:00:30", "C4", "normal"),
          acd(Kind.ACD_OFFER, "10:00:31", "C4", "normal", "a1"),
          acd(Kind.ACD_RONA, "10:00:43", "C4", "normal", "a1", ring_s=12),
          acd(Kind.ACD_OFFER, "10:00:44", "C4", "normal", "a2"),
          acd(Kind.ACD_ANSWER, "10:00:50", "C4", "normal", "a2", ring_s=6),
          acd(Kind.ACD_COMPLETE, "10:05:50", "C4", "normal", "a2", talk_s=300, hold_s=0)]
    # C5: transferred
    e += inbound("C5", "11:00:00", "13600000005", ivr_end="11:00:10")
    e += [acd(Kind.ACD_ENQUEUE, "11:00:10", "C5", "normal"),
          acd(Kind.ACD_OFFER, "11:00:40", "C5", "normal", "a1"),
          acd(Kind.ACD_ANSWER, "11:00:45", "C5", "normal", "a1", ring_s=5),
          acd(Kind.ACD_TRANSFER, "11:02:45", "C5", "normal", "a1", target="queue:tech", kind="blind"),
          acd(Kind.ACD_COMPLETE, "11:02:45", "C5", "normal", "a1", talk_s=120, hold_s=0),
          acd(Kind.ACD_ENQUEUE, "11:02:45", "C5", "normal", queue="tech"),
          acd(Kind.ACD_OFFER, "11:02:50", "C5", "normal", "a2", queue="tech"),
          acd(Kind.ACD_ANSWER, "11:02:55", "C5", "normal", "a2", queue="tech", ring_s=5),
          acd(Kind.ACD_COMPLETE, "11:06:55", "C5", "normal", "a2", queue="tech", talk_s=240, hold_s=0),
          Event(Kind.DISPOSITION, at("11:07:00"), "C5", agent_id="a2", queue="tech", tier="normal",
                data={"category": "fault", "resolved": False})]
    # C6: blacklist abandons after 40 s
    e += inbound("C6", "13:00:00", "13500000006", ivr_end="13:00:20")
    e += [acd(Kind.ACD_ENQUEUE, "13:00:20", "C6", "blacklist"),
          acd(Kind.ACD_ABANDON, "13:01:00", "C6", "blacklist", wait_s=40)]
    # C7: callback in place
    e += inbound("C7", "14:00:00", "13400000007", ivr_end="14:00:10")
    e += [acd(Kind.ACD_ENQUEUE, "14:00:10", "C7", "priority"),
          acd(Kind.ACD_CALLBACK, "14:01:10", "C7", "priority", reason="in_place", due_ts=None)]
    # C8: priority abandons after 30 s, automatic callback
    e += inbound("C8", "16:00:00", "13400000008", ivr_end="16:00:05")
    e += [acd(Kind.ACD_ENQUEUE, "16:00:05", "C8", "priority"),
          acd(Kind.ACD_ABANDON, "16:00:35", "C8", "priority", wait_s=30),
          acd(Kind.ACD_CALLBACK, "16:00:35", "C8", "priority", reason="abandon",
              due_ts=at("16:00:35") + 86400)]
    # C9: IVR only
    e += inbound("C9", "12:30:00", "13300000009", ivr_end="12:31:00", outcome="self_service")
    # C10: blocked, nobody logged in
    e += inbound("C10", "07:00:00", "13200000010", ivr_end="07:00:30")
    e += [acd(Kind.ACD_BLOCKED, "07:00:30", "C10", "normal", reason="no_agents")]
    # C11: across midnight
    e += inbound("C11", "23:58:00", "13100000011", ivr_end="23:58:30")
    e += [acd(Kind.ACD_ENQUEUE, "23:58:30", "C11", "normal"),
          acd(Kind.ACD_OFFER, "23:58:32", "C11", "normal", "a3"),
          acd(Kind.ACD_ANSWER, "23:58:40", "C11", "normal", "a3", ring_s=8),
          acd(Kind.ACD_COMPLETE, "00:03:40", "C11", "normal", "a3", day=1, talk_s=280, hold_s=20)]
    # C12: overflow after max wait
    e += inbound("C12", "17:00:00", "13000000012", ivr_end="17:00:10")
    e += [acd(Kind.ACD_ENQUEUE, "17:00:10", "C12", "normal"),
          acd(Kind.ACD_OVERFLOW, "17:02:10", "C12", "normal", target="voicemail", reason="max_wait",
              wait_s=120)]
    # C13: vip abandons while ringing
    e += inbound("C13", "18:00:00", "13900000002", ivr_end="18:00:10")
    e += [acd(Kind.ACD_ENQUEUE, "18:00:10", "C13", "vip"),
          acd(Kind.ACD_OFFER, "18:00:15", "C13", "vip", "a1"),
          acd(Kind.ACD_ABANDON, "18:00:20", "C13", "vip", "a1", wait_s=10)]
    # Agents
    e += states("a1", [("08:00:00", "available"), ("09:00:22", "ringing"), ("09:00:30", "on_call"),
                       ("09:03:30", "wrap_up"), ("09:04:30", "available"), ("10:00:31", "ringing"),
                       ("10:00:43", "not_ready"), ("10:30:00", "available"), ("11:00:40", "ringing"),
                       ("11:00:45", "on_call"), ("11:02:45", "wrap_up"), ("11:03:15", "available"),
                       ("18:00:15", "ringing"), ("18:00:20", "available"), ("18:30:00", "logged_out")])
    e += states("a2", [("08:30:00", "available"), ("09:10:16", "ringing"), ("09:10:20", "on_call"),
                       ("09:14:20", "wrap_up"), ("09:15:00", "available"), ("10:00:44", "ringing"),
                       ("10:00:50", "on_call"), ("10:05:50", "wrap_up"), ("10:06:50", "available"),
                       ("11:02:50", "ringing"), ("11:02:55", "on_call"), ("11:06:55", "wrap_up"),
                       ("11:07:55", "available"), ("12:00:00", "not_ready"), ("13:00:00", "available"),
                       ("17:30:00", "logged_out")])
    e += states("a3", [("-22:00:00", "available"), ("06:00:00", "logged_out"),
                       ("22:00:00", "available"), ("23:58:32", "ringing"), ("23:58:40", "on_call"),
                       ("+00:03:40", "wrap_up"), ("+00:04:20", "available"), ("+06:00:00", "logged_out")])
    # Outbound campaign and survey
    def ob(kind: str, t: str, cid: str, contact: str, attempt: int, **data: Any) -> Event:
        return Event(kind, at(t), cid, data={"campaign": "outage-notice", "contact": contact,
                                              "attempt": attempt, **data})
    e += [Event(Kind.CALL_NEW, at("10:00:00"), "O1", data={"caller_num": "95598", "direction": "outbound"}),
          ob(Kind.OUT_ATTEMPT, "10:00:00", "O1", "k1", 1, number="13811110001"),
          ob(Kind.OUT_RESULT, "10:00:30", "O1", "k1", 1, outcome="confirmed", dtmf="1"),
          ob(Kind.OUT_ATTEMPT, "10:01:00", "O2a", "k2", 1, number="13811110002"),
          ob(Kind.OUT_RESULT, "10:01:40", "O2a", "k2", 1, outcome="no_answer", dtmf=""),
          ob(Kind.OUT_ATTEMPT, "14:00:00", "O2b", "k2", 2, number="13811110002"),
          ob(Kind.OUT_RESULT, "14:00:30", "O2b", "k2", 2, outcome="machine", dtmf=""),
          ob(Kind.OUT_ATTEMPT, "10:02:00", "O3", "k3", 1, number="13811110003"),
          ob(Kind.OUT_RESULT, "10:02:40", "O3", "k3", 1, outcome="answered", dtmf="")]
    e += [Event(Kind.SURVEY_RATING, at("15:00:00"), "S1", data={"rating": 5, "campaign": "csat"}),
          Event(Kind.SURVEY_RATING, at("15:01:00"), "S2", data={"rating": 4, "campaign": "csat"}),
          Event(Kind.SURVEY_RATING, at("15:02:00"), "S3", data={"rating": 5, "campaign": "csat"}),
          Event(Kind.SURVEY_RATING, at("15:03:00"), "S4", data={"rating": "bad", "campaign": "csat"})]
    # Work orders
    def wo(t: str, wid: str, action: str, agent: str, category: str, due_h: float = 24.0) -> Event:
        return Event(Kind.WORKORDER, at(t), None, agent_id=agent, data={"id": wid, "action": action,
                                                                         "category": category,
                                                                         "due_ts": at(t) + due_h * 3600})
    e += [wo("09:05:00", "wo1", "open", "a1", "billing"), wo("10:00:00", "wo1", "closed", "a1", "billing"),
          wo("11:05:00", "wo2", "open", "a2", "fault_repair", due_h=2.0),  # due by the deadline it got
          wo("14:00:00", "wo2", "closed", "a2", "fault_repair"),
          wo("13:00:00", "wo3", "open", "a2", "query")]
    return e


async def day_report(engine: AsyncEngine, by: list[str], **cfg_kw: Any) -> dict[str, Any]:
    await load(engine, golden_day())
    return await build_report(engine, cfg(**cfg_kw), D0, D1, by, now=NOW)


# ------------------------------------------------------------------------------------------ totals

# Traffic. 13 inbound calls (O1..O3 are outbound and excluded). 12 entered the IVR (C2 did not).
# Contained in IVR: C9 -> 1/12 = 0.083333. Asked for an agent: everyone but C9 = 12.
# Queued (reached the ACD): C1-C8, C11-C13 = 11 -> 11/13 = 0.846154. Blocked: C10.
# Answered: C1 C2 C4 C5 C11 = 5 -> share 5/13 = 0.384615, of queued 5/11 = 0.454545.
# Waits of answered: 10 + 5 + 20 + 35 + 10 = 80 -> ASA 16.0 s. Within 20 s: C1 C2 C4 C11 = 4.
# Abandons: C3 (3 s, short) C6 (40) C8 (30) C13 (10, while ringing) = 4; counted (short excluded) 3.
# Callback instead of an answer: C7 (in place) -> out of SL. SL offered = 11 - 1 (C7) - 1 (C3) = 9.
# SL = 4/9 = 0.444444; abandon rate = 3/9 = 0.333333; avg time to abandon (40+30+10)/3 = 26.667.
# Queue time of every call that left the queue: 10+5+3+20+35+40+60+30+10+120+10 = 343 over 11 = 31.182.
# Estimated mean patience (exponential, censored): 343 s at risk / 4 abandons = 85.75 s.
# Call loss: C3 C6 C8 C10 C12 C13 = 6 of 12 - 1 (C7 deferred) = 11 -> 0.545455; agent
# connection rate 5/11 = 0.454545 (the two add up to 1). IVR connection rate 12/13 = 0.923077.
# Transferred calls: C5 of 5 answered = 0.2.
# FCR (repeat within 24 h): answered with a number: C1 C2 C4 C5 C11; C1 repeated by C4, C2 by C13 -> 3/5.
# Legs on D: offers C1 C2 C4x2 C5x2 C11 C13 = 8; RONA 1; handled (complete events on D) C1 C2 C4 C5x2 = 5
# (C11's complete is on D+1); talk 170+220+300+120+240 = 1050 -> 210.0; hold 10+20 = 30 -> 6.0;
# ring at answer 8+4+6+5+5+8 = 36 over 6 answers -> 6.0.
# Agent time on D (seconds):
#   a1 08:00-18:30 = 37800: on_call 180+120 = 300, wrap 60+30 = 90, ringing 8+12+5+5 = 30,
#      not_ready 10:00:43-10:30:00 = 1757, available 3622+3361+1840+25020+1780 = 35623.
#   a2 08:30-17:30 = 32400: on_call 240+300+240 = 780, wrap 40+60+60 = 160, ringing 4+6+5 = 15,
#      not_ready 3600, available 2416+2744+3360+3125+16200 = 27845.
#   a3 00:00-06:00 (shift from D-1, clipped) 21600 available; 22:00-24:00: available 7112, ringing 8,
#      on_call 80 (23:58:40-24:00) -> 28800.
#   logged in 37800+32400+28800 = 99000 s = 27.5 h; on_call 1160; wrap 250;
#   available+ringing = 35653 + 27860 + 28720 = 92233; not_ready 5357.
#   occupancy = (1160+250)/(1160+250+92233) = 1410/93643; ACW = 250/5 = 50.0; AHT = 210+6+50 = 266.0;
#   calls per staffed hour = 5/27.5 = 0.182.
EXPECTED_TOTAL = {
    "calls_offered": 13, "ivr_calls": 12, "ivr_contained": 1, "ivr_containment_rate": round(1 / 12, 6),
    "agent_requests": 12, "queued": 11, "queued_rate": round(11 / 13, 6), "in_queue": 0, "blocked": 1,
    "answered": 5, "answered_share": round(5 / 13, 6), "answered_rate": round(5 / 11, 6),
    "sl_offered": 9, "answered_within_sl": 4, "service_level": round(4 / 9, 6), "asa_s": 16.0,
    "avg_queue_s": 31.182,
    "abandoned": 4, "short_abandoned": 1, "abandoned_counted": 3, "abandon_rate": round(3 / 9, 6),
    "avg_abandon_s": 26.667, "abandoned_ringing": 1, "est_patience_s": round(343 / 4, 3),
    "overflowed": 1, "timed_out": 1,
    "callbacks": 1, "callbacks_after_abandon": 1, "call_loss": 6, "call_loss_rate": round(6 / 11, 6),
    "ivr_connection_rate": round(12 / 13, 6), "agent_connection_rate": round(5 / 11, 6),
    "customer_loss_rate": round(6 / 11, 6), "transferred_calls": 1, "transfer_rate": 0.2,
    "fcr_eligible": 5, "fcr_resolved": 3, "fcr_rate": 0.6,
    "offers": 8, "ring_no_answer": 1, "handled": 5, "transfers": 1,
    "avg_talk_s": 210.0, "avg_hold_s": 6.0, "avg_ring_s": 6.0,
    "logged_in_s": 99000.0, "available_s": 92233.0, "on_call_s": 1160.0, "direct_s": 0.0, "wrap_s": 250.0,
    "not_ready_s": 5357.0, "avg_acw_s": 50.0, "occupancy": round(1410 / 93643, 6),
    "staffed_hours": 27.5, "calls_per_staffed_hour": 0.182, "aht_s": 266.0,
    # Dispositions: billing C1 C2 (both resolved), fault C5 (not resolved).
    "dispositions": {"billing": 2, "fault": 1}, "dispositions_resolved": 2,
    # Work orders: 3 opened, 2 closed, 1 on time -> 1/3.
    "workorders_opened": 3, "workorders_closed": 2, "workorders_closed_on_time": 1,
    "workorder_on_time_rate": round(1 / 3, 6), "workorders_reopened": 0, "workorder_reopen_rate": 0.0,
    # Satisfaction: the survey's 5, 4, 5 (the malformed one left out); no work-order callbacks that day.
    "survey_responses": 3, "survey_avg_score": 4.6667,
    "satisfaction_callbacks_due": 0, "satisfaction_callbacks_done": 0, "satisfaction_callback_rate": None,
    "qc_inspected": 0, "qc_avg_score": None, "qc_pass_rate": None, "qc_fatal": 0,
    # Textbook SL: within 4 of the 10 queued calls that finished (C7's callback out, C3's short abandon in).
    "service_level_textbook": 0.4, "answered_within_sl_share": 0.8,
    # Offers per answered call: C1 C2 C11 one, C4 (a1 RONA, a2) and C5 (a1, then a2 after the transfer) two.
    "answered_by_offers": {"1": 3, "2": 2, "3+": 0},
    # Busy: C10 blocked of 12 that asked for an agent.
    "busy_rate": round(1 / 12, 6),
    # Anton's occupancy: on call 1160 of (1160 + available 92233); wrap 250 of 99000 logged in; the
    # not-ready states carry no reason that day; no cost per agent hour in kpi.yaml.
    "occupancy_talk": round(1160 / 93393, 6), "wrap_share": round(250 / 99000, 6),
    "not_ready_by_reason_s": {"": 5357.0}, "cost_per_call": None,
}


async def test_golden_day_totals(engine: AsyncEngine) -> None:
    report = await day_report(engine, [])
    assert report["total"] == EXPECTED_TOTAL
    assert report["rows"] == [{"key": {}, "metrics": EXPECTED_TOTAL}]


# ------------------------------------------------------------------------------------------ bands

# valley (22-08): C10 (07:00, blocked) and C11 (23:58, answered after 10 s, complete after midnight).
#   offered 2, queued 1, SL 1/1, ASA 10.0, call loss 1 (C10) of 2 -> 0.5.
# peak (09-12, 15-19): C1 C2 C3 C4 C5 C8 C12 C13 = 8; queued 8, short C3 -> SL offered 7, within C1 C2 C4
#   -> 3/7; answered 4, waits 10+5+20+35 = 70 -> 17.5; abandons counted C8 C13 -> 2/7.
# flat (08-09, 12-15, 19-22): C6 C7 C9 = 3; queued C6 C7, C7 deferred -> SL offered 1, within 0 -> 0.0;
#   abandon C6 -> 1/1; contained C9.
async def test_golden_day_by_band(engine: AsyncEngine) -> None:
    report = await day_report(engine, ["band"])
    rows = {r["key"]["band"]: r["metrics"] for r in report["rows"]}
    assert set(rows) == {"flat", "peak", "valley"}
    v, p, f = rows["valley"], rows["peak"], rows["flat"]
    assert (v["calls_offered"], v["queued"], v["service_level"], v["asa_s"], v["call_loss"],
            v["call_loss_rate"]) == (2, 1, 1.0, 10.0, 1, 0.5)
    assert (p["calls_offered"], p["sl_offered"], p["service_level"], p["answered"], p["asa_s"],
            p["abandon_rate"]) == (8, 7, round(3 / 7, 6), 4, 17.5, round(2 / 7, 6))
    assert (f["calls_offered"], f["sl_offered"], f["service_level"], f["abandon_rate"], f["ivr_contained"],
            f["callbacks"]) == (3, 1, 0.0, 1.0, 1, 1)
    # Agent time splits across bands too and adds up to the day.
    assert sum(r["logged_in_s"] for r in rows.values()) == 99000.0
    # valley: a3 00:00-06:00 (21600) + 22:00-24:00 (7200); a1/a2 start at 08:00 or later.
    assert v["logged_in_s"] == 28800.0 and v["on_call_s"] == 80.0


# ------------------------------------------------------------------------------------------ tiers

# Tier targets: vip 90% in 20 s, everyone else 85% in 20 s.
# blacklist: C6 -> SL offered 1, within 0 -> 0.0, abandon 1/1, ASA none.
# normal: C1 C3 C4 C5 C10 C11 C12 = 7 offered; queued 6, short C3 -> SL offered 5; within C1 C4 C11 -> 0.6;
#   answered C1 C4 C5 C11, waits 10+20+35+10 = 75 -> 18.75; abandons counted 0 -> 0.0.
# priority: C7 C8 -> SL offered 2 - 1 (C7 deferred) = 1, within 0 -> 0.0, abandon C8 -> 1.0.
# vip: C2 C13 -> SL offered 2, within C2 -> 0.5 (target 0.9: missed), ASA 5.0, abandon 1/2.
# (none): C9, never queued -> SL undefined.
async def test_golden_day_tiers(engine: AsyncEngine) -> None:
    report = await day_report(engine, [])
    tiers = {t["tier"]: t for t in report["tiers"]}
    assert [t["tier"] for t in report["tiers"]] == ["blacklist", "normal", "priority", "vip", None]
    assert tiers["normal"] | {} == {
        "tier": "normal", "calls_offered": 7, "sl_offered": 5, "answered": 4, "threshold_s": 20.0,
        "target": 0.85, "service_level": 0.6, "met": False, "asa_s": 18.75, "abandon_rate": 0.0}
    assert (tiers["vip"]["service_level"], tiers["vip"]["target"], tiers["vip"]["met"], tiers["vip"]["asa_s"],
            tiers["vip"]["abandon_rate"]) == (0.5, 0.9, False, 5.0, 0.5)
    assert (tiers["blacklist"]["service_level"], tiers["blacklist"]["asa_s"]) == (0.0, None)
    assert (tiers["priority"]["sl_offered"], tiers["priority"]["abandon_rate"]) == (1, 1.0)
    assert tiers[None]["service_level"] is None and tiers[None]["met"] is None
    # VIP waits less than normal callers: tier routing at work.
    assert tiers["vip"]["asa_s"] < tiers["normal"]["asa_s"]


# ------------------------------------------------------------------------------------------ agents

# a1 answered C1 (10 s) and C5 (35 s) first -> ASA 22.5; legs: offers C1 C4 C5 C13 = 4, RONA 1, handled
#   C1 C5: talk (170+120)/2 = 145, hold 10/2 = 5, wrap 90/2 = 45 -> AHT 195; occupancy 390/(390+35653).
# a2 answered C2 (5) and C4 (20) first -> 12.5; handled C2 C4 C5-second-leg: talk 760/3 = 253.333,
#   hold 20/3 = 6.667, wrap 160/3 = 53.333 -> AHT 313.333.
# a3 answered C11 (10); handled nothing on D -> AHT undefined; logged in 8 h, on call 80 s.
# (none): the 8 calls nobody answered.
async def test_golden_day_by_agent(engine: AsyncEngine) -> None:
    report = await day_report(engine, ["agent"])
    rows = {r["key"]["agent"]: r["metrics"] for r in report["rows"]}
    assert list(rows) == ["a1", "a2", "a3", None]
    a1, a2, a3, nobody = rows["a1"], rows["a2"], rows["a3"], rows[None]
    assert (a1["answered"], a1["asa_s"], a1["offers"], a1["ring_no_answer"], a1["handled"]) == (
        2, 22.5, 4, 1, 2)
    assert (a1["avg_talk_s"], a1["avg_hold_s"], a1["avg_acw_s"], a1["aht_s"]) == (145.0, 5.0, 45.0, 195.0)
    assert a1["occupancy"] == round(390 / (390 + 35653), 6) and a1["logged_in_s"] == 37800.0
    assert (a2["answered"], a2["asa_s"], a2["handled"], a2["avg_talk_s"], a2["avg_hold_s"],
            a2["avg_acw_s"], a2["aht_s"]) == (2, 12.5, 3, 253.333, 6.667, 53.333, 313.333)
    assert a2["dispositions"] == {"billing": 1, "fault": 1} and a2["workorders_opened"] == 2
    assert a2["workorders_closed_on_time"] == 0
    assert (a3["answered"], a3["handled"], a3["aht_s"], a3["on_call_s"], a3["logged_in_s"]) == (
        1, 0, None, 80.0, 28800.0)
    assert (nobody["calls_offered"], nobody["answered"], nobody["call_loss"]) == (8, 0, 6)


# ------------------------------------------------------------------------------------------ rules

async def test_default_short_abandon_threshold_is_20_s(engine: AsyncEngine) -> None:
    # With the seeds' 20 s: C3 (3 s) and C13 (10 s) are short; counted C6 (40) C8 (30) -> 2 of 8 offered to SL;
    # SL 4/8; avg time to abandon (40+30)/2 = 35.
    await load(engine, golden_day())
    report = await build_report(engine, KpiConfig(), D0, D1, [], now=NOW)
    t = report["total"]
    assert (t["short_abandoned"], t["abandoned_counted"], t["sl_offered"], t["service_level"], t["abandon_rate"],
            t["avg_abandon_s"]) == (2, 2, 8, 0.5, 0.25, 35.0)
    assert report["settings"]["short_abandon_s"] == 20.0


async def test_short_abandons_can_be_counted(engine: AsyncEngine) -> None:
    # Including C3: SL offered 11 - 1 = 10, SL 4/10, abandons 4/10, average abandon (3+40+30+10)/4 = 20.75.
    base = cfg()
    rule = base.service_level.model_copy(update={"exclude_short_abandons": False})
    report = await day_report(engine, [], service_level=rule)
    t = report["total"]
    assert (t["sl_offered"], t["service_level"], t["abandoned_counted"], t["abandon_rate"],
            t["avg_abandon_s"]) == (10, 0.4, 4, 0.4, 20.75)
    assert report["settings"]["exclude_short_abandons"] is False


async def test_fcr_methods(engine: AsyncEngine) -> None:
    # disposition: answered with a disposition C1 C2 C5, resolved C1 C2 -> 2/3.
    # both: of those, no repeat and resolved: C1 (repeat) no, C2 (repeat) no, C5 (unresolved) no -> 0/3.
    await load(engine, golden_day())
    base = cfg()
    disp = await build_report(engine, base.model_copy(update={"fcr": base.fcr.model_copy(
        update={"method": "disposition"})}), D0, D1, [], now=NOW)
    both = await build_report(engine, base.model_copy(update={"fcr": base.fcr.model_copy(
        update={"method": "both"})}), D0, D1, [], now=NOW)
    short = await build_report(engine, base.model_copy(update={"fcr": base.fcr.model_copy(
        update={"window_h": 0.5})}), D0, D1, [], now=NOW)
    assert (disp["total"]["fcr_eligible"], disp["total"]["fcr_rate"]) == (3, round(2 / 3, 6))
    assert (both["total"]["fcr_eligible"], both["total"]["fcr_rate"]) == (3, 0.0)
    # A 30-minute window: C4 comes 60 min after C1 and C13 ~9 h after C2, so no repeats: 5/5.
    assert short["total"]["fcr_rate"] == 1.0


async def test_next_day_gets_the_leg_that_crossed_midnight(engine: AsyncEngine) -> None:
    # On D+1 no call arrives, but C11's agent leg completes at 00:03:40 (talk 280, hold 20) and a3 wraps
    # 00:03:40-00:04:20 (40 s) and stays logged in until 06:00 (on_call 00:00-00:03:40 = 220 s).
    await load(engine, golden_day())
    r = await build_report(engine, cfg(), D1, D1 + 86400, [], now=NOW)
    t = r["total"]
    assert (t["calls_offered"], t["handled"], t["avg_talk_s"], t["avg_hold_s"], t["wrap_s"]) == (
        0, 1, 280.0, 20.0, 40.0)
    assert (t["on_call_s"], t["logged_in_s"], t["aht_s"]) == (220.0, 21600.0, 340.0)
    assert t["service_level"] is None and t["asa_s"] is None


# ------------------------------------------------------------------------------------------ extras

# Outbound: contacts k1 k2 k3; attempts 4; reached k1 (confirmed) and k3 (answered) -> 2/3;
# confirmed 1 of 2 reached -> 0.5; machine 1 of 4 results -> 0.25; attempts per contact 4/3;
# connection (attempts reaching a person) 2/4.
# Survey: 5, 4, 5 -> average 14/3 = 4.6667; "bad" is counted as invalid.
async def test_golden_day_outbound_and_survey(engine: AsyncEngine) -> None:
    report = await day_report(engine, [])
    assert report["outbound"]["total"] == {
        "contacts": 3, "attempts": 4, "reached": 2, "confirmed": 1, "reach_rate": round(2 / 3, 6),
        "confirm_rate": 0.5, "machine_rate": 0.25, "attempts_per_contact": 1.333, "connection_rate": 0.5}
    assert [r["key"] for r in report["outbound"]["rows"]] == [{"campaign": "outage-notice"}]
    csat = next(s for s in report["survey"] if s["campaign"] == "csat")
    assert csat == {"campaign": "csat", "counts": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 2}, "invalid": 1,
                    "responses": 3, "average": 4.6667}


async def test_golden_day_targets_and_staffing(engine: AsyncEngine) -> None:
    report = await day_report(engine, ["halfhour"])
    targets = {t["metric"]: t for t in report["targets"]}
    assert targets["service_level"] == {"metric": "service_level", "op": ">=", "target": 0.8,
                                        "actual": round(4 / 9, 6), "met": False}
    assert targets["avg_acw_s"]["met"] is True  # 50 <= 60
    assert targets["avg_talk_s"]["met"] is False  # 210 > 150
    assert targets["transfer_rate"]["met"] is False  # 0.2 > 0.03
    assert targets["avg_ring_s"]["met"] is True  # 6 <= 12
    # 09:00-09:30: 3 arrivals (C1 C2 C3); handled C1 C2: talk 390 + hold 30 + wrap 60 + 40 -> AHT 260;
    # load 3/1800 * 260 = 0.433 Erlang; 1 agent gives 58.5% in 20 s, 2 agents 93.2% -> 2 needed;
    # a1 and a2 were logged in the whole half hour -> 2.0 agents, SL 0.9316.
    st = {s["halfhour"]: s for s in report["staffing"]}
    s9 = st["2026-11-23T09:00"]
    assert (s9["arrivals"], s9["aht_s"], s9["load_erlangs"], s9["agents_needed"], s9["agents_logged_in"]) == (
        3, 260.0, 0.433, 2, 2.0)
    assert s9["sl_with_logged_in"] == pytest.approx(0.93159, abs=5e-5)
    assert erlang.service_level(1, 3 / 1800, 260.0, 20.0) == pytest.approx(0.58515, abs=5e-5)
    # 07:00: C10 was blocked (never queued), nobody logged in.
    assert st["2026-11-23T07:00"]["arrivals"] == 0
    # Half-hour rows add up to the day.
    assert sum(r["metrics"]["calls_offered"] for r in report["rows"]) == 13
    assert sum(r["metrics"]["handled"] for r in report["rows"]) == 5


async def test_sqlite_and_postgresql_give_identical_reports(sqlite_engine: AsyncEngine,
                                                            pg_engine: AsyncEngine) -> None:
    for by in ([], ["halfhour"], ["day", "band", "tier"], ["week", "agent"], ["month", "queue"]):
        a = await day_report(sqlite_engine, by) if by == [] else await build_report(
            sqlite_engine, cfg(), D0, D1, by, now=NOW)
        b = await day_report(pg_engine, by) if by == [] else await build_report(
            pg_engine, cfg(), D0, D1, by, now=NOW)
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True), by
    # And the list-of-events path (used by the simulator) agrees as well.
    c = await build_report(golden_day(), cfg(), D0, D1, ["halfhour"], now=NOW)
    d = await build_report(pg_engine, cfg(), D0, D1, ["halfhour"], now=NOW)
    assert c == d


async def test_formatters_render_the_golden_day(sqlite_engine: AsyncEngine) -> None:
    report = await day_report(sqlite_engine, ["band"])
    table = format_table(report)
    assert "peak" in table and "TOTAL" in table and "Staffing (Erlang C)" in table
    lines = format_csv(report).splitlines()
    assert lines[0].startswith("band,calls_offered,")
    assert lines[-1].startswith("TOTAL,13,")
    assert len(lines) == 1 + 3 + 1


async def test_a_transfer_that_could_not_complete_is_not_a_transferred_call(engine: AsyncEngine) -> None:
    """Item 19: C14 is blind-transferred to an agent whose phone is not reachable and comes back to a1
    (acd.transfer_failed, then queued again as a return): one answered call, not a transferred one."""
    e = inbound("C14", "15:00:00", "13200000014", ivr_end="15:00:10")
    e += [acd(Kind.ACD_ENQUEUE, "15:00:10", "C14", "normal", caller="13200000014"),
          acd(Kind.ACD_OFFER, "15:00:12", "C14", "normal", "a1"),
          acd(Kind.ACD_ANSWER, "15:00:15", "C14", "normal", "a1", wait_s=5, ring_s=3),
          acd(Kind.ACD_TRANSFER, "15:02:00", "C14", "normal", "a1", target="1006", kind="blind"),
          acd(Kind.ACD_COMPLETE, "15:02:00", "C14", "normal", "a1", talk_s=105, hold_s=0),
          Event(Kind.ACD_TRANSFER_FAILED, at("15:02:01"), "C14", agent_id="a1",
                data={"target": "1006", "reason": "unreachable", "returned_to": "agent", "queue": "billing"}),
          acd(Kind.ACD_ENQUEUE, "15:02:01", "C14", "normal", caller="13200000014", kind="return"),
          acd(Kind.ACD_OFFER, "15:02:01", "C14", "normal", "a1"),
          acd(Kind.ACD_ANSWER, "15:02:04", "C14", "normal", "a1", wait_s=3, ring_s=3),
          acd(Kind.ACD_COMPLETE, "15:04:00", "C14", "normal", "a1", talk_s=116, hold_s=0),
          Event(Kind.CALL_END, at("15:04:00"), "C14", data={"duration_s": 240})]
    await load(engine, e)
    total = (await build_report(engine, cfg(), D0, D1, [], now=NOW))["total"]
    assert (total["answered"], total["transferred_calls"], total["calls_offered"]) == (1, 0, 1)


async def test_time_on_a_call_outside_the_acd_is_on_call_and_reported_apart(engine: AsyncEngine) -> None:
    # a9: available 09:00, its phone busy outside the ACD 09:10-09:20 (on_call "direct"), out at 10:00.
    evs = states("a9", [("09:00:00", "available")])
    evs += [Event(Kind.AGENT_STATE, at("09:10:00"), None, agent_id="a9",
                  data={"state": "on_call", "reason": "direct", "previous": "available"}),
            Event(Kind.AGENT_STATE, at("09:20:00"), None, agent_id="a9",
                  data={"state": "available", "previous": "on_call", "previous_reason": "direct"})]
    evs += states("a9", [("10:00:00", "logged_out")])
    await load(engine, evs)
    t = (await build_report(engine, cfg(), D0, D1, [], now=NOW))["total"]
    assert (t["logged_in_s"], t["on_call_s"], t["direct_s"], t["available_s"]) == (3600.0, 600.0, 600.0, 3000.0)
    assert t["occupancy_talk"] == round(600 / 3600, 6)
