"""`config/kpi.yaml`: service-level rules, time bands, per-tier and rulebook targets.

Everything a manager may argue about (the 20 s threshold, whether a 20 s abandon
counts, the FCR window, which outbound outcomes mean "reached") is config, so
the definitions in docs/kpis.md stay true when the numbers change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from ..calendar import Calendar, load_calendar, load_site_model
from ..configfile import Strict
from ..names import DisplayName
from ..workorders.deadlines import WorkorderTable, load_workorder_table
from .bands import BandSpan, parse_hhmm, slot_table

Ratio = Annotated[float, Field(ge=0.0, le=1.0)]
Seconds = Annotated[float, Field(ge=0.0, le=86400.0)]


class ServiceLevelRule(Strict):
    threshold_s: Seconds = 20.0  # answered within this many seconds of entering the queue
    target: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.80
    short_abandon_s: Seconds = 20.0  # an abandon in less than this is a "short abandon" (the seeds' 20 s)
    exclude_short_abandons: bool = True  # drop short abandons from SL and abandon-rate denominators


class TierTarget(Strict):
    threshold_s: Seconds = 20.0
    target: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.85


class TierTargets(Strict):
    default: TierTarget = Field(default_factory=TierTarget)
    tiers: dict[str, TierTarget] = Field(
        default_factory=lambda: {"vip": TierTarget(threshold_s=20.0, target=0.90)})

    def for_tier(self, tier: str | None) -> TierTarget:
        return self.tiers.get(tier or "", self.default)


class Band(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,20}$")]
    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        parse_hhmm(v)
        return v

    def span(self) -> BandSpan:
        return BandSpan(self.name, parse_hhmm(self.start), parse_hhmm(self.end))


def _default_bands() -> list[Band]:
    return [
        Band(name="flat", start="08:00", end="09:00"),
        Band(name="peak", start="09:00", end="12:00"),
        Band(name="flat", start="12:00", end="15:00"),
        Band(name="peak", start="15:00", end="19:00"),
        Band(name="flat", start="19:00", end="22:00"),
        Band(name="valley", start="22:00", end="08:00"),  # crosses midnight
    ]


class Fcr(Strict):
    window_h: Annotated[float, Field(gt=0.0, le=24.0 * 31)] = 24.0
    # repeat: no call from the same number within the window; disposition: the agent marked it
    # resolved; both: both must hold.
    method: Literal["repeat", "disposition", "both"] = "repeat"


class Targets(Strict):
    """Rulebook and industry targets shown against actuals (provincial 95598 rulebook, Jon Anton)."""

    acw_s_max: float = 60.0
    ring_s_max: float = 12.0
    talk_s_max: float = 150.0
    transfer_rate_max: Ratio = 0.03
    asa_s_max: float = 20.0
    abandon_rate_max: Ratio = 0.05
    occupancy_min: Ratio = 0.90
    fcr_min: Ratio = 0.85
    workorder_on_time_min: Ratio = 0.99


class Outbound(Strict):
    reached_outcomes: list[str] = Field(
        default_factory=lambda: ["answered", "confirmed", "agent", "rated"])
    confirmed_outcomes: list[str] = Field(default_factory=lambda: ["confirmed"])
    machine_outcomes: list[str] = Field(default_factory=lambda: ["machine"])


class Workorders(Strict):
    """Which work-order actions open, close and reopen an order. Their deadlines are workorders.yaml's:
    on time = closed by the reply deadline the order got when it was opened (the open event's due_ts)."""

    open_actions: list[str] = Field(default_factory=lambda: ["open"])
    closed_actions: list[str] = Field(default_factory=lambda: ["closed"])
    reopened_actions: list[str] = Field(default_factory=lambda: ["reopened"])
    due_h: object = None  # the old per-category deadlines: now an error pointing to workorders.yaml

    @field_validator("due_h")
    @classmethod
    def _moved(cls, v: object) -> object:
        if v is not None:
            raise ValueError("work-order deadlines are defined once, in workorders.yaml")
        return v


class DataWindow(Strict):
    """How far outside the report range to read events that belong to calls inside it."""

    max_call_s: Annotated[float, Field(gt=0.0, le=7 * 86400.0)] = 14400.0
    agent_lookback_s: Annotated[float, Field(gt=0.0, le=31 * 86400.0)] = 86400.0


class Rollups(Strict):
    """The leader's background builder of half-hour rollups (kpi/rollup_job.py)."""

    # the last this many days are kept rolled up as each half hour settles; 0: only reports build them
    build_days: Annotated[int, Field(ge=0, le=400)] = 35


# The metrics the /reports page shows by name (totals and targets), with their built-in names.
METRIC_NAMES: dict[str, tuple[str, str]] = {
    "calls_offered": ("呼入量", "Calls offered"),
    "ivr_contained": ("自助服务完成", "Resolved in the IVR"),
    "agent_requests": ("转人工请求", "Asked for an agent"),
    "answered": ("人工接通", "Answered by an agent"),
    "abandoned": ("放弃", "Abandoned"),
    "call_loss": ("呼损量", "Calls lost"),
    "call_loss_rate": ("呼损率", "Call loss rate"),
    "agent_connection_rate": ("人工接通率", "Agent connection rate"),
    "ivr_connection_rate": ("IVR 接通率", "IVR connection rate"),
    "aht_s": ("平均处理时长（秒）", "Average handle time (s)"),
    "occupancy": ("坐席利用率", "Occupancy"),
    "fcr_rate": ("一次解决率", "First-contact resolution"),
    "service_level": ("服务水平", "Service level"),
    "asa_s": ("平均应答速度（秒）", "Average speed of answer (s)"),
    "abandon_rate": ("放弃率", "Abandon rate"),
    "avg_acw_s": ("平均话后处理（秒）", "Average after-call work (s)"),
    "avg_ring_s": ("平均振铃（秒）", "Average ring time (s)"),
    "avg_talk_s": ("平均通话（秒）", "Average talk time (s)"),
    "transfer_rate": ("转接率", "Transfer rate"),
    "workorder_on_time_rate": ("工单按时办结率", "Work orders closed on time"),
}


class KpiConfig(Strict):
    calendar: Calendar = Field(default_factory=Calendar)  # the site calendar (calendar.yaml), put in by the loader
    # the work-order deadlines (workorders.yaml), put in by the loader: how far past a range closures are read
    deadlines: WorkorderTable = Field(default_factory=WorkorderTable)
    service_level: ServiceLevelRule = Field(default_factory=ServiceLevelRule)
    tier_targets: TierTargets = Field(default_factory=TierTargets)
    bands: list[Band] = Field(default_factory=_default_bands)
    fcr: Fcr = Field(default_factory=Fcr)
    targets: Targets = Field(default_factory=Targets)
    outbound: Outbound = Field(default_factory=Outbound)
    workorders: Workorders = Field(default_factory=Workorders)
    window: DataWindow = Field(default_factory=DataWindow)
    rollups: Rollups = Field(default_factory=Rollups)
    # what an agent hour costs (wages and seat), for cost_per_call; absent: no cost figure
    cost_per_agent_hour: Annotated[float, Field(ge=0.0)] | None = None
    # what people see for each metric on /reports, in each UI language (the CSV keeps the keys)
    metric_names: dict[str, DisplayName] = Field(default_factory=lambda: {
        k: DisplayName(zh=zh, en=en) for k, (zh, en) in METRIC_NAMES.items()})

    @field_validator("metric_names")
    @classmethod
    def _every_metric_named(cls, value: dict[str, DisplayName]) -> dict[str, DisplayName]:
        missing = [k for k in METRIC_NAMES if k not in value]
        unknown = sorted(set(value) - set(METRIC_NAMES))
        if missing or unknown:
            raise ValueError((f"no name for {', '.join(missing)}" if missing else "")
                             + ("; " if missing and unknown else "")
                             + (f"not metrics of the report: {', '.join(unknown)}" if unknown else ""))
        return value

    @model_validator(mode="after")
    def _bands(self) -> KpiConfig:
        slot_table([b.span() for b in self.bands])
        return self

    @property
    def timezone(self) -> str:
        return self.calendar.timezone

    def zone(self) -> ZoneInfo:
        return self.calendar.zone

    def band_table(self) -> list[str]:
        return slot_table([b.span() for b in self.bands])


def load_kpi_config(config_dir: str | Path, calendar: Calendar | None = None) -> KpiConfig:
    """Read `kpi.yaml` from `config_dir` (defaults when absent); days and the time zone are calendar.yaml's."""
    config_dir = Path(config_dir)
    site = calendar if calendar is not None else load_calendar(config_dir)
    return load_site_model(config_dir / "kpi.yaml", KpiConfig, site,
                           inject={"deadlines": load_workorder_table(config_dir, site)})
