"""Staffing from the forecast (Erlang C and A, tier targets, shrinkage), checked in the simulator."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest

from ctiserver.acd.config import AcdConfig
from ctiserver.calendar import load_calendar
from ctiserver.kpi import erlang
from ctiserver.kpi.config import TierTargets, load_kpi_config
from ctiserver.wfm.forecast import forecast_queue
from ctiserver.wfm.staffing import queue_target, slot_need, staffing_for
from ctiserver.wfm.synth import generate
from ctiserver.wfm.verify import duty_spans, verify_plan

from .test_forecast_cli import CONFIG, run, store  # noqa: F401  (the SQLite store fixture)

CAL = load_calendar(Path(__file__).resolve().parents[2] / "config")
ACD = AcdConfig.model_validate({"skills": ["billing"], "tiers": [{"name": "vip"}, {"name": "normal"}],
                                "vip": {"tier": "vip", "desk_skill": None}, "ring_guard_s": 0,
                                "redial_window_s": 0, "queue_defaults": {"wrap_up_s": 0}})


def test_tier_targets_come_from_kpi_yaml() -> None:
    targets = load_kpi_config(CONFIG).tier_targets
    assert (targets.for_tier("vip").target, targets.for_tier("normal").target) == (0.90, 0.85)
    assert queue_target({"vip": 0.1, "normal": 0.9}, targets) == (0.90, 20.0)  # the strictest tier it carries
    assert queue_target({"normal": 1.0}, targets) == (0.85, 20.0)
    assert queue_target({"vip": 0.001, "normal": 0.999}, targets) == (0.85, 20.0)  # a stray VIP call


def test_erlang_a_needs_fewer_than_c_and_shrinkage_scales_the_schedule() -> None:
    need = slot_need("billing", "2026-08-10", 20, calls=120, aht_s=240, target=0.85, threshold_s=20,
                     patience_s=60, model="erlang_a", shrinkage=0.2)
    assert need.erlang_c == erlang.agents_needed(120 / 1800, 240, 20, 0.85)
    assert need.erlang_a <= need.erlang_c and need.required == need.erlang_a
    assert need.scheduled == -(-need.required * 10 // 8)  # ceil(required / 0.8)
    assert need.expected_sl >= 0.85
    fewer = erlang.erlang_a(need.erlang_a - 1, 120 / 1800, 240, 60, 20).answered_within
    assert fewer < 0.85  # the fewest that reach it
    c = slot_need("billing", "2026-08-10", 20, 120, 240, 0.85, 20, 60, "erlang_c", 0.0)
    assert c.required == c.erlang_c and c.scheduled == c.required
    assert slot_need("billing", "2026-08-10", 6, 0.0, 240, 0.85, 20, 60, "erlang_a", 0.2).scheduled == 0


def test_duty_spans_keep_the_same_people_on() -> None:
    agents = [0] * 48
    agents[16:20] = [1, 2, 2, 1]
    agents[46:48] = [1, 1]
    assert duty_spans(agents) == [["08:00-10:00", "23:00-24:00"], ["08:30-09:30"]]


def test_the_forecast_day_played_through_the_simulator_meets_each_tier_target() -> None:
    """A Monday of ~1,800 calls (10 % VIP, 90 s patience) staffed by Erlang A for the strictest tier
    target, run through the production ACD engine: VIP ≥ 90 % and the others ≥ 85 % in 20 s."""
    h, _ = generate(CAL, "billing", dt.date(2026, 6, 29), 42, base=1500.0, patience_s=90.0, seed=2)
    fc = forecast_queue(h, CAL, dt.date(2026, 8, 10), 1, accuracy=False)
    t0 = time.perf_counter()
    needs = staffing_for(fc, TierTargets(), shrinkage=0.1)
    t1 = time.perf_counter()
    [check] = verify_plan(ACD, CAL, TierTargets(), fc, needs, 120.0, seed=3)
    print(f"staffing {t1 - t0:.2f} s, simulation {time.perf_counter() - t1:.2f} s:",
          json.dumps(check, ensure_ascii=False))
    assert check["calls"] > 1500
    sl = {t["tier"]: t for t in check["tiers"]}
    assert sl["vip"]["met"] and sl["normal"]["met"], sl
    assert sum(n.required for n in needs) < sum(n.erlang_c for n in needs)  # patience saves agents


def test_staffing_command_with_verify(store: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert run(["staffing", "--config", str(CONFIG), "--url", store, "--from", "2026-08-17", "--verify",
                "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["rows"]) == 48 and {"erlang_c", "erlang_a", "required", "scheduled"} <= set(doc["rows"][20])
    [check] = doc["verification"]
    assert check["queue"] == "billing" and {t["tier"] for t in check["tiers"]} == {"vip", "normal"}
    assert any("simulated" in n and "target 90%" in n for n in doc["notes"])
    assert run(["staffing", "--config", str(CONFIG), "--url", store, "--from", "2026-08-17"]) == 0
    assert "required = Erlang A agents on the phones" in capsys.readouterr().out
