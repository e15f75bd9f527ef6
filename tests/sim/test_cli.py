"""`ctiserver simulate` from the command line: JSON report, reproducible, arrivals from an event store."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from ctiserver.sim.cli import add_sim_commands
from ctiserver.store.engine import make_engine, migrate
from ctiserver.store.schema import events

ROOT = Path(__file__).resolve().parents[2]


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_sim_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def scenario(tmp: Path, **over: Any) -> Path:
    spec: dict[str, Any] = {
        "name": "small", "start": "2026-11-23T09:00", "hours": 1.0, "seed": 4,
        "acd_file": str(ROOT / "config/scenarios/erlang-acd.yaml"), "calls_per_half_hour": 60,
        "skills": {"single": 1}, "handle_time": {"dist": "exponential", "mean_s": 60},
        "patience": {"dist": "exponential", "mean_s": 60}, "config_agents": False,
        "agents": [{"prefix": "a", "count": 2, "skills": {"single": 5}}], **over}
    path = tmp / "small.yaml"
    path.write_text(json.dumps(spec), encoding="utf-8")  # JSON is YAML
    return path


def run_json(tmp: Path, path: Path, *extra: str) -> dict[str, Any]:
    out = tmp / "report.json"
    assert cli("simulate", "--config", str(ROOT / "config"), "--scenario", str(path), "--format", "json",
               "--output", str(out), *extra) == 0
    return dict(json.loads(out.read_text(encoding="utf-8")))


def test_simulate_prints_the_kpi_report_and_repeats_itself(tmp_path: Path) -> None:
    path = scenario(tmp_path)
    first = run_json(tmp_path, path, "--by", "halfhour")
    assert first["schema"] == "ctiserver.kpi.report/1"
    assert [r["key"]["halfhour"] for r in first["rows"]] == ["2026-11-23T09:00", "2026-11-23T09:30"]
    total = first["total"]
    assert 80 <= total["calls_offered"] <= 160
    assert total["answered"] + total["abandoned"] == total["calls_offered"]
    assert run_json(tmp_path, path, "--by", "halfhour") == first
    other = run_json(tmp_path, path, "--by", "halfhour", "--seed", "5")
    assert other["total"] != total


def test_simulate_reports_scenario_mistakes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = scenario(tmp_path, skills={"gas": 1})
    assert cli("simulate", "--config", str(ROOT / "config"), "--scenario", str(path)) == 1
    assert "unknown skill 'gas'" in capsys.readouterr().err


def test_simulate_takes_arrivals_from_the_event_store(tmp_path: Path) -> None:
    """30 queue entries at 10:00-10:30 over history: the simulated day has about 30 calls, then."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    day0 = 1795399200.0  # 2026-11-23T10:00+08:00

    async def fill() -> None:
        await migrate(url)
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(events.insert(), [
                    {"kind": "acd.enqueue", "ts": day0 + 60.0 * i, "call_id": f"h{i}", "queue": "single",
                     "tier": "normal", "data": {"caller": f"1390000{i:04d}"}} for i in range(30)])
        finally:
            await engine.dispose()

    asyncio.run(fill())
    path = scenario(tmp_path, hours=24.0, start="2026-11-24T00:00", calls_per_half_hour=0.0,
                    arrivals={"03:00": 500})  # replaced by the history
    report = run_json(tmp_path, path, "--from-db", url, "--by", "hour")
    hours = {r["key"]["hour"]: r["metrics"]["calls_offered"] for r in report["rows"]
             if r["metrics"]["calls_offered"]}
    assert set(hours) == {"2026-11-24T10:00"}
    assert 15 <= hours["2026-11-24T10:00"] <= 50
