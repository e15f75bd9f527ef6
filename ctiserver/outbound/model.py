"""Outbound vocabulary: campaign kinds, states, outcomes, and the config models.

Two files configure outbound: `config/outbound.yaml` (site-wide rules:
quiet hours, caps, pacing, message templates, late-fee rules) and one YAML per
campaign under `config/campaigns/` (kind, windows, pacing, retry policy, params).
A campaign's spec is copied into the database when it is created, so a running
campaign does not change under the dialer when someone edits the file.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ..calendar import Calendar, DaysRule, load_calendar, load_site_model
from ..configfile import ConfigError, ConfigProblem, Strict, compose, load_model, node_line
from ..workorders.deadlines import WorkorderTable, load_workorder_table

# the callback blocks and time ranges live apart; their names stay importable from here
from .callbackconfig import AcdCallbackConfig, CallbackConfig
from .callbackconfig import CallbackRetry as CallbackRetry
from .callbackconfig import sampled as sampled
from .timeranges import TimeRange, _ranges
from .timeranges import parse_ranges as parse_ranges

CampaignKind = Literal["outage_notice", "arrears_reminder", "survey", "restored"]
KINDS: tuple[str, ...] = ("outage_notice", "arrears_reminder", "survey", "restored")  # each needs its template
SMS_KINDS: tuple[str, ...] = ("arrears_reminder", "outage_notice", "restored")  # campaign kinds sms.yaml can send


class State:
    """Campaign states; `TRANSITIONS[(state, action)]` is the only way to move between them."""

    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FINISHED = "finished"


TRANSITIONS: dict[tuple[str, str], str] = {
    (State.DRAFT, "start"): State.RUNNING,
    (State.PAUSED, "resume"): State.RUNNING,
    (State.RUNNING, "pause"): State.PAUSED,
    (State.DRAFT, "stop"): State.STOPPED,
    (State.RUNNING, "stop"): State.STOPPED,
    (State.PAUSED, "stop"): State.STOPPED,
    (State.RUNNING, "finish"): State.FINISHED,
}


class ContactStatus:
    PENDING = "pending"  # waiting for its (next) attempt
    DONE = "done"  # reached a person (or a machine, when the policy accepts that)
    NOT_REACHED = "not_reached"  # attempts exhausted or a final failure: goes on the export
    CANCELLED = "cancelled"  # the campaign was stopped before this contact was reached
    EXCLUDED = "excluded"  # its number went on the do-not-call list or the blacklist before it was reached


class Outcome:
    """What one attempt ended with. The first group comes from Asterisk, the rest is our reading."""

    ANSWERED = "answered"  # a person answered but pressed nothing useful
    MACHINE = "machine"  # AMD said MACHINE; the message was left after the beep
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CONGESTION = "congestion"
    FAILED = "failed"  # invalid number, channel unavailable, rejected originate
    LOST = "lost"  # we crashed or lost the result: the call is gone and we do not know how it went
    CONFIRMED = "confirmed"  # pressed 1 on a notice
    AGENT = "agent"  # pressed 0: handed to the ACD
    RATED = "rated"  # survey answered with 1..5


FROM_ASTERISK = (Outcome.ANSWERED, Outcome.MACHINE, Outcome.BUSY, Outcome.NO_ANSWER,
                 Outcome.CONGESTION, Outcome.FAILED)
REACHED = frozenset({Outcome.ANSWERED, Outcome.CONFIRMED, Outcome.AGENT, Outcome.RATED})
RETRYABLE = (Outcome.BUSY, Outcome.NO_ANSWER, Outcome.CONGESTION, Outcome.FAILED, Outcome.MACHINE,
             Outcome.LOST, Outcome.ANSWERED)
# A later, more specific report may replace an earlier one for the same attempt: the
# Hangup says "answered", the dialplan's UserEvent then "confirmed"; an OriginateResponse
# says only "failed" (Reason 0), the Hangup of a channel that was ringing "no answer".
OUTCOME_RANK: dict[str, int] = {
    Outcome.LOST: 0, Outcome.FAILED: 1, Outcome.CONGESTION: 2, Outcome.NO_ANSWER: 2, Outcome.BUSY: 2,
    Outcome.ANSWERED: 3, Outcome.MACHINE: 4, Outcome.CONFIRMED: 5, Outcome.AGENT: 5, Outcome.RATED: 5,
}
ALL_OUTCOMES = tuple(OUTCOME_RANK)

# --- site-wide config (config/outbound.yaml; its callback blocks: callbackconfig.py) ----------------


class PacingConfig(Strict):
    max_concurrent: Annotated[int, Field(ge=1, le=10000)] = 10
    calls_per_s: Annotated[float, Field(gt=0, le=1000)] = 2.0
    burst: Annotated[int, Field(ge=1, le=1000)] = 1  # tokens a bucket may hold: calls started at once


class QuietHoursConfig(Strict):
    default: list[str] = Field(default_factory=list)  # applies to every area
    areas: dict[str, list[str]] = Field(default_factory=dict)

    _v_default = field_validator("default")(_ranges)

    @field_validator("areas")
    @classmethod
    def _v_areas(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for ranges in v.values():
            _ranges(ranges)
        return v


class FrequencyCap(Strict):
    """At most `max` deliveries of `kind` per account in any `per_days` days, over all campaigns."""

    kind: CampaignKind
    max: Annotated[int, Field(ge=1)] = 1
    per_days: Annotated[float, Field(gt=0)] = 7


class LateFeeConfig(Strict):
    """Late fee (电费违约金) per day on the arrears, from the day after the due date."""

    residential_per_day: Annotated[Decimal, Field(ge=0, le=1)] = Decimal("0.001")
    business_current_year_per_day: Annotated[Decimal, Field(ge=0, le=1)] = Decimal("0.002")
    business_prior_years_per_day: Annotated[Decimal, Field(ge=0, le=1)] = Decimal("0.003")
    minimum: Annotated[Decimal, Field(ge=0)] = Decimal("1.00")  # a fee under this is charged as this


TEMPLATE_FIELDS: dict[str, frozenset[str]] = {
    "outage_notice": frozenset({"name", "area", "start", "end", "reason"}),
    "arrears_reminder": frozenset({"name", "account", "billing_month", "arrears", "late_fee", "late_fee_days",
                                   "late_fee_rate", "late_fee_rule", "total", "due_date", "pay_at"}),
    "survey": frozenset({"name", "topic"}),
    "restored": frozenset({"name", "area", "restored_at"}),  # power is back (important customers, issue 16)
}


class Templates(Strict):
    zh: str
    en: str


def _placeholders(kind: str, tpl: Templates) -> None:
    for lang in ("zh", "en"):
        text = getattr(tpl, lang)
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
        except ValueError as exc:
            raise ValueError(f"{lang}: bad template ({exc})") from None
        unknown = names - TEMPLATE_FIELDS[kind]
        if unknown:
            raise ValueError(f"{lang}: unknown placeholder(s) {sorted(unknown)}; "
                             f"allowed: {sorted(TEMPLATE_FIELDS[kind])}")


class OutageTemplates(Templates):
    @model_validator(mode="after")
    def _fields(self) -> OutageTemplates:
        _placeholders("outage_notice", self)
        return self


class ArrearsTemplates(Templates):
    @model_validator(mode="after")
    def _fields(self) -> ArrearsTemplates:
        _placeholders("arrears_reminder", self)
        return self


class SurveyTemplates(Templates):
    @model_validator(mode="after")
    def _fields(self) -> SurveyTemplates:
        _placeholders("survey", self)
        return self


class RestoredTemplates(Templates):
    @model_validator(mode="after")
    def _fields(self) -> RestoredTemplates:
        _placeholders("restored", self)
        return self


class TemplatesConfig(Strict):
    """One message per campaign kind, each checked for placeholders its kind provides."""

    outage_notice: OutageTemplates | None = None
    arrears_reminder: ArrearsTemplates | None = None
    survey: SurveyTemplates | None = None
    restored: RestoredTemplates | None = None

    def get(self, kind: str) -> Templates | None:
        value = getattr(self, kind, None)
        return value if isinstance(value, Templates) else None


class DialServer(Strict):
    """One Asterisk that places campaign calls, and how many of ours it may have up at once."""

    name: Annotated[str, Field(min_length=1, max_length=40)]
    max_channels: Annotated[int, Field(ge=1)] | None = None  # None: only the campaigns' pacing limits it


class DialConfig(Strict):
    server: str | None = None  # which Asterisk (ctiserver.yaml name) places the calls; default the first
    # or several: calls spread over them within each one's max_channels; a server that is down is skipped
    # (ctiserver/outbound/pool.py). Given, it replaces `server`.
    servers: list[DialServer] = Field(default_factory=list)
    channel: Annotated[str, Field(pattern=r"^[A-Za-z0-9_/@.-]*\{number\}[A-Za-z0-9_/@.-]*$")] = \
        "PJSIP/{number}@carrier"  # e.g. Local/{number}@outbound-dest in the sandbox
    caller_id: Annotated[str, Field(pattern=r"^[0-9+]{3,20}$")] = "95598"
    context: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] = "outbound"
    exten: Annotated[str, Field(pattern=r"^[A-Za-z0-9_+*#-]+$")] = "s"
    ring_timeout_s: Annotated[float, Field(gt=0, le=300)] = 30
    max_call_s: Annotated[float, Field(gt=0)] = 600  # after this a 'dialing' attempt is checked with Asterisk
    agent_skill: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] = "outbound"


class OutboundConfig(Strict):
    pacing: PacingConfig = Field(default_factory=lambda: PacingConfig(max_concurrent=30, calls_per_s=5, burst=5))
    calendar: Calendar = Field(default_factory=Calendar)  # the site calendar (calendar.yaml), put in by the loader
    # the work-order deadlines (workorders.yaml), put in by the loader: satisfaction callbacks' due times
    workorders: WorkorderTable = Field(default_factory=WorkorderTable)
    quiet_hours: QuietHoursConfig = Field(default_factory=QuietHoursConfig)
    caps: list[FrequencyCap] = Field(default_factory=list)
    late_fee: LateFeeConfig = Field(default_factory=LateFeeConfig)
    pay_at: Templates = Field(default_factory=lambda: Templates(
        zh="国网营业厅、网上国网App或银行代收网点",
        en="a State Grid service hall, the State Grid app or a bank"))
    dial: DialConfig = Field(default_factory=DialConfig)
    poll_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    callbacks: CallbackConfig = Field(default_factory=CallbackConfig)
    acd_callbacks: AcdCallbackConfig = Field(default_factory=AcdCallbackConfig)
    templates: TemplatesConfig = Field(default_factory=TemplatesConfig)

    @property
    def timezone(self) -> str:
        return self.calendar.timezone


# --- one campaign (config/campaigns/<name>.yaml) -----------------------------------------------


class OutcomeRule(Strict):
    retry: bool = True
    delay_s: Annotated[float, Field(ge=0)] = 600


class RetryPolicy(Strict):
    """At most `max_attempts` attempts per contact; after an outcome, retry (or not) after its delay."""

    max_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    busy: OutcomeRule = OutcomeRule(delay_s=300)
    no_answer: OutcomeRule = OutcomeRule(delay_s=1800)
    congestion: OutcomeRule = OutcomeRule(delay_s=120)
    failed: OutcomeRule = OutcomeRule(delay_s=600)
    machine: OutcomeRule = OutcomeRule(delay_s=3600)
    lost: OutcomeRule = OutcomeRule(delay_s=300)
    answered: OutcomeRule = OutcomeRule(retry=False, delay_s=3600)  # retry to get a confirmation
    # When no retry follows a machine (not retried, or attempts spent), was the message
    # delivered (left after the beep: done) or not (the contact goes on the not-reached list)?
    machine_is_delivered: bool = False

    def rule(self, outcome: str) -> OutcomeRule | None:
        rule = getattr(self, outcome, None) if outcome in RETRYABLE else None
        return rule if isinstance(rule, OutcomeRule) else None


LANGS = ("zh", "en")  # message languages: a campaign's, or a contact's own (contact column `language`)


class Spoken(Strict):
    """Words a campaign puts into its message, in each language: `{zh: 计划检修, en: planned maintenance}`."""

    zh: Annotated[str, Field(min_length=1)]
    en: Annotated[str, Field(min_length=1)]

    def text(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


def spoken(value: str | Spoken, lang: str) -> str:
    """A campaign's words in `lang`; a plain string is the same in every language (a place, a number)."""
    return value if isinstance(value, str) else value.text(lang)


