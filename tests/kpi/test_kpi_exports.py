"""Reports for spreadsheets: `ctiserver report --format csv|xlsx [--lang zh]` and the same downloads from
/api/reports; the workbook read back with openpyxl has the CSV's columns and numbers."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from openpyxl import load_workbook

from .test_kpi_cli import REPO_CONFIG, run, store  # noqa: F401  (the fixture)
from .test_kpi_golden import EXPECTED_TOTAL
from .test_kpi_http import client  # noqa: F401  (the fixture)

RANGE = ["--from", "2026-11-23", "--to", "2026-11-24", "--by", "tier"]


def test_xlsx_has_the_csv_columns_and_chinese_headers(store: str, tmp_path: Path) -> None:  # noqa: F811
    base = ["report", "--config", str(REPO_CONFIG), "--url", store, *RANGE]
    assert run([*base, "--format", "csv", "--output", str(tmp_path / "r.csv")]) == 0
    assert run([*base, "--format", "xlsx", "--lang", "zh", "--output", str(tmp_path / "r.xlsx")]) == 0
    rows = list(csv.reader(io.StringIO((tmp_path / "r.csv").read_text(encoding="utf-8"))))
    wb = load_workbook(tmp_path / "r.xlsx")
    sheet = [[("" if c is None else c) for c in r] for r in wb["report"].iter_rows(values_only=True)]
    assert sheet[0][:3] == ["客户等级", "呼入量", "IVR 呼入"]
    assert "服务水平" in sheet[0] and "回访率" in sheet[0]
    assert len(sheet[0]) == len(rows[0]) and len(sheet) == len(rows)
    assert sheet[-1][0] == "合计" and rows[-1][0] == "TOTAL"
    col = rows[0].index("calls_offered")
    assert sheet[-1][col] == EXPECTED_TOTAL["calls_offered"] == int(rows[-1][col])
    sl = rows[0].index("service_level")
    assert sheet[-1][sl] == pytest.approx(float(rows[-1][sl]))
    tiers = list(wb["tiers"].iter_rows(values_only=True))
    assert tiers[0][0] == "客户等级" and len(tiers) > 1


def test_csv_in_chinese(store: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert run(["report", "--config", str(REPO_CONFIG), "--url", store, *RANGE, "--format", "csv",
                "--lang", "zh"]) == 0
    head = capsys.readouterr().out.splitlines()[0].split(",")
    assert head[:2] == ["客户等级", "呼入量"]


def test_xlsx_needs_an_output_file(store: str, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert run(["report", "--config", str(REPO_CONFIG), "--url", store, "--format", "xlsx"]) == 2
    assert "needs --output" in capsys.readouterr().err


async def test_api_offers_the_workbook(client: TestClient) -> None:  # noqa: F811
    res = await client.get("/api/reports", params={"from": "2026-11-23", "to": "2026-11-24", "format": "xlsx",
                                                   "lang": "zh"})
    assert res.status == 200
    assert res.content_type == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert "kpi-report.xlsx" in res.headers["Content-Disposition"]
    wb = load_workbook(io.BytesIO(await res.read()))
    first = next(wb["report"].iter_rows(values_only=True))
    assert first[0] == "呼入量"
    res = await client.get("/api/reports", params={"from": "2026-11-23", "to": "2026-11-24", "format": "csv",
                                                   "lang": "zh"})
    assert (await res.text()).startswith("呼入量,")
