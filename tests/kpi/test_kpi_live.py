"""Live = history: the wallboard's figures, folded event by event from a simulated day, equal the KPI report
of the same events, at the end of the day and at any moment during it (per tier, per queue, in total)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ctiserver.events import Event
from ctiserver.kpi.config import load_kpi_config
from ctiserver.kpi.live import LiveFigures
from ctiserver.kpi.report import build_report
from ctiserver.sim.scenario import load_scenario
from ctiserver.sim.simulate import simulate

ROOT = Path(__file__).resolve().parents[2]
KEYS = ("calls_offered", "answered", "service_level", "asa_s", "abandon_rate", "abandoned_counted", "in_queue")


@pytest.fixture(scope="module")
def day() -> tuple[Any, list[Event], float]:
    cfg = load_kpi_config(ROOT / "config")
    sc = load_scenario(ROOT / "config" / "scenarios" / "weekday.yaml", ROOT / "config", cfg.zone())
    res = simulate(sc, 7)
    return cfg, sorted(res.events, key=lambda e: e.ts), sc.start_ts


def pick(m: dict[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in KEYS}


async def check(cfg: Any, seen: list[Event], start: float, now: float, live: LiveFigures) -> None:
    figs = live.figures(now)["today"]
    by_tier = await build_report(seen, cfg, start, start + 86400, ["tier"], now=now)
    by_queue = await build_report(seen, cfg, start, start + 86400, ["queue"], now=now)
    assert figs["total"] == pick(by_tier["total"])
    assert figs["queues"] == {r["key"]["queue"]: pick(r["metrics"]) for r in by_queue["rows"]
                              if r["key"]["queue"] is not None}
    tiers = {t["tier"]: t for t in by_tier["tiers"] if t["tier"] is not None}
    assert set(figs["tiers"]) == set(tiers)
    for name, f in figs["tiers"].items():
        assert f["service_level"] == tiers[name]["service_level"]  # the tier's own target time
        assert f["asa_s"] == tiers[name]["asa_s"]
        assert f["abandon_rate"] == tiers[name]["abandon_rate"]
        assert f["calls_offered"] == tiers[name]["calls_offered"]


async def test_live_figures_equal_the_report_during_and_after_a_simulated_day(
        day: tuple[Any, list[Event], float]) -> None:
    cfg, evs, start = day
    live = LiveFigures(cfg)
    noon, last = start + 12 * 3600 + 600, start + 86400 - 0.001
    seen: list[Event] = []
    checked: list[float] = []
    for ev in evs:
        if not checked and ev.ts > noon:
            await check(cfg, seen, start, noon, live)  # mid-day: calls waiting, half hour under way
            figs = live.figures(noon)
            assert figs["halfhour"]["total"]["calls_offered"] > 0
            assert figs["waiting"] == figs["today"]["total"]["in_queue"]
            checked.append(noon)
        if len(checked) == 1 and ev.ts > last:
            await check(cfg, seen, start, last, live)  # the day's last moment
            assert live.figures(last)["today"]["total"]["calls_offered"] > 1000
            checked.append(last)
        live.add(ev)
        seen.append(ev)
    assert len(checked) == 2
    # After midnight the calls of the day before still finishing do not count on the new day's board.
    assert live.figures(evs[-1].ts)["today"]["total"]["calls_offered"] == 0
