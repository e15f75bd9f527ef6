"""acd.yaml: the sample loads, and every kind of mistake is reported at its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctiserver.acd.config import load_acd_config, parse_acd_config
from ctiserver.acd.engine import AcdEngine
from ctiserver.configfile import ConfigError

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "config"

NAMES_OF_GOOD = """\
names:
  queues: {billing: {zh: 电费, en: Billing}, fault: {zh: 故障, en: Faults}, vip_desk: {zh: VIP专席, en: VIP desk}}
  tiers: {vip: {zh: VIP, en: VIP}, normal: {zh: 普通, en: Normal}, blacklist: {zh: 黑名单, en: Blacklist}}
"""
GOOD = NAMES_OF_GOOD + """\
skills: [billing, fault, vip_desk]
tiers:
  - name: vip
  - name: normal
  - name: blacklist
    last_resort: true
queues:
  billing:
    wrap_up_s: 20
agents:
  - id: "1001"
    skills: {billing: 5}
"""


def problems(text: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "acd.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_acd_config(tmp_path)
    return [str(p) for p in err.value.problems]


def test_sample_config_loads_and_drives_an_engine() -> None:
    cfg = load_acd_config(SAMPLE_DIR)
    assert [t.name for t in cfg.tiers] == ["vip", "priority", "normal", "blacklist"]
    assert {"billing", "fault", "business", "complaint", "english", "vip_desk", "outbound"} <= set(cfg.skills)
    assert [a.id for a in cfg.agents] == [str(i) for i in range(1001, 1011)]
    assert cfg.ring_timeout_s == 12
    assert cfg.dial_string("1003") == "PJSIP/agent1003"
    assert cfg.classify({"category": "hospital"}) == "vip"
    assert cfg.classify({"tier": "blacklist", "important": True}) == "blacklist"
    assert cfg.account_agents["9100000001"] == "1001" and cfg.customer_id_field == "account"
    eng = AcdEngine(cfg)
    assert len(eng.agent_ids()) == 10


def test_minimal_config_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "acd.yaml").write_text(GOOD, encoding="utf-8")
    cfg = load_acd_config(tmp_path)
    assert cfg.queue("billing").wrap_up_s == 20
    assert cfg.queue("fault").wrap_up_s == 30  # queue_defaults


def test_unknown_skill_in_an_agent_is_reported_at_its_line(tmp_path: Path) -> None:
    text = GOOD.replace("skills: {billing: 5}", "skills: {billing: 5,\n             gardening: 3}")
    path = str(tmp_path / "acd.yaml")
    assert problems(text, tmp_path) == [f"{path}:16: agent 1001: unknown skill 'gardening'"]


def test_many_cross_reference_errors_are_all_reported(tmp_path: Path) -> None:
    text = GOOD + """\
default_tier: gold
tier_rules:
  - tier: platinum
    all: [{field: x, value: 1}]
"""
    text = text.replace("    wrap_up_s: 20", "    wrap_up_s: 20\n    hours: offfice\n"
                        "    closed: {kind: queue, target: nowhere}\n"
                        "    overflow: {kind: queue, target: fault}\n"
                        "    escalation: [{after_s: 10, add_skills: [spanish]}]")
    text = text.replace("queues:\n", "queues:\n  fault:\n    overflow: {kind: queue, target: billing}\n")
    got = problems(text, tmp_path)
    text_lines = text.splitlines()

    def line_of(fragment: str) -> int:
        return next(i for i, line in enumerate(text_lines, 1) if fragment in line)

    expected = {
        (line_of("default_tier"), "unknown tier 'gold'"),
        (line_of("tier: platinum"), "unknown tier 'platinum'"),
        (line_of("hours: offfice"), "unknown hours set 'offfice' (calendar.yaml hours: none)"),
        (line_of("[spanish]"), "unknown skill 'spanish'"),
        (line_of("target: nowhere"), "overflow to unknown queue 'nowhere'"),
        (line_of("target: billing"), "overflow between queues loops"),
    }
    for line, msg in expected:
        assert any(p.split(":")[1] == str(line) and msg in p for p in got), (line, msg, got)


@pytest.mark.parametrize(("old", "new", "line", "message"), [
    ("  - name: vip\n", "  - name: vip\n    aging_step_s: -5\n", 7, "aging_step_s"),
    ("    last_resort: true\n", "    last_resort: true\n    aging_step_s: 60\n", 10,
     "is last_resort: it cannot age"),
    ("  - name: normal\n", "  - name: normal\n    wrap_up: 3\n", 8, "unknown key 'wrap_up'"),
    ("skills: {billing: 5}", "skills: {billing: 11}", 15, "less than or equal to 10"),
    ("    wrap_up_s: 20\n", "    wrap_up_s: 20\n    escalation: [{after_s: 20}, {after_s: 10}]\n", 13,
     "increasing after_s"),
])
def test_value_errors_point_at_the_line(tmp_path: Path, old: str, new: str, line: int, message: str) -> None:
    [got] = problems(GOOD.replace(old, new), tmp_path)
    assert got.split(":")[1] == str(line) and message in got, got


def test_last_resort_tier_must_be_last(tmp_path: Path) -> None:
    text = GOOD.replace("    last_resort: true\n", "    last_resort: true\n  - name: late\n")
    [got] = [p for p in problems(text, tmp_path) if "display name" not in p]
    assert ":10:" in got and "last_resort tiers must come last" in got


def test_a_second_calendar_in_acd_yaml_is_an_error_at_its_line(tmp_path: Path) -> None:
    text = GOOD + "calendars:\n  c:\n    holidays: [2026-10-01]\n    weekly: {mon: ['18:00-08:00']}\n"
    got = problems(text, tmp_path)
    assert got == [f"{tmp_path / 'acd.yaml'}:16: calendars: opening hours are the named hours sets of calendar.yaml: "
                   "refer to one with `hours: <name>`"]


def test_duplicate_agent_and_shared_account_customer(tmp_path: Path) -> None:
    text = GOOD + """\
  - id: "1001"
    skills: {billing: 5}
    dedicated_customers: [C1]
  - id: "1002"
    skills: {billing: 5}
    dedicated_customers: [C1]
