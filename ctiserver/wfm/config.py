"""`config/wfm.yaml`: what workforce management needs beyond the calendar and the KPI targets.

The days (holidays, make-up workdays, time zone) are calendar.yaml's and the service-level targets
per tier are kpi.yaml's `tier_targets` (VIP 90/20, others 85/20): neither is repeated here. This
file holds the forecast's options and marked outage days, shrinkage, and (see roster.py) shift
patterns and agents.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from ..calendar import Calendar, load_calendar, load_site_model
from ..configfile import ConfigError, ConfigProblem, Strict, compose, node_line
from .outage_days import MajorOutageRule
from .shifts import RosterConfig

WFM_FILE = "wfm.yaml"
Ratio = Annotated[float, Field(ge=0.0, lt=1.0)]


class ForecastOptions(Strict):
    history_weeks: Annotated[int, Field(ge=2, le=104)] = 13  # weeks of the event store to learn from
    # Days of major outages come from the outage records (outage_days.py: which count as major); days
    # before those records were kept, or not normal for another reason, are listed here: date -> why.
    outage_days: dict[dt.date, str] = Field(default_factory=dict)
    major_outage: MajorOutageRule = Field(default_factory=MajorOutageRule)


class Shrinkage(Strict):
    """Share of paid time agents are not available for calls. Breaks and meals are placed by the roster
    itself (shift patterns), so the roster uses only the rest; `staffing` without a roster uses all."""

    breaks: Ratio = 0.08
    meetings: Ratio = 0.03
    training: Ratio = 0.02
    absence: Ratio = 0.05

    @model_validator(mode="after")
    def _below_one(self) -> Shrinkage:
        if self.total() >= 0.9:
            raise ValueError(f"shrinkage adds up to {self.total():.0%}: at most 90% of paid time can be lost")
        return self

    def total(self) -> float:
        return self.breaks + self.meetings + self.training + self.absence

    def besides_breaks(self) -> float:
        return self.meetings + self.training + self.absence


class StaffingOptions(Strict):
    model: Literal["erlang_a", "erlang_c"] = "erlang_a"  # erlang_a: callers who give up leave the queue
    patience_s: Annotated[float, Field(gt=0)] = 120.0  # when history has no abandons to estimate it from
    shrinkage: Shrinkage = Field(default_factory=Shrinkage)


class WfmConfig(Strict):
    calendar: Calendar = Field(default_factory=Calendar)  # put in by the loader (calendar.yaml)
    forecast: ForecastOptions = Field(default_factory=ForecastOptions)
    staffing: StaffingOptions = Field(default_factory=StaffingOptions)
    roster: RosterConfig = Field(default_factory=RosterConfig)


def load_wfm_config(config_dir: str | Path, calendar: Calendar | None = None) -> WfmConfig:
    """Read `wfm.yaml` (defaults when absent) with the site calendar put in."""
    config_dir = Path(config_dir)
    site = calendar if calendar is not None else load_calendar(config_dir)
    return load_site_model(config_dir / WFM_FILE, WfmConfig, site)


def roster_folder(config_dir: str | Path) -> Path:
    """Where rosters are kept: <the config folder's parent>/var/wfm (`roster build` writes, the server reads)."""
    return Path(config_dir).resolve().parent / "var" / "wfm"


def check_wfm(config_dir: str | Path) -> list[ConfigProblem]:
    """`ctiserver check`: wfm.yaml alone (raises ConfigError), then its agents against acd.yaml's."""
    from ..acd.config import load_acd_config

    config_dir = Path(config_dir)
    cfg = load_wfm_config(config_dir)
    try:
        acd = load_acd_config(config_dir, cfg.calendar)
    except ConfigError:
        return []  # reported by acd.yaml's own check
    path = config_dir / WFM_FILE
    root = compose(path) if path.exists() else None
    known = {a.id for a in acd.agents}
    return [ConfigProblem(str(path), node_line(root, ("roster", "agents", aid)),
                          f"roster.agents: '{aid}' is not an agent of acd.yaml")
            for aid in cfg.roster.agents if aid not in known]
