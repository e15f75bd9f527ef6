"""`ctiserver report` as the lead wires it: add_report_command on a subparser, run on a SQLite store."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from ctiserver.kpi.cli import add_report_command

from .conftest import load
from .test_kpi_golden import EXPECTED_TOTAL, golden_day

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"

    async def fill() -> None:
        engine = create_async_engine(url)
        await load(engine, golden_day())
        await engine.dispose()

    asyncio.run(fill())
    return url


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ctiserver")
    add_report_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_report_json_to_a_file(store: str, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code = run(["report", "--config", str(REPO_CONFIG), "--url", store, "--from", "2026-11-23",
                "--to", "2026-11-24", "--by", "tier", "--format", "json", "--output", str(out)])
    assert code == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["total"]["calls_offered"] == EXPECTED_TOTAL["calls_offered"]
    assert [r["key"]["tier"] for r in report["rows"]] == ["blacklist", "normal", "priority", "vip", None]


def test_report_table_and_csv_on_stdout(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["report", "--config", str(REPO_CONFIG), "--url", store, "--from", "2026-11-23",
                "--by", "band"]) == 0
    table = capsys.readouterr().out
    assert "KPI report 2026-11-23T00:00:00+08:00 .. 2026-11-24T00:00:00+08:00" in table
    assert "valley" in table and "TOTAL" in table
    assert run(["report", "--config", str(REPO_CONFIG), "--url", store, "--from", "2026-11-23",
                "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("13,")


def test_report_takes_the_database_from_ctiserver_yaml(store: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config"
    cfg.mkdir()
    shutil.copy(REPO_CONFIG / "kpi.yaml", cfg / "kpi.yaml")
    (cfg / "ctiserver.yaml").write_text(f"database:\n  url: {store}\n", encoding="utf-8")
    assert run(["report", "--config", str(cfg), "--from", "2026-11-23", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["answered"] == EXPECTED_TOTAL["answered"]


def test_bad_arguments_exit_2_with_a_reason(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["report", "--config", str(REPO_CONFIG), "--url", store, "--by", "colour"]) == 2
    assert "unknown grouping 'colour'" in capsys.readouterr().err
    assert run(["report", "--config", str(REPO_CONFIG), "--url", store, "--from", "2026-11-24",
                "--to", "2026-11-23"]) == 2
    assert "after its start" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_without_groupings_the_totals_row_is_printed_once(fmt: str, store: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["report", "--config", str(REPO_CONFIG), "--url", store, "--from", "2026-11-23",
                "--format", fmt]) == 0
    out = capsys.readouterr().out
    section = out.split("\n\n")[0]  # the headline grid (the table's other sections follow a blank line)
    offered = str(EXPECTED_TOTAL["calls_offered"])
    rows = [line for line in section.splitlines()[1:] if line.strip() and not set(line.strip()) <= set("-+ |")]
    data = [r for r in rows if (r.split(",")[0] if fmt == "csv" else r.split()[0]) == offered]
    assert len(data) == 1, section
    with_by = run(["report", "--config", str(REPO_CONFIG), "--url", store, "--from", "2026-11-23",
                   "--format", fmt, "--by", "band"])
    assert with_by == 0 and capsys.readouterr().out.count("TOTAL") == 1