"""
    got = problems(text, tmp_path)
    assert any(":16:" in p and "appears twice" in p for p in got), got
    assert any(":21:" in p and "already has account agent 1001" in p for p in got), got


def test_broken_yaml_and_bad_dial_template(tmp_path: Path) -> None:
    path = tmp_path / "acd.yaml"
    assert problems("skills: [billing\n", tmp_path)[0].startswith(f"{path}:1: YAML syntax")
    got = problems(GOOD + 'dial_template: "PJSIP/{agent}"\n', tmp_path)
    assert any(":16:" in p and "dial template" in p for p in got), got
    assert problems("- a\n", tmp_path) == [f"{path}:1: expected a mapping of keys at the top level"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        parse_acd_config(tmp_path / "acd.yaml")


def test_destination_targets_and_dial_options_cannot_smuggle_agi_arguments(tmp_path: Path) -> None:
    text = GOOD.replace("    wrap_up_s: 20\n", "    wrap_up_s: 20\n    overflow: {kind: voicemail, target: 'a b'}\n")
    [got] = problems(text + 'dial_options: "m\\nEXEC"\n', tmp_path)[:1]
    assert ":13:" in got and "target" in got
    got2 = problems(GOOD + 'dial_options: "m b"\n', tmp_path)
    assert any(":16:" in p and "dial_options" in p for p in got2), got2


def test_every_sample_agent_has_a_pjsip_endpoint_and_a_fallback_queue_seat() -> None:
    """The sample acd.yaml and the sandbox's Asterisk config must not drift apart."""
    import re

    cfg = load_acd_config(SAMPLE_DIR)
    asterisk = SAMPLE_DIR.parent / "asterisk"
    endpoints = set(re.findall(r"^\[(agent\d+)\]\(agent-endpoint\)", (asterisk / "pjsip.conf").read_text(),
                               re.MULTILINE))
    members = set(re.findall(r"^member => PJSIP/(agent\d+)", (asterisk / "queues.conf").read_text(), re.MULTILINE))
    for agent in cfg.agents:
        dial = cfg.dial_string(agent.id)
        assert dial == f"PJSIP/agent{agent.id}"
        assert f"agent{agent.id}" in endpoints, f"no PJSIP endpoint for agent {agent.id}"
        assert f"agent{agent.id}" in members, f"agent {agent.id} has no seat in the fallback queue"


def test_transfer_codes_map_four_digits_to_skills(tmp_path: Path) -> None:
    path = tmp_path / "acd.yaml"
    path.write_text(GOOD + "transfer_codes:\n  9001: vip_desk\n  '0042': billing\n", encoding="utf-8")
    cfg = load_acd_config(tmp_path)
    assert cfg.transfer_codes == {"9001": "vip_desk", "0042": "billing"}  # an unquoted code is text too
    assert cfg.queue_codes == {"vip_desk": "9001", "billing": "0042"}
    assert load_acd_config(SAMPLE_DIR).queue_codes["supervisor"] == "9001"  # the desktop's escalation desk


def test_transfer_code_mistakes_point_at_their_line(tmp_path: Path) -> None:
    text = GOOD + "transfer_codes:\n  '9001': billing\n  '9002': gardening\n  '9003': billing\n"
    path = str(tmp_path / "acd.yaml")
    assert problems(text, tmp_path) == [
        f"{path}:18: transfer code 9002: unknown skill 'gardening'",
        f"{path}:19: transfer code 9003: skill 'billing' already has code 9001"]
    [short] = problems(GOOD + "transfer_codes:\n  '901': billing\n", tmp_path)
    assert short.startswith(f"{path}:") and "901" in short and "pattern" in short


