"""The SMS configuration (`config/sms.yaml`): the gateway, when messages may go, retries, caps, templates.

Templates use the IVR's template syntax (`ctiserver/ivr/template.py`: `{name}`, `{amount:.2f}`); each
message kind provides a fixed set of fields, and a template naming any other is a `file:line` error of
`ctiserver check`, as for the IVR's prompts. Quiet hours and the do-not-call list are outbound's
(`outbound.yaml`, `ctiserver campaign dnc`): an SMS obeys them as a call does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from ..calendar import Calendar, DaysRule, load_calendar, load_site_model
from ..configfile import ConfigError, ConfigProblem, Strict
from ..ivr.template import TemplateError, fields
from ..outbound.model import TimeRange, _ranges

SmsKind = Literal["outage_notice", "bill_notice", "arrears_reminder", "repair_apology", "restored", "crew_order",
                  "crew_alert"]

# The fields each kind of message provides to its template.
TEMPLATE_FIELDS: dict[str, frozenset[str]] = {
    "outage_notice": frozenset({"name", "area", "start", "end", "reason"}),
    "bill_notice": frozenset({"name", "account", "reading_date", "reading", "kwh", "amount", "previous_balance",
                              "amount_due", "due_date"}),
    "arrears_reminder": frozenset({"name", "account", "billing_month", "arrears", "late_fee", "total",
                                   "due_date", "pay_at"}),
    "repair_apology": frozenset({"name", "area", "crew", "crew_phone", "arrive_by", "restore_by"}),
    "restored": frozenset({"name", "area", "restored_at"}),
    "crew_order": frozenset({"team", "order", "area", "area_class", "arrive_by", "link"}),
    # a reminder to the crew, or an escalation to the shift leader: a repair order's step nears or passed its deadline
    "crew_alert": frozenset({"level", "team", "order", "area", "step", "due", "link"}),
}
# Messages to staff on duty (a repair order to its crew), not to customers: no sending windows, quiet hours
# or caps hold them back (a fault at 3 a.m. is dispatched at 3 a.m.).
STAFF_KINDS = frozenset({"crew_order", "crew_alert"})
KINDS: tuple[str, ...] = tuple(TEMPLATE_FIELDS)
SMS_FILE = "sms.yaml"


class GatewayConfig(Strict):
    """Kannel's smsbox: its sendsms URL and user, and the URL at which Kannel reaches our delivery reports."""

    sendsms_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] = "http://127.0.0.1:13013/cgi-bin/sendsms"
    username: Annotated[str, Field(min_length=1, max_length=64)] = "ctiserver"
    # The password comes from the environment, never from this file (a literal `password` is for tests).
    password_env: str | None = "CTISERVER_KANNEL_PASSWORD"
    password: str | None = None
    sender: Annotated[str, Field(pattern=r"^[0-9A-Za-z]{1,16}$")] = "95598"
    # Our HTTP server as Kannel sees it; the delivery-report route is /api/sms/dlr under it.
    callback_base: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] = "http://127.0.0.1:8080"
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0

    def resolved_password(self) -> str | None:
        """None when the variable is unset: messages then wait (and the log says why)."""
        if self.password is not None:
            return self.password
        return os.environ.get(self.password_env) if self.password_env else None


class RetryConfig(Strict):
    """A message the gateway refused, could not take or reported undelivered is sent again after
    `delays_s[i]` (the last delay repeats), up to `max_attempts` in all; then it falls back to a call."""

    max_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    delays_s: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)] = \
        Field(default_factory=lambda: [60.0, 300.0, 1800.0])
    # Kannel down (no HTTP answer) is not the message's fault: it waits without using up an attempt.
    gateway_down_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    # accepted but no final delivery report after this long: counted as not delivered
    report_timeout_s: Annotated[float, Field(gt=0)] = 6 * 3600.0

    def delay(self, attempts_made: int) -> float:
        return self.delays_s[min(attempts_made, len(self.delays_s)) - 1] if attempts_made else self.delays_s[0]


class SmsCap(Strict):
    """At most `max` messages of `kind` to one account in any `per_days` days."""

    kind: SmsKind
    max: Annotated[int, Field(ge=1)] = 1
    per_days: Annotated[float, Field(gt=0)] = 7


def _fields_of(kind: str) -> AfterValidator:
    """A template of `kind`: parsed, and naming only the fields that kind provides."""
    allowed = TEMPLATE_FIELDS[kind]

    def check(text: str) -> str:
        try:
            names = fields(text)
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        unknown = sorted({n.split(".")[0] for n in names} - allowed)
        if unknown:
            raise ValueError(f"unknown placeholder(s) {unknown}; a {kind} message has {sorted(allowed)}")
        return text

    return AfterValidator(check)


