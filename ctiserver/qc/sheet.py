"""`config/qc.yaml`: the scoring sheet and the sampling plan, and scoring a call by it (pure).

A sheet has sections of items (each worth points; a reviewer awards 0..points), deductions (a fixed
number of points off per occurrence, within its section: a section never goes below 0) and fatal
errors (any one zeroes the call). The items of a section add up to its points and the sections to
the sheet's total: `ctiserver check` says where they do not."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from ..configfile import Strict, load_model
from ..names import DisplayName

FILE = "qc.yaml"
_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
Points = Annotated[float, Field(gt=0, le=100)]


def _ids(values: list[str], what: str) -> None:
    seen = set()
    for v in values:
        if not _ID.match(v):
            raise ValueError(f"{what} id {v!r}: lower-case letters, digits and _")
        if v in seen:
            raise ValueError(f"{what} id {v!r} appears twice")
        seen.add(v)


class Item(Strict):
    id: str
    name: DisplayName
    points: Points


class Deduction(Strict):
    id: str
    name: DisplayName
    points: Points  # off per occurrence
    examples: list[str] = Field(default_factory=list)  # e.g. forbidden phrases


class Section(Strict):
    id: str
    name: DisplayName
    points: Points
    items: list[Item] = Field(min_length=1)
    deductions: list[Deduction] = Field(default_factory=list)

    @model_validator(mode="after")
    def _sum(self) -> Section:
        _ids([i.id for i in self.items] + [d.id for d in self.deductions], "item")
        total = sum(i.points for i in self.items)
        if abs(total - self.points) > 1e-9:
            raise ValueError(f"section {self.id}: its items add up to {total:g}, not its {self.points:g} points")
        return self


class Fatal(Strict):
    id: str
    name: DisplayName


class Sampling(Strict):
    per_agent: Annotated[int, Field(ge=0, le=100)] = 5  # random calls per agent per month
    complaints: bool = True  # every call with a complaint disposition
    complaint_categories: list[str] = Field(default_factory=lambda: ["complaint"])
    low_rating_max: Annotated[int, Field(ge=0, le=5)] = 2  # every call rated this or lower (0: none)
    long_call_s: Annotated[float, Field(ge=0, le=86400)] = 900.0  # every call longer (0: none)
    transferred: bool = True  # every transferred call


class QcSheet(Strict):
    name: DisplayName
    total: Points = 100
    pass_score: Annotated[float, Field(ge=0, le=100)] = 80
    sections: list[Section] = Field(min_length=1)
    fatal: list[Fatal] = Field(default_factory=list)
    sampling: Sampling = Field(default_factory=Sampling)
    appeal_days: Annotated[int, Field(ge=0, le=60)] = 7  # after scoring, an agent may appeal (once)

    @field_validator("sections")
    @classmethod
    def _section_ids(cls, v: list[Section]) -> list[Section]:
        _ids([s.id for s in v], "section")
        return v

    @model_validator(mode="after")
    def _total(self) -> QcSheet:
        _ids([f.id for f in self.fatal], "fatal error")
        total = sum(s.points for s in self.sections)
        if abs(total - self.total) > 1e-9:
            raise ValueError(f"the sections add up to {total:g} points, not the sheet's total {self.total:g}")
        if self.pass_score > self.total:
            raise ValueError("pass_score is above the total")
        return self

    def public(self) -> dict[str, object]:
        return self.model_dump(mode="json")


class ScoreError(ValueError):
    """Marks that do not fit the sheet (an unknown item, points out of range)."""


@dataclass(frozen=True)
class Score:
    total: float
    passed: bool
    fatal: bool
    sections: dict[str, float]


def score(sheet: QcSheet, marks: Mapping[str, float], deductions: Mapping[str, int] | None = None,
          fatal: list[str] | None = None) -> Score:
    """The call's score: per section the items awarded minus its deductions (not below 0); 0 with a fatal
    error. Every item must be marked (an unmarked item is a reviewer's slip, not a zero)."""
    deductions, fatal = dict(deductions or {}), list(fatal or [])
    known_fatal = {f.id for f in sheet.fatal}
    for f in fatal:
        if f not in known_fatal:
            raise ScoreError(f"unknown fatal error {f!r}")
    items = {i.id: (s, i) for s in sheet.sections for i in s.items}
    deds = {d.id: (s, d) for s in sheet.sections for d in s.deductions}
    for key, value in marks.items():
        if key not in items:
            raise ScoreError(f"unknown item {key!r}")
        if not 0 <= value <= items[key][1].points:
            raise ScoreError(f"item {key}: {value:g} is outside 0..{items[key][1].points:g}")
    missing = [k for k in items if k not in marks]
    if missing:
        raise ScoreError(f"not marked: {', '.join(missing)}")
    for key, n in deductions.items():
        if key not in deds:
            raise ScoreError(f"unknown deduction {key!r}")
        if not 0 <= n <= 100:
            raise ScoreError(f"deduction {key}: {n} times?")
    per = {}
    for s in sheet.sections:
        got = sum(marks[i.id] for i in s.items) - sum(d.points * deductions.get(d.id, 0) for d in s.deductions)
        per[s.id] = max(0.0, round(got, 2))
    total = 0.0 if fatal else round(sum(per.values()), 2)
    return Score(total, bool(not fatal and total >= sheet.pass_score), bool(fatal), per)


def load_qc_sheet(config_dir: Path) -> QcSheet:
    return load_model(Path(config_dir) / FILE, QcSheet)