class OutageParams(Strict):
    areas: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    start: str | Spoken  # as spoken, e.g. "11月24日8时" or {zh: 11月24日8时, en: "8 am on 24 November"}
    end: str | Spoken
    reason: str | Spoken


class ArrearsParams(Strict):
    min_arrears: Annotated[Decimal, Field(ge=0)] = Decimal("0")


class SurveyParams(Strict):
    topic: str | Spoken = ""


class RestoredParams(Strict):
    areas: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    restored_at: str | Spoken


Channel = Literal["phone", "sms"]


def _phone_only() -> list[Channel]:
    return ["phone"]


class CampaignSpec(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    kind: CampaignKind
    title: str = ""
    priority: Annotated[int, Field(ge=0, le=100)] = 50  # higher first, across campaigns
    language: Literal["zh", "en"] = "zh"  # a contact whose list gives its `language` hears that one
    windows: list[str] = Field(default_factory=lambda: ["08:00-21:00"])
    # Narrower hours by customer class, e.g. business 09:00-17:00, residential 17:00-22:00;
    # applied to each contact as quiet hours (the time outside its class's range).
    class_windows: dict[Literal["residential", "business"], str] = Field(default_factory=dict)
    days: DaysRule = "any"
    # or: an hours set of calendar.yaml (its spans per kind of day), in place of windows and days
    hours: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,38}$")] | None = None
    pacing: PacingConfig = Field(default_factory=PacingConfig)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    # "within N working days" of the data arriving (bill data, work-order closure)
    data_arrived: date | None = None
    deliver_within_working_days: Annotated[int, Field(ge=0, le=30)] | None = None
    outage: OutageParams | None = None
    arrears: ArrearsParams | None = None
    survey: SurveyParams | None = None
    restored: RestoredParams | None = None
    # how contacts are told: called (phone), sent a message (sms: sms.yaml's template of the campaign's kind,
    # through the SMS service, which a server with SMS enabled runs), or both
    channels: Annotated[list[Channel], Field(min_length=1, max_length=2)] = Field(default_factory=_phone_only)

    _v_windows = field_validator("windows")(_ranges)

    @field_validator("class_windows")
    @classmethod
    def _v_class_windows(cls, v: dict[str, str]) -> dict[str, str]:
        for text in v.values():
            TimeRange.parse(text)
        return v

    @model_validator(mode="after")
    def _kind_params(self) -> CampaignSpec:
        if not self.windows:
            raise ValueError("windows: at least one calling window is needed")
        if self.hours is not None and {"windows", "days"} & self.model_fields_set:
            raise ValueError("give either hours (an hours set of calendar.yaml) or windows and days, not both")
        if self.kind == "outage_notice" and self.outage is None:
            raise ValueError("an outage_notice campaign needs an 'outage' section "
                             "(areas, start, end, reason)")
        if self.kind == "restored" and self.restored is None:
            raise ValueError("a restored campaign needs a 'restored' section (areas, restored_at)")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels: each channel once")
        if "sms" in self.channels and self.kind not in SMS_KINDS:
            raise ValueError(f"channels: a {self.kind} campaign has no SMS (SMS: {', '.join(SMS_KINDS)})")
        for other in ("outage", "arrears", "survey", "restored"):
            wanted = {"outage_notice": "outage", "arrears_reminder": "arrears", "survey": "survey",
                      "restored": "restored"}[self.kind]
            if other != wanted and getattr(self, other) is not None:
                raise ValueError(f"section '{other}' does not belong to a {self.kind} campaign")
        return self

    @property
    def window_ranges(self) -> tuple[TimeRange, ...]:
        return tuple(TimeRange.parse(w) for w in self.windows)


