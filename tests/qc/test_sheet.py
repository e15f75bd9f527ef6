"""The QC sheet as shipped, its checks, and scoring by it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctiserver.configfile import ConfigError
from ctiserver.qc.sheet import ScoreError, load_qc_sheet, score

REPO = Path(__file__).resolve().parents[2]


def full_marks(sheet: object) -> dict[str, float]:
    return {i.id: i.points for s in sheet.sections for i in s.items}  # type: ignore[attr-defined]


def test_the_shipped_sheet_is_the_100_point_standard() -> None:
    sheet = load_qc_sheet(REPO / "config")
    assert sheet.total == 100
    acc = next(s for s in sheet.sections if s.id == "accuracy")
    assert acc.points == 20 and [i.points for i in acc.items] == [8, 5, 4, 3]
    lang = next(s for s in sheet.sections if s.id == "language")
    assert lang.deductions[0].points == 2 and "喂" in lang.deductions[0].examples
    assert {s.id: s.points for s in sheet.sections}["attitude"] == 23


def test_scores_deductions_and_fatal_errors() -> None:
    sheet = load_qc_sheet(REPO / "config")
    marks = full_marks(sheet)
    assert score(sheet, marks).total == 100
    two_forbidden = score(sheet, marks, {"forbidden_phrase": 2})
    assert two_forbidden.total == 96 and two_forbidden.sections["language"] == 6 and two_forbidden.passed
    # a section never goes below 0
    assert score(sheet, marks, {"forbidden_phrase": 9}).sections["language"] == 0
    assert score(sheet, {**marks, "accurate": 0, "solution": 0, "patience": 0}).passed is False  # 76 < 80
    fatal = score(sheet, marks, fatal=["abuse"])
    assert fatal.total == 0 and fatal.fatal and not fatal.passed
    with pytest.raises(ScoreError, match="not marked: accurate"):
        score(sheet, {k: v for k, v in marks.items() if k != "accurate"})
    with pytest.raises(ScoreError, match="outside"):
        score(sheet, {**marks, "accurate": 9})


def test_a_sheet_that_does_not_add_up_is_refused_with_its_line(tmp_path: Path) -> None:
    text = (REPO / "config" / "qc.yaml").read_text(encoding="utf-8")
    line = "{id: accurate, name: {zh: 答复准确, en: Accurate answer}, points: "
    (tmp_path / "qc.yaml").write_text(text.replace(line + "8}", line + "9}"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"qc.yaml:\d+: .*items add up to 21, not its 20 points"):
        load_qc_sheet(tmp_path)
