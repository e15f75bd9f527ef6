"""Message texts, late fees and the outbound config files."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from ctiserver.calendar import Calendar
from ctiserver.configfile import ConfigError
from ctiserver.outbound.messages import MessageError, render, sound_name
from ctiserver.outbound.model import (
    CampaignSpec,
    LateFeeConfig,
    RetryPolicy,
    TimeRange,
    check_outbound,
    load_campaign_spec,
    load_outbound_config,
)
from ctiserver.outbound.rules import after_outcome, classify, late_fee

REPO = Path(__file__).resolve().parents[2]
FEES = LateFeeConfig()


def test_residential_late_fee_is_one_per_mille_a_day() -> None:
    fee = late_fee(Decimal("500"), date(2026, 11, 13), date(2026, 11, 23), False, FEES)
    assert (fee.amount, fee.days) == (Decimal("5.00"), 10)
    assert "千分之1" in fee.rule_zh and "逾期10天" in fee.rule_zh


def test_business_late_fee_uses_the_higher_rate_after_the_year_end() -> None:
    fee = late_fee(Decimal("1000"), date(2026, 12, 21), date(2027, 1, 5), True, FEES)
    # 10 days in 2026 at 2 per mille, 5 days in 2027 at 3 per mille
    assert fee.amount == Decimal("35.00") and fee.days == 15
    assert "跨年" in fee.rule_zh


def test_late_fee_minimum_and_not_overdue() -> None:
    small = late_fee(Decimal("30"), date(2026, 11, 20), date(2026, 11, 23), False, FEES)
    assert small.amount == Decimal("1.00")  # 0.09 is charged as the 1 yuan minimum
    none = late_fee(Decimal("30"), date(2026, 11, 30), date(2026, 11, 23), False, FEES)
    assert none.amount == Decimal("0.00") and none.days == 0


def test_sample_config_and_campaigns_are_valid() -> None:
    assert check_outbound(REPO / "config") == []
    cfg = load_outbound_config(REPO / "config")
    assert cfg.caps[0].kind == "arrears_reminder" and cfg.dial.context == "outbound"


def test_arrears_message_in_chinese_and_english() -> None:
    cfg = load_outbound_config(REPO / "config")
    spec = load_campaign_spec(REPO / "config" / "campaigns" / "arrears-2026-10.yaml")
    v = {"billing_month": "2026年10月", "arrears": "320.50", "due_date": "2026-11-15"}
    text = render(spec, cfg, name="张三", account="0012345678", area="", variables=v,
                  today=date(2026, 11, 23))
    assert "320.50元" in text and "违约金2.56元" in text and "合计应缴323.06元" in text
    assert "千分之1" in text and "网上国网" in text and " " not in text  # no YAML folding gaps
    en = render(spec.model_copy(update={"language": "en"}), cfg, name="Zhang", account="1", area="",
                variables={**v, "customer_class": "business"}, today=date(2026, 11, 23))
    assert "5.13 yuan" in en and "325.63 yuan in all" in en and "per mille" in en
    with pytest.raises(MessageError, match="due_date"):
        render(spec, cfg, name="x", account="1", area="", variables={**v, "due_date": ""},
               today=date(2026, 11, 23))


def test_outage_and_survey_messages() -> None:
    cfg = load_outbound_config(REPO / "config")
    spec = load_campaign_spec(REPO / "config" / "campaigns" / "outage-feeder12.yaml")
    text = render(spec, cfg, name="", account="", area="", variables={}, today=date(2026, 11, 23))
    assert "客户您好" in text and "城东街道、城东牧区" in text and "10千伏城东12号线计划检修" in text
    survey = load_campaign_spec(REPO / "config" / "campaigns" / "survey-workorders.yaml")
    assert "本次抢修服务" in render(survey, cfg, name="李四", account="", area="", variables={},
                                   today=date(2026, 11, 23))
    assert sound_name(text, "zh") == sound_name(text, "zh") != sound_name(text, "en")


def test_config_mistakes_are_reported_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "outbound.yaml").write_text(
        "templates:\n"
        "  outage_notice: {zh: '{area}{nonsense}', en: x}\n"
        "  arrears_reminder: {zh: a, en: b}\n"
        "  survey: {zh: a, en: b}\n", encoding="utf-8")
    (tmp_path / "campaigns" / "bad.yaml").write_text(
        "name: bad\nkind: outage_notice\nwindows: ['08:00-25:00']\n", encoding="utf-8")
    (tmp_path / "campaigns" / "bad2.yaml").write_text("name: bad2\nkind: outage_notice\n", encoding="utf-8")
    problems = [str(p) for p in check_outbound(tmp_path)]
    assert any(p.startswith(f"{tmp_path / 'outbound.yaml'}:2:") and "nonsense" in p for p in problems)
    assert any(p.startswith(f"{tmp_path / 'campaigns' / 'bad.yaml'}:3:") and "HH:MM" in p for p in problems)
    assert any("needs an 'outage' section" in p for p in problems)
    (tmp_path / "outbound.yaml").write_text("templates: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no message template for outage_notice"):
        load_outbound_config(tmp_path)


def test_campaign_sections_must_match_the_kind() -> None:
    with pytest.raises(ValueError, match="does not belong"):
        CampaignSpec.model_validate({"name": "x", "kind": "survey", "arrears": {}})


def test_time_ranges() -> None:
    night = TimeRange.parse("22:00-06:00")
    assert night.across_midnight and night.contains(23 * 60) and night.contains(60)
    assert not night.contains(720)
    assert TimeRange.parse("00:00-24:00").contains(1439)
    for bad in ("8:00-9:00", "09:00-09:00", "10:00", "24:00-01:00"):
        with pytest.raises(ValueError):
            TimeRange.parse(bad)


def test_working_days_and_retry_decisions() -> None:
    cal = Calendar(holidays=[date(2026, 10, 1)], workdays=[date(2026, 10, 10)])
    assert cal.add_working_days(date(2026, 9, 30), 1) == date(2026, 10, 2)
    assert cal.add_working_days(date(2026, 10, 9), 1) == date(2026, 10, 10)  # make-up Saturday
    assert cal.add_working_days(date(2026, 10, 3), 0) == date(2026, 10, 5)
    policy = RetryPolicy()
    assert after_outcome(policy, 1, "busy", 100.0).next_due == 400.0
    assert after_outcome(policy, 3, "busy", 100.0).status == "not_reached"
    assert after_outcome(policy, 1, "confirmed", 100.0).status == "done"
    assert after_outcome(policy, 3, "machine", 100.0).status == "not_reached"
    left = RetryPolicy.model_validate({"machine": {"retry": False}, "machine_is_delivered": True})
    assert after_outcome(left, 1, "machine", 100.0).status == "done"
    assert after_outcome(left, 1, "busy", 100.0).status == "pending"
    assert classify("survey", "answered", "4") == "rated"
    assert classify("survey", "answered", "7") == "answered"
    assert classify("outage_notice", "answered", "221") == "confirmed"
    assert classify("arrears_reminder", "answered", "0") == "agent"
    assert classify("outage_notice", "busy", "1") == "busy"


def test_a_contacts_own_language_picks_the_template_and_the_campaigns_words() -> None:
    cfg = load_outbound_config(REPO / "config")
    spec = load_campaign_spec(REPO / "config" / "campaigns" / "outage-feeder12.yaml")
    assert spec.language == "zh"
    zh = render(spec, cfg, name="张三", account="", area="城东街道", variables={}, today=date(2026, 11, 23))
    en = render(spec, cfg, name="Tom", account="", area="城东街道", variables={"language": "en"},
                today=date(2026, 11, 23))
    assert "10千伏城东12号线计划检修" in zh and "11月25日8时" in zh
    assert en.startswith("Hello Tom") and "planned maintenance of the 10 kV Chengdong line 12" in en
    assert "8 am on 25 November" in en and "检修" not in en
    survey = load_campaign_spec(REPO / "config" / "campaigns" / "survey-workorders.yaml")
    assert "our recent repair service" in render(survey, cfg, name="Tom", account="", area="",
                                                 variables={"language": "en"}, today=date(2026, 11, 23))


def test_campaign_words_given_per_language_need_both() -> None:
    with pytest.raises(ValueError, match="en"):
        CampaignSpec.model_validate({"name": "x", "kind": "outage_notice", "outage": {
            "areas": ["城东"], "start": "8时", "end": "12时", "reason": {"zh": "检修"}}})
