"""Desktop configuration (config/desktop.yaml): sessions, rate limits, reason codes, dispatch units.

Work-order deadlines are workorders.yaml's (ctiserver/workorders/deadlines.py), days and hours calendar.yaml's.

Every number an operations rulebook might change lives here, validated strictly so a
typo is a `file:line` error at start-up rather than a surprise on the floor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ..acd.model import SYSTEM_REASONS
from ..calendar import Calendar, load_calendar, load_site_model
from ..configfile import Strict
from ..names import DisplayName
from ..workorders.deadlines import WorkorderTable, load_workorder_table

ROLES = ("agent", "supervisor", "admin", "dispatcher", "qc")
Role = Literal["agent", "supervisor", "admin", "dispatcher", "qc"]


class RateLimit(Strict):
    """Failed logins allowed per window before further attempts are refused."""

    max_failures: int = Field(gt=0)
    window_s: float = Field(gt=0)


Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


def _names(pairs: dict[str, tuple[str, str]]) -> dict[str, DisplayName]:
    return {code: DisplayName(zh=zh, en=en) for code, (zh, en) in pairs.items()}


class DesktopConfig(Strict):
    session_ttl_s: float = Field(default=12 * 3600, gt=0)
    cookie_secure: bool = False  # set true behind HTTPS
    max_body_bytes: int = Field(default=64 * 1024, gt=256, le=10 * 1024 * 1024)
    # failed logins: per agent number from one address, per address, per agent number from anywhere
    # (addresses the agent logged in from before are exempt from the last); see auth.LoginThrottle
    login_per_user: RateLimit = RateLimit(max_failures=5, window_s=300)
    login_per_ip: RateLimit = RateLimit(max_failures=20, window_s=300)
    login_per_user_all_addresses: RateLimit = RateLimit(max_failures=100, window_s=3600)
    # code -> its name in each UI language ({zh: 休息, en: Break}); people see the name, the log keeps the code
    not_ready_reasons: dict[Code, DisplayName] = Field(default_factory=lambda: _names({
        "break": ("休息", "Break"), "lunch": ("用餐", "Lunch"), "training": ("培训", "Training"),
        "meeting": ("会议", "Meeting"), "after_call": ("话后处理", "After-call work")}))
    # the reasons the ACD sets itself (acd/model.py SYSTEM_REASONS): each needs a name too
    system_reasons: dict[Code, DisplayName] = Field(default_factory=lambda: _names({
        "login": ("刚签入", "Just logged in"), "rona": ("未接来电", "Missed a call"),
        "unreachable": ("话机不可达", "Phone unreachable"), "busy": ("忙碌", "Busy"),
        "cti_restart": ("系统重启", "System restart"), "server_down": ("服务器不可达", "Server down"),
        "unregistered": ("话机未注册", "Phone not registered")}))
    disposition_categories: dict[Code, DisplayName] = Field(default_factory=lambda: _names({
        "inquiry": ("咨询", "Inquiry"), "fault_repair": ("故障报修", "Fault repair"),
        "business": ("业务办理", "Business"), "complaint": ("投诉", "Complaint"), "report": ("举报", "Report"),
        "emergency": ("紧急", "Emergency")}))
    # the work-order deadlines (workorders.yaml), put in by the loader
    workorders: WorkorderTable = Field(default_factory=WorkorderTable)
    # responsible units a work order can be dispatched to: code -> name (a work order keeps the code)
    units: dict[Code, DisplayName] = Field(default_factory=lambda: _names({
        "city_station": ("城区供电所", "City supply station"), "marketing": ("营销部", "Marketing"),
        "operations": ("运检部", "Operations & maintenance")}))
    identity_roles: list[Role] = Field(default=["supervisor", "admin"])
    calendar: Calendar = Field(default_factory=Calendar)  # the site calendar (calendar.yaml), put in by the loader
    escalation_target: str = Field(default="supervisor", min_length=1, max_length=40)
    ws_queue_size: int = Field(default=256, ge=8, le=100_000)
    ws_replay_size: int = Field(default=500, ge=8, le=100_000)
    wallboard_interval_s: float = Field(default=2.0, gt=0)
    min_logged_in: int = Field(default=0, ge=0)  # below this a logout warns supervisors (shift change)

    @property
    def timezone(self) -> str:
        return self.calendar.timezone

    @field_validator("system_reasons")
    @classmethod
    def _every_system_reason_named(cls, value: dict[str, DisplayName]) -> dict[str, DisplayName]:
        missing = [r for r in SYSTEM_REASONS if r not in value]
        unknown = sorted(set(value) - set(SYSTEM_REASONS))
        if missing or unknown:
            raise ValueError("the ACD's own reasons are " + ", ".join(SYSTEM_REASONS)
                             + (f"; name {', '.join(missing)}" if missing else "")
                             + (f"; not one of them: {', '.join(unknown)}" if unknown else ""))
        return value

    @property
    def reasons(self) -> dict[str, DisplayName]:
        """Every not-ready reason an agent can be in: theirs to pick and the ACD's own."""
        return {**self.system_reasons, **self.not_ready_reasons}

    @model_validator(mode="after")
    def _workorder_categories_known(self) -> DesktopConfig:
        both = sorted(set(self.not_ready_reasons) & set(self.system_reasons))
        if both:
            raise ValueError(f"not_ready_reasons {both} are the ACD's own (system_reasons): pick other codes")
        unknown = sorted(set(self.workorders.categories) - set(self.disposition_categories))
        if unknown:
            raise ValueError(f"workorders.yaml names categories not in disposition_categories: {unknown}")
        return self


def load_desktop_config(config_dir: str | Path, calendar: Calendar | None = None) -> DesktopConfig:
    """Read `<config_dir>/desktop.yaml` (absent or empty file: all defaults); ConfigError on mistakes."""
    site = calendar if calendar is not None else load_calendar(config_dir)
    return load_site_model(Path(config_dir) / "desktop.yaml", DesktopConfig, site,
                           inject={"workorders": load_workorder_table(config_dir, site)},
                           moved={"workorder_sla": "work-order deadlines are defined once, in workorders.yaml"})
