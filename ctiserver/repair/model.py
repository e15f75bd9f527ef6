"""Crews (`config/crews.yaml`): teams, the areas each serves, their phone, members; the shift leader who
gets escalations; and each area's class (city, suburb, remote), which sets the arrival deadline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from ..calendar import Calendar, load_calendar, load_site_model
from ..configfile import ConfigError, ConfigProblem, Strict

AreaClass = Literal["city", "suburb", "remote"]
CREWS_FILE = "crews.yaml"
Phone = Annotated[str, Field(pattern=r"^[0-9]{5,20}$")]


class Crew(Strict):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,20}$")]
    team: Annotated[str, Field(min_length=1, max_length=60)]
    areas: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    phone: Phone
    members: list[str] = Field(default_factory=list)


class ShiftLeader(Strict):
    name: str
    phone: Phone


class CrewsConfig(Strict):
    calendar: Calendar = Field(default_factory=Calendar)
    crews: list[Crew] = Field(default_factory=list)
    shift_leader: ShiftLeader | None = None
    area_classes: dict[str, AreaClass] = Field(default_factory=dict)
    default_class: AreaClass = "city"
    poll_s: Annotated[float, Field(gt=0, le=300)] = 15.0  # the watch looks again at least this often

    @model_validator(mode="after")
    def _unique(self) -> CrewsConfig:
        ids = [c.id for c in self.crews]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"crews: id(s) {dup} used twice")
        return self

    def crew_for(self, area: str) -> Crew | None:
        """The first crew serving `area` (config order is the dispatch preference)."""
        return next((c for c in self.crews if area in c.areas), None)

    def crew(self, crew_id: str) -> Crew | None:
        return next((c for c in self.crews if c.id == crew_id), None)

    def area_class(self, area: str) -> str:
        return self.area_classes.get(area, self.default_class)


def load_crews_config(config_dir: str | Path, calendar: Calendar | None = None) -> CrewsConfig:
    site = calendar if calendar is not None else load_calendar(config_dir)
    return load_site_model(Path(config_dir) / CREWS_FILE, CrewsConfig, site)


def check_crews(config_dir: Path) -> list[ConfigProblem]:
    try:
        load_crews_config(config_dir)
    except ConfigError as exc:
        return exc.problems
    return []
