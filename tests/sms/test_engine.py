"""The SMS cores: encoding and parts, the message table, the contact rules (windows, quiet hours, caps,
do-not-call), and sms.yaml's checks (an unknown placeholder is a file:line error)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from ctiserver.calendar import load_calendar
from ctiserver.configfile import ConfigError
from ctiserver.outbound.model import load_outbound_config
from ctiserver.outbound.rules import Delivery
from ctiserver.sms import engine
from ctiserver.sms.encoding import GSM7, UCS2, encode
from ctiserver.sms.engine import IllegalTransition, Message, SendRules, State
from ctiserver.sms.model import check_sms, load_sms_config

REPO = Path(__file__).resolve().parents[2]
CFG = load_sms_config(REPO / "config")
RULES = SendRules.of(CFG, load_outbound_config(REPO / "config"))
CAL = load_calendar(REPO / "config")


def local(hhmm: str, day: str = "2026-12-02") -> float:
    import datetime as dt
    d = dt.date.fromisoformat(day)
    h, m = map(int, hhmm.split(":"))
    return CAL.at(d, h * 60 + m)


def msg(**kw: object) -> Message:
    base = Message(id=1, number="13800000001", kind="outage_notice", state=State.QUEUED, attempts=0, due=0.0,
                   account="1001", area="城东")
    return replace(base, **kw)  # type: ignore[arg-type]


def test_encoding_picks_gsm_or_ucs2_and_counts_parts() -> None:
    assert encode("Power is back") == encode("Power is back")
    assert encode("Power is back").coding == GSM7 and encode("Power is back").parts == 1
    assert encode("x" * 160).parts == 1 and encode("x" * 161).parts == 2
    assert encode("€" * 80).units == 160 and encode("€" * 80).parts == 1  # extension chars cost two septets
    zh = encode("您好" * 35)
    assert (zh.coding, zh.units, zh.parts) == (UCS2, 70, 1)
    assert encode("您好" * 35 + "。").parts == 2
    assert encode("电" * 168).parts == 3  # 67 per part once concatenated


def test_accepted_then_delivered_and_duplicates_change_nothing() -> None:
    m = engine.after_submit(msg(), "accepted", 100.0, CFG)
    assert (m.state, m.attempts, m.due) == (State.ACCEPTED, 1, 100.0 + CFG.retry.report_timeout_s)
    assert engine.after_dlr(m, engine.DLR_SMSC_ACK, 101.0, CFG) == m  # the SMSC took it: still waiting
    done = engine.after_dlr(m, engine.DLR_DELIVERED, 102.0, CFG)
    assert done.state == State.DELIVERED
    assert engine.after_dlr(done, engine.DLR_FAILED, 103.0, CFG) == done  # late report of a settled message


def test_a_report_faster_than_the_senders_write_still_counts() -> None:
    # Kannel may call back before the sender stored "accepted": the message is still queued then
    assert engine.after_dlr(msg(), engine.DLR_DELIVERED, 1.0, CFG).state == State.DELIVERED
    assert engine.after_dlr(msg(), engine.DLR_SMSC_ACK, 1.0, CFG).state == State.QUEUED


def test_failures_retry_with_the_configured_delays_then_fall_back_to_a_call() -> None:
    m = msg()
    dues = []
    for i in range(CFG.retry.max_attempts):
        m = engine.after_submit(m, "accepted", 1000.0 * i, CFG)
        m = engine.after_dlr(m, engine.DLR_FAILED, 1000.0 * i + 1, CFG, "err")
        dues.append(m.due - (1000.0 * i + 1))
    assert m.state == State.FALLBACK and m.attempts == CFG.retry.max_attempts
    assert dues[:-1] == CFG.retry.delays_s[:CFG.retry.max_attempts - 1]
    no_fallback = CFG.model_copy(update={"fallback_call": False})
    assert engine.after_submit(replace(msg(), attempts=2), "refused", 5.0, no_fallback).state == State.FAILED


def test_a_gateway_that_is_down_does_not_use_up_attempts() -> None:
    m = msg()
    for i in range(10):
        m = engine.after_submit(m, "down", float(i), CFG)
    assert (m.state, m.attempts, m.due) == (State.QUEUED, 0, 9.0 + CFG.retry.gateway_down_s)


def test_no_final_report_in_time_counts_as_a_failure() -> None:
    m = engine.after_submit(msg(), "accepted", 0.0, CFG)
    m = engine.after_report_timeout(m, m.due, CFG)
    assert (m.state, m.attempts) == (State.QUEUED, 1)


def test_illegal_transitions_name_state_and_event() -> None:
    with pytest.raises(IllegalTransition, match="'delivered' cannot take event 'submit'"):
        engine.after_submit(msg(state=State.DELIVERED), "accepted", 0.0, CFG)
    with pytest.raises(IllegalTransition, match="'excluded' cannot take event 'dlr'"):
        engine.after_dlr(msg(state=State.EXCLUDED), 1, 0.0, CFG)


def test_plan_keeps_windows_quiet_hours_caps_and_dnc() -> None:
    at_ten = local("10:00")
    assert engine.plan(msg(), at_ten, RULES, CFG, None, []).action == "send"
    assert engine.plan(msg(), at_ten, RULES, CFG, "dnc", []).action == "exclude"
    night = engine.plan(msg(), local("22:30"), RULES, CFG, None, [])
    assert (night.action, night.until) == ("wait", local("08:00", "2026-12-03"))
    lunch = engine.plan(msg(), local("12:10"), RULES, CFG, None, [])  # outbound.yaml's quiet hours
    assert (lunch.action, lunch.until) == ("wait", local("13:30"))
    herders = engine.plan(msg(area="城东牧区"), local("14:00"), RULES, CFG, None, [])  # an area's own
    assert herders.until == local("15:00")
    own = engine.plan(msg(quiet="09:00-11:00"), at_ten, RULES, CFG, None, [])  # the customer's own
    assert own.until == local("11:00")
    sent = [Delivery("1001", "arrears_reminder", at_ten - 86400)]
    capped = engine.plan(msg(kind="arrears_reminder"), at_ten, RULES, CFG, None, sent)
    assert (capped.action, capped.until) == ("wait", at_ten - 86400 + 7 * 86400)
    assert engine.plan(msg(kind="outage_notice"), at_ten, RULES, CFG, None, sent).action == "send"


def test_shipped_sms_yaml_is_clean_and_unknown_placeholders_are_file_line_errors(tmp_path: Path) -> None:
    shutil.copytree(REPO / "config", tmp_path / "config")
    path = tmp_path / "config" / "sms.yaml"
    assert check_sms(tmp_path / "config") == []
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    line = next(i for i, s in enumerate(lines, 1) if "{crew_phone}" in s and "zh:" in s)
    path.write_text(text.replace("（电话{crew_phone}）", "（电话{crew_mobile}）"), encoding="utf-8")
    problems = [str(p) for p in check_sms(tmp_path / "config")]
    assert len(problems) == 1 and problems[0].startswith(f"{path}:{line}: templates.repair_apology.zh:"), problems
    assert "unknown placeholder(s) ['crew_mobile']" in problems[0]
    path.write_text(text.replace("  restored:\n", "  restored_x:\n"), encoding="utf-8")
    with pytest.raises(ConfigError):
        load_sms_config(tmp_path / "config")
