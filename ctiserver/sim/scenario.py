"""Simulation scenarios (`config/scenarios/*.yaml`): the traffic and staffing a manager wants to try.

A scenario says what the callers do (arrivals per half hour, which queue and tier,
how long they talk, how long they are willing to wait) and who answers (agents
with skills and shifts, how often they miss a ring). The routing rules are NOT
here: they come from the very `acd.yaml` the live server uses (or one the
scenario names), so a what-if on the rules is a copy of that file.
"""

from __future__ import annotations

import math
import random
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from ..acd.config import AcdConfig, load_acd_config, parse_acd_config
from ..calendar import load_calendar
from ..configfile import ConfigError, ConfigProblem, Strict, load_model

Positive = Annotated[float, Field(gt=0)]
Share = Annotated[float, Field(ge=0)]


class Dist(Strict):
    """A duration distribution: exponential(mean), lognormal(mean, sd) or fixed(mean)."""

    dist: Literal["exponential", "lognormal", "fixed"] = "exponential"
    mean_s: Positive
    sd_s: Positive | None = None  # lognormal only

    @model_validator(mode="after")
    def _sd(self) -> Dist:
        if self.dist == "lognormal" and self.sd_s is None:
            raise ValueError("a lognormal distribution needs sd_s")
        return self

    def sampler(self, rng: random.Random) -> Sampler:
        return Sampler(self, rng)


class Sampler:
    """Draws from a `Dist` with one seeded generator (precomputes the lognormal's mu/sigma)."""

    __slots__ = ("_draw",)

    def __init__(self, d: Dist, rng: random.Random) -> None:
        mean = d.mean_s
        if d.dist == "fixed":
            self._draw = lambda: mean
        elif d.dist == "exponential":
            rate = 1.0 / mean
            expo = rng.expovariate
            self._draw = lambda: expo(rate)
        else:
            assert d.sd_s is not None
            sigma2 = math.log(1.0 + (d.sd_s / mean) ** 2)
            mu, sigma = math.log(mean) - sigma2 / 2.0, math.sqrt(sigma2)
            logn = rng.lognormvariate
            self._draw = lambda: logn(mu, sigma)

    def __call__(self) -> float:
        return self._draw()


class IvrModel(Strict):
    """Time spent in the IVR before asking for an agent, and the share served by the IVR alone."""

    time: Dist = Field(default_factory=lambda: Dist(dist="fixed", mean_s=30.0))
    self_service: Annotated[float, Field(ge=0, le=1)] = 0.0


class AgentGroup(Strict):
    """`count` agents with ids `<prefix><n>` sharing skills and shifts (local "HH:MM-HH:MM")."""

    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,20}$")]
    count: Annotated[int, Field(ge=1, le=100_000)]
    skills: dict[str, Annotated[int, Field(ge=1, le=10)]]
    shifts: list[str] = Field(default_factory=list)  # empty: on duty for the whole run

    @field_validator("shifts")
    @classmethod
    def _spans(cls, v: list[str]) -> list[str]:
        for s in v:
            shift_minutes(s)
        return v


def shift_minutes(span: str) -> tuple[int, int]:
    """'08:00-17:30' -> (480, 1050); an end before the start runs past midnight."""
    try:
        a, b = span.split("-")
        start = _hhmm(a)
        end = _hhmm(b)
    except ValueError:
        raise ValueError(f"'{span}' is not a shift like 08:00-17:00") from None
    if end <= start:
        end += 24 * 60
    return start, end


def _hhmm(text: str) -> int:
    h, m = text.strip().split(":")
    hh, mm = int(h), int(m)
    if not (0 <= hh <= 24 and 0 <= mm < 60):
        raise ValueError(text)
    return hh * 60 + mm