def load_outbound_config(config_dir: str | Path, calendar: Calendar | None = None) -> OutboundConfig:
    path = Path(config_dir) / "outbound.yaml"
    site = calendar if calendar is not None else load_calendar(config_dir)
    cfg = load_site_model(path, OutboundConfig, site, inject={"workorders": load_workorder_table(config_dir, site)})
    missing = [k for k in KINDS if cfg.templates.get(k) is None]
    if path.exists() and missing:
        raise ConfigError.at(path, 1, f"templates: no message template for {', '.join(missing)}")
    return cfg


def load_campaign_spec(path: str | Path) -> CampaignSpec:
    return load_model(path, CampaignSpec)


def check_outbound(config_dir: Path) -> list[ConfigProblem]:
    """For `ctiserver check`: outbound.yaml and every campaign file, all problems at once."""
    problems: list[ConfigProblem] = []
    hours: list[str] | None = None
    try:
        hours = sorted(load_calendar(config_dir).hours)
        load_outbound_config(config_dir)
    except ConfigError as exc:
        problems.extend(exc.problems)
    folder = Path(config_dir) / "campaigns"
    if folder.is_dir():
        for path in sorted(folder.glob("*.yaml")):
            try:
                spec = load_campaign_spec(path)
            except ConfigError as exc:
                problems.extend(exc.problems)
                continue
            if spec.hours is not None and hours is not None and spec.hours not in hours:
                line = node_line(compose(path), ("hours",))
                problems.append(ConfigProblem(str(path), line, f"unknown hours set '{spec.hours}' (calendar.yaml "
                                                               f"hours: {', '.join(hours) or 'none'})"))
    return problems


# --- records shared by the scheduler, the store and the dialer ----------------------------------


@dataclass(frozen=True, slots=True)
class Dial:
    """One call the scheduler wants made now."""

    campaign: str
    contact: int
    number: str
    attempt_no: int
    channel_id: str


@dataclass(frozen=True, slots=True)
class ContactIn:
    """A validated contact ready to be stored (from CSV or the customer tables)."""

    number: str
    name: str = ""
    account: str = ""
    area: str = ""
    priority: int = 0  # higher first; important/VIP customers get 10+
    tier: str = ""
    quiet: str = ""  # the customer's own quiet hours, "12:00-14:00;21:00-08:00"
    variables: dict[str, str] = field(default_factory=dict)
    not_before: float = 0.0  # not called before this (an outage notice's lead time)