def _text(kind: str) -> object:
    return Annotated[str, Field(min_length=1), _fields_of(kind)]


class OutageNoticeSms(Strict):
    zh: _text("outage_notice")  # type: ignore[valid-type]
    en: _text("outage_notice")  # type: ignore[valid-type]


class BillNoticeSms(Strict):
    zh: _text("bill_notice")  # type: ignore[valid-type]
    en: _text("bill_notice")  # type: ignore[valid-type]


class ArrearsReminderSms(Strict):
    zh: _text("arrears_reminder")  # type: ignore[valid-type]
    en: _text("arrears_reminder")  # type: ignore[valid-type]


class RepairApologySms(Strict):
    zh: _text("repair_apology")  # type: ignore[valid-type]
    en: _text("repair_apology")  # type: ignore[valid-type]


class RestoredSms(Strict):
    zh: _text("restored")  # type: ignore[valid-type]
    en: _text("restored")  # type: ignore[valid-type]


class CrewOrderSms(Strict):
    zh: _text("crew_order")  # type: ignore[valid-type]
    en: _text("crew_order")  # type: ignore[valid-type]


def _crew_order_default() -> CrewOrderSms:
    return CrewOrderSms(zh="【抢修工单{order}】{team}：{area}停电，请于{arrive_by}前到达。接单、到达、完工请点 {link}",
                        en="[Repair order {order}] {team}: outage in {area}, arrive by {arrive_by}. "
                           "Accept, arrive, done: {link}")


class CrewAlertSms(Strict):
    zh: _text("crew_alert")  # type: ignore[valid-type]
    en: _text("crew_alert")  # type: ignore[valid-type]


def _crew_alert_default() -> CrewAlertSms:
    return CrewAlertSms(zh="【抢修{level}】工单{order}（{team}，{area}）：{step}期限{due}。{link}",
                        en="[Repair {level}] order {order} ({team}, {area}): {step} due {due}. {link}")


class SmsTemplates(Strict):
    """One template per message kind, each checked against the fields its kind provides."""

    outage_notice: OutageNoticeSms
    bill_notice: BillNoticeSms
    arrears_reminder: ArrearsReminderSms
    repair_apology: RepairApologySms
    restored: RestoredSms
    crew_order: CrewOrderSms = Field(default_factory=_crew_order_default)
    crew_alert: CrewAlertSms = Field(default_factory=_crew_alert_default)

    def text(self, kind: str, lang: str) -> str | None:
        tpl = getattr(self, kind, None) if kind in TEMPLATE_FIELDS else None
        return getattr(tpl, lang, None) if tpl is not None else None


class SmsConfig(Strict):
    enabled: bool = True
    calendar: Calendar = Field(default_factory=Calendar)  # calendar.yaml, put in by the loader
    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    windows: list[str] = Field(default_factory=lambda: ["08:00-21:00"])  # local; outbound's quiet hours cut out
    days: DaysRule = "any"
    max_parts: Annotated[int, Field(ge=1, le=10)] = 6  # a longer message is an error, not a surprise bill
    retry: RetryConfig = Field(default_factory=RetryConfig)
    fallback_call: bool = True  # undeliverable after the retries: the customer is called instead
    caps: list[SmsCap] = Field(default_factory=list)
    poll_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    batch: Annotated[int, Field(ge=1, le=1000)] = 50  # messages handed to Kannel per round
    templates: SmsTemplates | None = None  # required when enabled

    _v_windows = field_validator("windows")(_ranges)

    @model_validator(mode="after")
    def _templates_when_enabled(self) -> SmsConfig:
        if self.enabled and self.templates is None:
            raise ValueError("templates: SMS is enabled but has no templates")
        return self

    def window_ranges(self) -> tuple[TimeRange, ...]:
        return tuple(TimeRange.parse(w) for w in self.windows)


def load_sms_config(config_dir: str | Path, calendar: Calendar | None = None) -> SmsConfig:
    """sms.yaml validated (absent: SMS disabled, with the default templates left empty)."""
    path = Path(config_dir) / SMS_FILE
    site = calendar if calendar is not None else load_calendar(config_dir)
    if not path.exists():
        return SmsConfig.model_construct(enabled=False, calendar=site, gateway=GatewayConfig(),
                                         windows=["08:00-21:00"], days="any", max_parts=6, retry=RetryConfig(),
                                         fallback_call=False, caps=[], poll_s=2.0, batch=50, templates=None)
    return load_site_model(path, SmsConfig, site)


def check_sms(config_dir: Path) -> list[ConfigProblem]:
    """For `ctiserver check`: sms.yaml's problems, all at once."""
    try:
        load_sms_config(config_dir)
    except ConfigError as exc:
        return exc.problems
    return []
