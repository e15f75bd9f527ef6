"""The pure rules of ACD callbacks: which pending callbacks go to the ACD now, and what follows a try."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from ctiserver.calendar import Calendar
from ctiserver.callbacks.rules import CallbackRules, CallbackStatus, CallbackView, dial_outcome, whisper_text
from ctiserver.configfile import ConfigError, load_model
from ctiserver.outbound.model import AcdCallbackConfig, OutboundConfig, TimeRange

TZ = ZoneInfo("Asia/Shanghai")


def at(hhmm: str, day: str = "2026-11-24") -> float:  # a Tuesday
    return datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=TZ).timestamp()


def rules(**over: object) -> CallbackRules:
    cfg = AcdCallbackConfig.model_validate({"windows": ["08:00-21:00"], **over})
    return CallbackRules(cfg, calendar=Calendar(),
                         quiet=(TimeRange.parse("12:00-13:30"),))


def cb(id: int, *, due: float, reason: str = "abandon", next_ts: float = 0.0, place: float = 0.0,
       skill: str = "billing", status: str = CallbackStatus.PENDING, attempts: int = 0) -> CallbackView:
    return CallbackView(id, f"1390000000{id}", skill, "priority", reason, status, attempts, next_ts, due, place)


def always_open(_: str) -> bool:
    return True


def test_due_callbacks_go_earliest_due_first_up_to_the_room_in_the_acd() -> None:
    now = at("10:00")
    pending = [cb(1, due=now + 900), cb(2, due=now + 300), cb(3, due=now + 600), cb(4, due=now + 100)]
    plan = rules(max_in_acd=5).plan(now, pending, in_acd=3, queue_open=always_open)
    assert [c.id for c in plan.queue] == [4, 2]
    assert plan.blocked["acd_full"] == 2


def test_outside_the_calling_window_a_scheduled_callback_waits_for_it_but_a_kept_place_does_not() -> None:
    now = at("22:30")
    plan = rules().plan(now, [cb(1, due=now + 86400), cb(2, due=now + 86400, reason="in_place")], 0, always_open)
    assert [c.id for c in plan.queue] == [2]
    assert plan.next_deadline == at("08:00", "2026-11-25")
    # quiet hours are cut out of the window too
    lunch = at("12:10")
    plan = rules().plan(lunch, [cb(1, due=lunch + 86400)], 0, always_open)
    assert plan.queue == [] and plan.next_deadline == at("13:30")


def test_a_number_listed_since_it_was_scheduled_is_given_up_but_a_kept_place_rings() -> None:
    """Issue 12 item 16: the do-not-call list is checked at every dial decision, not only when scheduled."""
    now = at("10:00")
    pending = [cb(1, due=now + 900), cb(2, due=now + 900, reason="in_place"), cb(3, due=now + 900),
               cb(4, due=now + 900, reason="workorder")]
    listed = {"13900000001": "dnc", "13900000002": "dnc", "13900000004": "blacklist"}
    plan = rules().plan(now, pending, 0, always_open, listed)
    assert [c.id for c in plan.queue] == [2, 3]  # the kept place: the customer asked for it
    assert plan.exclude == [(1, "dnc"), (4, "blacklist")]
    plan = rules(skip_dnc=False).plan(now, pending, 0, always_open, listed)
    assert [c.id for c in plan.queue] == [1, 2, 3] and plan.exclude == [(4, "blacklist")]  # work orders: never


def test_past_due_expires_and_a_window_that_only_opens_after_due_waits_for_expiry() -> None:
    now = at("22:00")
    plan = rules().plan(now, [cb(1, due=now - 1), cb(2, due=now + 3600)], 0, always_open)
    assert plan.expire == [1] and plan.queue == []
    assert plan.next_deadline == now + 3600  # #2 cannot ring before 08:00, after its due time


def test_a_retry_waits_for_its_time_and_a_closed_queue_is_looked_at_again() -> None:
    now = at("10:00")
    plan = rules().plan(now, [cb(1, due=now + 9000, next_ts=now + 600), cb(2, due=now + 9000, skill="fault")],
                        0, lambda skill: skill != "fault")
    assert plan.queue == [] and plan.blocked["queue_closed"] == 1
    assert plan.next_deadline == now + 60


def test_only_pending_rows_are_planned() -> None:
    now = at("10:00")
    plan = rules().plan(now, [cb(1, due=now + 60, status=CallbackStatus.QUEUED)], 0, always_open)
    assert plan.queue == [] and plan.expire == []


@pytest.mark.parametrize(("attempts", "outcome", "status", "delay"), [
    (1, "answered", CallbackStatus.DONE, None),
    (1, "busy", CallbackStatus.PENDING, 600),
    (2, "no_answer", CallbackStatus.PENDING, 1800),
    (3, "no_answer", CallbackStatus.NOT_REACHED, None),  # tries spent
    (3, "agent_hangup", CallbackStatus.PENDING, 60),  # the agent's fault costs the customer no try
    (1, "weird", CallbackStatus.PENDING, 1800),  # unknown outcomes retry like a failure
])
def test_after_a_try(attempts: int, outcome: str, status: str, delay: float | None) -> None:
    now = at("10:00")
    after = rules().after_try(attempts, outcome, now, now + 86400)
    assert after.status == status
    assert after.next_ts == (None if delay is None else now + delay)


def test_no_retry_that_would_start_after_the_callback_is_due() -> None:
    now = at("10:00")
    assert rules().after_try(1, "no_answer", now, now + 1000).status == CallbackStatus.NOT_REACHED


def test_dialstatus_and_whisper() -> None:
    assert [dial_outcome(s) for s in ("ANSWER", "busy", "NOANSWER", "CANCEL", "CHANUNAVAIL", "")] == [
        "answered", "busy", "no_answer", "agent_hangup", "failed", "failed"]
    assert whisper_text("回拨客户，尾号{last4}。", "13912345678", "abandon", "billing") == "回拨客户，尾号5678。"
    assert whisper_text("", "139", "x", "y") == ""


def test_config_is_validated_with_the_line(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "outbound.yaml"
    path.write_text("acd_callbacks:\n  windows: ['08:00-21:00']\n  whisper: '{name}'\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_model(path, OutboundConfig)
    assert "outbound.yaml:3" in str(err.value) and "name" in str(err.value)
    path.write_text("acd_callbacks:\n  windows: ['8-9']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"outbound\.yaml:2"):
        load_model(path, OutboundConfig)