class ScenarioFile(Strict):
    """The YAML file as written (see config/scenarios/weekday.yaml for a commented example)."""

    name: str = "scenario"
    start: datetime  # local time in the KPI timezone unless it carries an offset
    hours: Annotated[float, Field(gt=0, le=24 * 31)] = 24.0  # callers arrive during this many hours
    acd_file: str | None = None  # another acd.yaml (relative to the scenario); default: the config folder's
    seed: int = 1
    # Expected calls per local half hour ("HH:MM" -> calls), repeated every day of the run;
    # half hours not listed get `calls_per_half_hour`.
    arrivals: dict[str, Share] = Field(default_factory=dict)
    calls_per_half_hour: Share = 0.0
    arrival_scale: Positive = 1.0  # "what if 20% more calls": 1.2
    skills: dict[str, Share]  # which queue callers ask for (weights)
    tiers: dict[str, Share] = Field(default_factory=lambda: {"normal": 1.0})
    handle_time: Dist = Field(default_factory=lambda: Dist(dist="exponential", mean_s=180.0))
    handle_time_by_skill: dict[str, Dist] = Field(default_factory=dict)
    patience: Dist | None = None  # None: callers wait for ever
    ring_time: Dist = Field(default_factory=lambda: Dist(dist="fixed", mean_s=3.0))
    rona_probability: Annotated[float, Field(ge=0, lt=1)] = 0.0
    # A missed ring puts the agent on not-ready (the engine's rule); they click ready again after this.
    rona_recovery: Dist = Field(default_factory=lambda: Dist(dist="fixed", mean_s=30.0))
    ivr: IvrModel | None = None
    agents: list[AgentGroup] = Field(default_factory=list)
    config_agents: bool = True  # also staff the acd.yaml agents (on duty the whole run)

    @field_validator("arrivals")
    @classmethod
    def _slots(cls, v: dict[str, float]) -> dict[str, float]:
        for k in v:
            m = _hhmm(k) if ":" in k else -1
            if m < 0 or m % 30 or m >= 24 * 60:
                raise ValueError(f"arrival slot '{k}' must be a half hour like 08:00 or 08:30")
        return v

    @field_validator("skills", "tiers")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        if not v or sum(v.values()) <= 0:
            raise ValueError("needs at least one positive weight")
        return v


class Scenario:
    """A checked scenario bound to its routing config and time zone (what `simulate` runs)."""

    def __init__(self, spec: ScenarioFile, acd: AcdConfig, zone: ZoneInfo) -> None:
        self.spec = spec
        self.acd = acd
        self.zone = zone
        start = spec.start if spec.start.tzinfo else spec.start.replace(tzinfo=zone)
        self.start_ts = start.timestamp()
        self.end_ts = self.start_ts + spec.hours * 3600.0
        problems = self.problems()
        if problems:
            raise ConfigError([ConfigProblem(spec.name, 0, p) for p in problems])

    def problems(self) -> list[str]:
        out: list[str] = []
        skills = set(self.acd.skills)
        tiers = set(self.acd.tier_rank)
        out += [f"skills: unknown skill '{s}'" for s in self.spec.skills if s not in skills]
        out += [f"handle_time_by_skill: unknown skill '{s}'" for s in self.spec.handle_time_by_skill
                if s not in skills]
        out += [f"tiers: unknown tier '{t}'" for t in self.spec.tiers if t not in tiers]
        for g in self.spec.agents:
            out += [f"agents {g.prefix}: unknown skill '{s}'" for s in g.skills if s not in skills]
        if not self.spec.arrivals and self.spec.calls_per_half_hour <= 0:
            out.append("no callers: give arrivals or calls_per_half_hour")
        return out

    def rate_at(self, ts: float) -> tuple[float, float]:
        """(arrivals per second, end of the half hour that holds `ts`), in local time."""
        local = datetime.fromtimestamp(ts, self.zone)
        minute = local.hour * 60 + local.minute
        slot = minute - minute % 30
        key = f"{slot // 60:02d}:{slot % 60:02d}"
        calls = self.spec.arrivals.get(key, self.spec.calls_per_half_hour) * self.spec.arrival_scale
        into = (minute - slot) * 60 + local.second + local.microsecond / 1e6
        return calls / 1800.0, ts - into + 1800.0

    def shift_windows(self, shifts: list[str]) -> list[tuple[float, float]]:
        """Epoch (login, logout) pairs of daily shifts that overlap the run."""
        if not shifts:
            return [(self.start_ts, math.inf)]
        out: list[tuple[float, float]] = []
        day0 = datetime.fromtimestamp(self.start_ts, self.zone).replace(hour=0, minute=0, second=0,
                                                                        microsecond=0)
        days = int(self.spec.hours // 24) + 2
        for d in range(-1, days):
            for span in shifts:
                a, b = shift_minutes(span)
                base = day0.timestamp() + d * 86400.0  # local midnight (DST-free zones; drift is minutes)
                lo, hi = base + a * 60.0, base + b * 60.0
                if hi > self.start_ts and lo < self.end_ts:
                    out.append((max(lo, self.start_ts), hi))
        return sorted(out)


def load_scenario(path: Path, config_dir: Path, zone: ZoneInfo) -> Scenario:
    """Read a scenario file and the acd.yaml it runs against (its own `acd_file`, else config_dir's)."""
    path = Path(path)
    spec = load_model(path, ScenarioFile)
    acd = (parse_acd_config(path.parent / spec.acd_file, calendar=load_calendar(config_dir)) if spec.acd_file
           else load_acd_config(config_dir))
    try:
        return Scenario(spec, acd, zone)
    except ConfigError as exc:
        raise ConfigError([ConfigProblem(str(path), 0, p.message) for p in exc.problems]) from None