def test_every_caller_facing_text_of_the_sample_exists_in_both_languages() -> None:
    cfg = load_acd_config(SAMPLE_DIR)
    assert list(cfg.languages) == ["zh", "en"] and cfg.default_language == "zh"
    assert cfg.desk_for("billing", "en") == "english" and cfg.desk_for("billing", "zh") == "billing"
    texts = [cfg.announce.text, cfg.announce.text_unknown, cfg.announce.callback_hint, cfg.announce.callback_confirm,
             cfg.voicemail.prompt, cfg.voicemail.thanks, *cfg.messages.values()]
    for text in texts:
        assert isinstance(text, dict) and set(text) == {"zh", "en"}, text
        assert all("\u4e00" <= ch <= "\u9fff" for ch in text["zh"][:2]) and text["en"].isascii()
    assert cfg.text(cfg.messages["busy"], "en").startswith("All our agents are busy")
    assert cfg.text(cfg.messages["busy"], "fr") == cfg.text(cfg.messages["busy"], "zh")  # unknown: the default
    # rendered ahead of the first caller, in both languages
    assert {("All our agents are busy. Please call again later. Goodbye.", "en"),
            ("当前来电较多，坐席全忙，请您稍后再拨，再见。", "zh")} <= set(cfg.fixed_texts())


def test_a_caller_facing_text_missing_a_language_is_rejected_at_its_line(tmp_path: Path) -> None:
    text = GOOD + """\
languages:
  zh: {}
  en: {desk: englsh}
messages:
  busy: "坐席全忙，再见。"
  full:
    zh: "排队人数已满。"
voicemail:
  prompt: {zh: "请留言。", en: "   "}
announce:
  text: {zh: "您前面还有{position}位。", en: "{positon} callers ahead of you."}
"""
    assert problems(text, tmp_path) == [
        f"{tmp_path}/acd.yaml:18: language en: unknown queue 'englsh'",
        f"{tmp_path}/acd.yaml:20: messages.busy: give the text in every caller language (zh, en), "
        "e.g. {zh: ..., en: ...}",
        f"{tmp_path}/acd.yaml:21: messages.full: no en text (caller languages: zh, en)",
        f"{tmp_path}/acd.yaml:24: voicemail.prompt: no en text (caller languages: zh, en)",
        f"{tmp_path}/acd.yaml:26: announce.text: bad placeholder 'positon' in the en text "
        "(fields: {position}, {ahead}, {waiting}, {wait_min}, {wait_s})",
    ]
    # one language only: a plain string is that language's text
    single = GOOD + ('languages: {zh: {}}\nmessages: {busy: "坐席全忙，再见。"}\n'
                     'voicemail: {prompt: "请留言。", thanks: "谢谢。"}\n'
                     'announce: {text: "第{position}位。", text_unknown: "第{position}位。",'
                     ' callback_confirm: "再见。"}\n')
    (tmp_path / "acd.yaml").write_text(single, encoding="utf-8")
    assert load_acd_config(tmp_path).text(load_acd_config(tmp_path).messages["busy"], "en") == "坐席全忙，再见。"


def test_every_queue_and_tier_has_a_display_name(tmp_path: Path) -> None:
    cfg = load_acd_config(SAMPLE_DIR)
    assert set(cfg.names.queues) == set(cfg.skills) and set(cfg.names.tiers) == {t.name for t in cfg.tiers}
    assert cfg.names.queues["fault"].get("en") == "Fault reports" and cfg.names.tiers["vip"].get("zh") == "VIP大客户"
    text = GOOD.replace(NAMES_OF_GOOD, "") + """\
names:
  queues:
    billing: {zh: 电费, en: Billing}
    biling: {zh: 电费, en: Billing}
  tiers:
    vip: {zh: VIP, en: VIP}
    normal: {zh: 普通}
"""
    assert problems(text, tmp_path) == [f"{tmp_path}/acd.yaml:19: missing required key 'names.tiers.normal.en'"]
    assert problems(text.replace("{zh: 普通}", "{zh: 普通, en: Normal}"), tmp_path) == [
        f"{tmp_path}/acd.yaml:14: names.queues: no display name for queue(s) fault, vip_desk "
        "(give each {zh: ..., en: ...})",
        f"{tmp_path}/acd.yaml:16: names.queues: 'biling' is not a queue",
        f"{tmp_path}/acd.yaml:17: names.tiers: no display name for tier(s) blacklist "
        "(give each {zh: ..., en: ...})",
    ]
