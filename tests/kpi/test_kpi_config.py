"""kpi.yaml: defaults, the shipped file, and broken files reported as file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctiserver.configfile import ConfigError
from ctiserver.kpi.bands import OTHER, BandSpan, band_at, parse_hhmm, slot_table
from ctiserver.kpi.config import KpiConfig, load_kpi_config

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_default_bands_follow_the_utility_tariff() -> None:
    table = KpiConfig().band_table()
    assert band_at(table, 7 * 60 + 59) == "valley"
    assert band_at(table, 8 * 60) == "flat"
    assert band_at(table, 9 * 60) == "peak"
    assert band_at(table, 11 * 60 + 59) == "peak"
    assert band_at(table, 12 * 60) == "flat"
    assert band_at(table, 15 * 60) == "peak"
    assert band_at(table, 19 * 60) == "flat"
    assert band_at(table, 22 * 60) == "valley"
    assert band_at(table, 0) == "valley"  # across midnight
    assert table.count("peak") == 14 and table.count("flat") == 14 and table.count("valley") == 20


def test_shipped_kpi_yaml_loads_and_matches_the_defaults() -> None:
    cfg = load_kpi_config(REPO_CONFIG)
    assert cfg.band_table() == KpiConfig().band_table()
    assert cfg.timezone == "Asia/Shanghai"
    assert cfg.tier_targets.for_tier("vip").target == 0.90
    assert cfg.tier_targets.for_tier("normal").target == 0.85
    assert cfg.tier_targets.for_tier(None).target == 0.85
    assert cfg.service_level.threshold_s == 20 and cfg.service_level.short_abandon_s == 20
    assert cfg.service_level == KpiConfig().service_level  # one setting: the shipped file says what the default says


def test_missing_file_gives_defaults_and_takes_the_calendar_zone(tmp_path: Path) -> None:
    assert load_kpi_config(tmp_path) == KpiConfig()
    (tmp_path / "calendar.yaml").write_text("timezone: Asia/Urumqi\n", encoding="utf-8")
    assert load_kpi_config(tmp_path).timezone == "Asia/Urumqi"
    (tmp_path / "kpi.yaml").write_text("timezone: Asia/Shanghai\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"kpi.yaml:1: timezone: the time zone is set once, in calendar.yaml"):
        load_kpi_config(tmp_path)


@pytest.mark.parametrize(("text", "line", "words"), [
    ("service_level:\n  threshold_s: -1\n", 2, "service_level.threshold_s"),
    ("service_level:\n  target: 1.5\n", 2, "target"),
    ("bands:\n  - {name: peak, start: '09:00', end: '12:00'}\n"
     "  - {name: flat, start: '11:00', end: '13:00'}\n", 1, "overlap at 11:00"),
    ("bands:\n  - {name: peak, start: '09:15', end: '12:00'}\n", 2, "half hour"),
    ("bands:\n  - {name: peak, start: '9am', end: '12:00'}\n", 2, "HH:MM"),
    ("fcr:\n  method: vibes\n", 2, "fcr.method"),
    ("workorders:\n  due_h: {fault: 2}\n", 2, "work-order deadlines are defined once, in workorders.yaml"),
    ("servcie_level: {}\n", 1, "unknown key 'servcie_level'"),
    ("bands: [\n", 1, "YAML syntax error"),
    # every metric the reports page shows has a name in both UI languages
    ("metric_names:\n  asa_s: {zh: 平均应答, en: ASA}\n", 1, "no name for calls_offered"),
    ("metric_names:\n  asa_s: {zh: 平均应答}\n", 2, "metric_names.asa_s.en"),
])
def test_broken_kpi_yaml_is_reported_with_its_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    (tmp_path / "kpi.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_kpi_config(tmp_path)
    problem = err.value.problems[0]
    assert problem.file.endswith("kpi.yaml")
    assert problem.line == line, str(err.value)
    assert words in problem.message, str(err.value)


def test_band_helpers() -> None:
    assert parse_hhmm("24:00") == 1440 and parse_hhmm("00:30") == 30
    for bad in ("24:30", "7:5x", "12", "25:00"):
        with pytest.raises(ValueError):
            parse_hhmm(bad)
    # A gap is "other"; a band that starts where it ends is refused.
    table = slot_table([BandSpan("day", 480, 1200)])
    assert band_at(table, 0) == OTHER and band_at(table, 600) == "day"
    with pytest.raises(ValueError, match="same time"):
        slot_table([BandSpan("none", 540, 540)])
    assert set(slot_table([BandSpan("all", 0, 1440)])) == {"all"}
    assert slot_table([BandSpan("late", 1320, 1440), BandSpan("early", 1440, 480)])[0] == "early"
