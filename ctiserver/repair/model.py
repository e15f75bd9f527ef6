"""Crews (`config/crews.yaml`): teams, the areas each serves, their phone, members; the shift leader who
gets escalations; and each area's class (city, suburb, remote), which sets the arrival deadline."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

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


SAY_FIELDS = frozenset({"team", "order", "area", "area_class", "arrive_by"})


def _say(text: str) -> str:
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as exc:
        raise ValueError(f"bad template ({exc})") from None
    unknown = sorted(names - SAY_FIELDS)
    if unknown:
        raise ValueError(f"unknown placeholder(s) {unknown}; a crew call has {sorted(SAY_FIELDS)}")
    return text


SayText = Annotated[str, Field(min_length=1, max_length=300), AfterValidator(_say)]


class CrewSay(Strict):
    zh: SayText = "{team}，抢修工单{order}，{area}停电，请于{arrive_by}前到达。接单请按1。"
    en: SayText = "{team}, repair order {order}: outage in {area}, arrive by {arrive_by}. Press 1 to accept."


class CrewCallConfig(Strict):
    """The call that reads a new repair order to the crew's phone (press 1: accepted). Not answered, or no
    1 pressed: called again after `retry_s`, up to `max_attempts`, never past the acknowledge deadline
    (workorders.yaml `crews:`); the watch then escalates to the shift leader."""

    enabled: bool = True
    ring_s: Annotated[float, Field(gt=0, le=120)] = 30
    retry_s: Annotated[float, Field(gt=0, le=3600)] = 60
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    lang: Literal["zh", "en"] = "zh"
    say: CrewSay = Field(default_factory=CrewSay)


class CrewsConfig(Strict):
    calendar: Calendar = Field(default_factory=Calendar)
    crews: list[Crew] = Field(default_factory=list)
    shift_leader: ShiftLeader | None = None
    area_classes: dict[str, AreaClass] = Field(default_factory=dict)
    default_class: AreaClass = "city"
    poll_s: Annotated[float, Field(gt=0, le=300)] = 15.0  # the watch looks again at least this often
    # this server as the crews' phones reach it: the order's link in the SMS is <page_base>/crew/<token>
    page_base: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] = "http://127.0.0.1:8080"
    call: CrewCallConfig = Field(default_factory=CrewCallConfig)

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
