"""Rosters: coverage on a generated week, every rule (the solver keeps it, the checker catches a breach),
pattern validation, simulated SL under the roster, and `ctiserver roster build/show` with exports."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctiserver.calendar import load_calendar
from ctiserver.configfile import ConfigError
from ctiserver.kpi.config import TierTargets
from ctiserver.wfm.config import load_wfm_config
from ctiserver.wfm.forecast import forecast_queue
from ctiserver.wfm.roster import (
    WEEK_SLOTS,
    build_roster,
    coverage,
    from_doc,
    met_share,
    need_from_staffing,
    to_doc,
    variant_for,
)
from ctiserver.wfm.shifts import DAY_SLOTS, Agent, Assignment, RosterConfig, violations
from ctiserver.wfm.staffing import staffing_for
from ctiserver.wfm.synth import generate
from ctiserver.wfm.verify import roster_spans, simulate_day

from .test_forecast_cli import CONFIG, run, store  # noqa: F401  (the SQLite store fixture)
from .test_staffing import ACD

CAL = load_calendar(CONFIG)
WEEK = dt.date(2026, 8, 10)
PATTERNS: dict[str, Any] = {
    "night": {"length_h": 8, "start_times": ["00:00"],
              "meal": {"minutes": 30, "earliest_after_h": 3, "latest_after_h": 5}},
    "early": {"length_h": 8.5, "start_times": ["07:00", "07:30", "08:00", "08:30", "09:00"],
              "meal": {"minutes": 30, "earliest_after_h": 3.5, "latest_after_h": 5},
              "breaks": [{"minutes": 15, "after_h": 2}, {"minutes": 15, "after_h": 6.5}]},
    "late": {"length_h": 8.5, "start_times": ["12:00", "13:00", "14:00", "15:30"],
             "meal": {"minutes": 30, "earliest_after_h": 3.5, "latest_after_h": 5},
             "breaks": [{"minutes": 15, "after_h": 2}]},
}
RULES = {"max_consecutive_days": 5, "min_rest_h": 11, "max_days_per_week": 5, "max_hours_per_week": 40}


def config(**rules: Any) -> RosterConfig:
    return RosterConfig.model_validate({"patterns": PATTERNS, "rules": {**RULES, **rules}})


def week_need(queues: dict[str, float]) -> dict[str, list[float]]:
    needs = []
    for q, base in queues.items():
        h, _ = generate(CAL, q, dt.date(2026, 6, 29), 42, base=base, seed=len(q), patience_s=90.0)
        fc = forecast_queue(h, CAL, WEEK, 7, accuracy=False)
        needs += staffing_for(fc, TierTargets())
    return need_from_staffing(needs, WEEK, 0.0)


def team(n: int) -> list[Agent]:
    """Agents with billing, fault, or both, in turn; two teams."""
    skills = [frozenset({"billing"}), frozenset({"fault"}), frozenset({"billing", "fault"})]
    return [Agent(f"a{i:02d}", skills[i % 3], team="AB"[i % 2]) for i in range(n)]


def test_generated_week_meets_the_requirement_without_breaking_a_rule() -> None:
    need = week_need({"billing": 260.0, "fault": 120.0})
    agents = team(22)
    t0 = time.perf_counter()
    r = build_roster(config(), agents, WEEK, need, seconds=1.0)
    took = time.perf_counter() - t0
    share, met, counted = met_share(r.assignments, agents, need)
    print(f"roster: {len(r.assignments)} shifts, {met}/{counted} half hours with calls covered ({share:.1%}), "
          f"solver {r.status} {r.solve_s:.2f} s, build {took:.2f} s")
    assert share >= 0.95
    assert violations(r.assignments, config(), agents, WEEK) == []
    # round trip through the saved form
    again = from_doc(json.loads(json.dumps(to_doc(r, agents))), config())
    assert again.assignments == r.assignments and again.need == need


def _small(**rules: Any) -> tuple[RosterConfig, list[Agent], dict[str, list[float]]]:
    """Six agents, one queue needing 2 agents 07:00-22:00 every day (fast to solve)."""
    need = [0.0] * WEEK_SLOTS
    for d in range(7):
        for s in range(14, 44):
            need[d * DAY_SLOTS + s] = 2.0
    agents = [Agent(f"s{i}", frozenset({"billing"})) for i in range(6)]
    return config(**rules), agents, {"billing": need}


def _runs(days: set[int]) -> int:
    best = run_ = 0
    for d in range(7):
        run_ = run_ + 1 if d in days else 0
        best = max(best, run_)
    return best


def _by_agent(assignments: list[Assignment]) -> dict[str, dict[int, Assignment]]:
    out: dict[str, dict[int, Assignment]] = {}
    for a in assignments:
        out.setdefault(a.agent, {})[a.day] = a
    return out


def _shift(cfg: RosterConfig, agent: str, day: int, pattern: str, start: str, meal: str | None) -> Assignment:
    return Assignment(agent, day, variant_for(cfg, pattern, start, meal))


def test_rule_max_consecutive_days() -> None:
    cfg, agents, need = _small(max_consecutive_days=3)
    r = build_roster(cfg, agents, WEEK, need, seconds=0.3)
    assert all(_runs(set(days)) <= 3 for days in _by_agent(r.assignments).values())
    broken = [_shift(cfg, "s0", d, "early", "08:00", "12:00") for d in range(4)]
    assert any("4 days in a row" in v for v in violations(broken, cfg, agents, WEEK))


def test_rule_min_rest_between_shifts() -> None:
    cfg, agents, need = _small(min_rest_h=15)
    r = build_roster(cfg, agents, WEEK, need, seconds=0.3)
    for days in _by_agent(r.assignments).values():
        for d, a in days.items():
            if d + 1 in days:
                gap = DAY_SLOTS + days[d + 1].variant.start - (a.variant.start + a.variant.length)
                assert gap / 2 >= 15
    late_then_early = [_shift(cfg, "s0", 0, "late", "15:30", "19:30"), _shift(cfg, "s0", 1, "early", "07:00", "11:00")]
    assert any("rest between day 1 and 2" in v for v in violations(late_then_early, cfg, agents, WEEK))


def test_rule_max_days_and_hours_per_week() -> None:
    cfg, agents, need = _small(max_days_per_week=4, max_hours_per_week=30)
    r = build_roster(cfg, agents, WEEK, need, seconds=0.3)
    for days in _by_agent(r.assignments).values():
        assert len(days) <= 4 and sum(a.variant.paid_slots for a in days.values()) / 2 <= 30
    five = [_shift(cfg, "s0", d, "early", "08:00", "12:00") for d in range(5)]
    found = violations(five, cfg, agents, WEEK)
    assert any("over max_days_per_week 4" in v for v in found)
    assert any("paid hours, over max_hours_per_week 30" in v for v in found)


def test_rule_contract_days_unavailable_days_and_allowed_patterns() -> None:
    cfg, agents, need = _small()
    agents[0] = Agent("s0", frozenset({"billing"}), days_per_week=3)
    agents[1] = Agent("s1", frozenset({"billing"}), unavailable=frozenset({WEEK + dt.timedelta(days=2)}))
    agents[2] = Agent("s2", frozenset({"billing"}), patterns=("late",))
    r = build_roster(cfg, agents, WEEK, need, seconds=0.3)
    by = _by_agent(r.assignments)
    assert len(by["s0"]) == 3
    assert 2 not in by.get("s1", {})
    assert all(a.variant.pattern == "late" for a in by.get("s2", {}).values())
    wrong = [_shift(cfg, "s1", 2, "early", "08:00", "12:00"), _shift(cfg, "s2", 0, "early", "08:00", "12:00"),
             _shift(cfg, "s2", 1, "late", "13:00", "17:00"), _shift(cfg, "s2", 1, "late", "14:00", "18:00"),
             _shift(cfg, "s0", 0, "early", "08:00", "12:00")]
    found = violations(wrong, cfg, agents, WEEK)
    assert any("when unavailable" in v for v in found)
    assert any("pattern early is not one of theirs" in v for v in found)
    assert any("two shifts on day 2" in v for v in found)
    assert any("the contract says 3" in v for v in found)


@pytest.mark.parametrize(("pattern", "message"), [
    ({"length_h": 8.25, "start_times": ["08:00"]}, "whole number of half hours"),
    ({"length_h": 8, "start_times": ["08:15"]}, "on the half hour"),
    ({"length_h": 8, "start_times": ["08:00", "08:00"]}, "lists a time twice"),
    ({"length_h": 8, "start_times": ["08:00"], "meal": {"earliest_after_h": 6, "latest_after_h": 8}},
     "does not end before the shift's end"),
    ({"length_h": 8, "start_times": ["08:00"], "meal": {"earliest_after_h": 5, "latest_after_h": 4}},
     "latest_after_h is before earliest_after_h"),
    ({"length_h": 8, "start_times": ["08:00"], "meal": {"earliest_after_h": 3, "latest_after_h": 5},
      "breaks": [{"after_h": 4}]}, "falls in the meal window"),
    ({"length_h": 8, "start_times": ["08:00"], "breaks": [{"after_h": 9}]}, "not inside the 8.0 h shift"),
])
def test_patterns_are_validated_with_file_and_line(tmp_path: Path, pattern: dict[str, Any], message: str) -> None:
    (tmp_path / "wfm.yaml").write_text(yaml.safe_dump({"roster": {"patterns": {"day": pattern}}}), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_wfm_config(tmp_path)
    text = str(err.value)
    assert message in text and "wfm.yaml:" in text


def test_simulated_service_level_under_the_roster_meets_the_targets() -> None:
    """One queue's roster, its Monday played through the simulator with the rostered people (meals and
    break half hours off the phones): VIP ≥ 90 % and the others ≥ 85 % in 20 s."""
    h, _ = generate(CAL, "billing", dt.date(2026, 6, 29), 42, base=400.0, seed=4, patience_s=90.0)
    fc = forecast_queue(h, CAL, WEEK, 7, accuracy=False)
    need = need_from_staffing(staffing_for(fc, TierTargets()), WEEK, 0.0)
    agents = [Agent(f"b{i:02d}", frozenset({"billing"})) for i in range(16)]
    r = build_roster(config(), agents, WEEK, need, seconds=0.3)
    calls = [fc.calls[(WEEK, s)] for s in range(48)]
    aht = sum(c * fc.aht_s[(WEEK, s)] for s, c in enumerate(calls)) / sum(calls)
    tiers, summary = simulate_day(ACD, CAL, TierTargets(), "billing", WEEK, calls, aht, roster_spans(r.assignments, 0),
                                  fc.patience_s, fc.tier_mix, seed=5)
    print("simulated Monday under the roster:", summary, [(t.tier, round(t.service_level or 0, 3)) for t in tiers])
    assert all(t.met for t in tiers), tiers
    assert min(coverage(r.assignments, agents)[20:40]) >= 1


def test_roster_build_show_and_exports(store: str, tmp_path: Path,  # noqa: F811
                                      capsys: pytest.CaptureFixture[str]) -> None:
    cfg_dir = tmp_path / "config"
    shutil.copytree(CONFIG, cfg_dir)
    base = ["roster", "build", "--config", str(cfg_dir), "--url", store, "--week", "2026-08-17", "--seconds", "0.3"]
    assert run([*base, "--format", "json", "--csv", str(tmp_path / "r.csv"), "--xlsx", str(tmp_path / "r.xlsx")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["rows"]) == WEEK_SLOTS and {"required", "rostered", "gap", "met"} <= set(doc["rows"][0])
    saved = json.loads((tmp_path / "var" / "wfm" / "roster-2026-08-17.json").read_text(encoding="utf-8"))
    assert saved["assignments"] and saved["met_share"] == doc["roster"]["met_share"]
    assert (tmp_path / "r.csv").read_text(encoding="utf-8").startswith("agent,name,team,date,pattern,start,end,meal")
    from openpyxl import load_workbook

    wb = load_workbook(tmp_path / "r.xlsx")
    assert wb.sheetnames == ["Roster", "Shifts", "Coverage"] and wb["Roster"]["A2"].value == "1001"
    assert run(["roster", "show", "--config", str(cfg_dir), "--week", "2026-08-17", "--view", "shifts"]) == 0
    out = capsys.readouterr().out
    assert "Roster, week of 2026-08-17" in out and "requirement met in" in out
    with pytest.raises(Exception, match="give the week's Monday"):
        run(["roster", "show", "--config", str(cfg_dir), "--week", "2026-08-18"])


def test_check_flags_a_roster_agent_acd_yaml_does_not_know(tmp_path: Path) -> None:
    from ctiserver.app.settings import check_all

    cfg_dir = tmp_path / "config"
    shutil.copytree(CONFIG, cfg_dir)
    assert [str(p) for p in check_all(cfg_dir, 0.0) if "wfm.yaml" in str(p)] == []
    (cfg_dir / "wfm.yaml").write_text('roster:\n  agents:\n    "9999": {team: A}\n', encoding="utf-8")
    assert [str(p) for p in check_all(cfg_dir, 0.0)] == [
        f"{cfg_dir / 'wfm.yaml'}:3: roster.agents: '9999' is not an agent of acd.yaml"]


def test_rules_across_the_week_boundary() -> None:
    """Last week's Sunday late shift and runs of days reach into this week: the solver keeps both rules and
    the checker catches a roster that breaks them."""
    from ctiserver.wfm.shifts import carried

    cfg, agents, need = _small(max_consecutive_days=4, min_rest_h=12)
    last_week = [_shift(cfg, "s0", d, "late", "15:30", "19:30") for d in (3, 4, 5, 6)] + \
        [_shift(cfg, "s1", d, "late", "15:30", "19:30") for d in (5, 6)]
    before = carried(last_week)
    assert before["s0"].run == 4 and before["s1"].run == 2 and before["s0"].last is not None
    r = build_roster(cfg, agents, WEEK, need, seconds=0.3, before=before)
    days = _by_agent(r.assignments)
    assert 0 not in days.get("s0", {})  # four days in a row already: Monday off
    assert not {0, 1, 2} <= set(days.get("s1", {}))  # two already: a day off by Wednesday
    monday_s1 = days.get("s1", {}).get(0)
    if monday_s1 is not None:  # Sunday ended 24:00: Monday no earlier than 12:00
        assert monday_s1.variant.start >= 24
    assert violations(r.assignments, cfg, agents, WEEK, before) == []
    broken = [_shift(cfg, "s0", 0, "late", "15:30", "19:30"), _shift(cfg, "s1", 0, "early", "07:00", "11:00")]
    found = violations(broken, cfg, agents, WEEK, before)
    assert any(v.startswith("s0: 5 days in a row across the week boundary") for v in found), found
    assert any(v.startswith("s1: 7 h rest between last Sunday and Monday") for v in found), found
    assert violations(broken, cfg, agents, WEEK) == []  # without last week, nothing to see
