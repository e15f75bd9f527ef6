"""ACD configuration (`config/acd.yaml`): skills, queues, agents, tiers, caller languages; queue hours name
calendar.yaml sets.

Validated in two passes: pydantic checks each value, then `_cross_check` checks
the references between sections (an agent's skill, a queue's hours set, an
overflow target queue) and reports each as `file:line: message`, so an operator
fixes every mistake in one pass.
"""

from __future__ import annotations

import itertools
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from ..calendar import Calendar, load_calendar, site_key_problems, unknown_hours, without_site_keys
from ..configfile import ConfigError, ConfigProblem, Strict, load_data, node_line, validation_problems
from ..dialplan import record_on_answer
from ..names import DisplayName

NAME = r"^[a-z][a-z0-9_]{0,38}$"
AGENT_ID = r"^[A-Za-z0-9_-]{1,40}$"

Name = Annotated[str, Field(pattern=NAME)]
Proficiency = Annotated[int, Field(ge=1, le=10)]
Seconds = Annotated[float, Field(ge=0)]
# What an agent's phone can dial into an attended transfer (AMI Atxfer sends DTMF): exactly four
# digits, the `_XXXX` pattern of asterisk/extensions.conf [transfer-code], so Asterisk dials at the
# fourth digit instead of waiting out its transfer digit timeout.
TRANSFER_CODE = r"^[0-9]{4}$"
TransferCode = Annotated[str, Field(pattern=TRANSFER_CODE)]
Lang = Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]
# What a caller hears, per language ({zh: ..., en: ...}). A plain string is one text for every language:
# `check` accepts it only when the ACD has a single language (a caller must never hear another language).
Text = str | dict[Lang, str]


class LanguageConfig(Strict):
    """A caller language (the IVR's `lang`)."""

    # callers of this language are queued to this desk whatever topic they chose (e.g. en: english)
    desk: Name | None = None


class Destination(Strict):
    """Where a caller goes when leaving a queue other than to an agent."""

    kind: Literal["queue", "voicemail", "message", "callback"]
    # queue skill, voicemail box, or message/prompt name; it travels in AGI commands, hence the charset
    target: Annotated[str, Field(pattern=r"^[A-Za-z0-9_@.-]*$")] = ""

    @model_validator(mode="after")
    def _target(self) -> Destination:
        if self.kind in ("queue", "voicemail") and not self.target:
            raise ValueError(f"overflow kind '{self.kind}' needs a target")
        return self


class CallbackRule(Strict):
    """Automatic callback for callers of a tier who gave up after waiting."""

    min_wait_s: Seconds = 10.0  # shorter abandons are wrong numbers / hasty hang-ups
    due_within_s: Annotated[float, Field(gt=0)] = 86400.0


class TierConfig(Strict):
    name: Name
    # Waiting this long lifts the call one tier up (repeatedly); None = no aging.
    aging_step_s: Annotated[float, Field(gt=0)] | None = None
    # Served only when no caller of a non-last-resort tier could take the agent.
    last_resort: bool = False
    max_wait_s: Annotated[float, Field(gt=0)] | None = None
    overflow: Destination | None = None  # where max_wait_s sends them (default: the queue's)
    callback_on_abandon: CallbackRule | None = None


Op = Literal["eq", "ne", "gt", "ge", "lt", "le", "in", "not_in", "exists"]


class Condition(Strict):
    field: str  # dotted path into the customer record, e.g. "account.important"
    op: Op = "eq"
    value: Any = None

    def holds(self, customer: dict[str, Any]) -> bool:
        found, value = _lookup(customer, self.field)
        if self.op == "exists":
            return found if self.value is None else found == bool(self.value)
        if not found:
            return False
        try:
            if self.op == "eq":
                return bool(value == self.value)
            if self.op == "ne":
                return bool(value != self.value)
            if self.op == "in":
                return value in self.value
            if self.op == "not_in":
                return value not in self.value
            if self.op == "gt":
                return bool(value > self.value)
            if self.op == "ge":
                return bool(value >= self.value)
            if self.op == "lt":
                return bool(value < self.value)
            return bool(value <= self.value)
        except TypeError:
            return False  # "abc" > 5: the rule does not apply, it does not crash the call


def _lookup(data: dict[str, Any], path: str) -> tuple[bool, Any]:
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


class TierRule(Strict):
    """First matching rule gives the tier: every `all` condition and at least one `any`."""

    tier: Name
    all: list[Condition] = Field(default_factory=list)
    any: list[Condition] = Field(default_factory=list)

    def matches(self, customer: dict[str, Any]) -> bool:
        return all(c.holds(customer) for c in self.all) and (
            not self.any or any(c.holds(customer) for c in self.any))


class EscalationStep(Strict):
    after_s: Annotated[float, Field(gt=0)]
    min_proficiency: Proficiency | None = None  # widen the queue's own skill down to this level
    add_skills: list[Name] = Field(default_factory=list)  # agents of these skills may take it too
    move_to: Name | None = None  # or move the caller to another queue, keeping their wait


class QueueConfig(Strict):
    hours: Name | None = None  # an hours set of calendar.yaml; None: always open
    # where callers go while the hours set is closed
    closed: Destination = Field(default_factory=lambda: Destination(kind="message", target="closed"))
    wrap_up_s: Seconds = 30.0
    max_waiting: Annotated[int, Field(ge=1)] | None = None
    max_wait_s: Annotated[float, Field(gt=0)] | None = None
    overflow: Destination = Field(default_factory=lambda: Destination(kind="message", target="busy"))
    min_proficiency: Proficiency = 1
    escalation: list[EscalationStep] = Field(default_factory=list)
    handle_time_s: Annotated[float, Field(gt=0)] = 180.0  # seeds the estimated wait
    block_when_no_agents: bool = True

    @field_validator("escalation")
    @classmethod
    def _ordered(cls, v: list[EscalationStep]) -> list[EscalationStep]:
        if any(b.after_s <= a.after_s for a, b in itertools.pairwise(v)):
            raise ValueError("escalation steps must have increasing after_s")
        return v


class AgentConfig(Strict):
    id: Annotated[str, Field(pattern=AGENT_ID)]
    name: str = ""
    skills: dict[Name, Proficiency]
    dedicated_customers: list[str] = Field(default_factory=list)
    dial: str | None = None  # overrides the dial template for this agent
    # the Asterisk (ctiserver.yaml asterisk name) the agent's phone registers on; none: the only one
    server: Name | None = None


class VipConfig(Strict):
    """One-to-one service: account agent first, then the VIP desk, then the whole skill."""

    tier: Name = "vip"
    desk_skill: Name | None = "vip_desk"
    account_agent_wait_s: Seconds = 0.0  # hold for a busy account agent this long
    desk_wait_s: Seconds = 0.0  # then only the VIP desk this long


ANNOUNCE_FIELDS = {"position": 2, "ahead": 1, "waiting": 3, "wait_min": 1, "wait_s": 60}


class AcdNames(Strict):
    """What people see instead of the ids (desktop, wallboard, reports): every queue and tier has one."""

    queues: dict[Name, DisplayName] = Field(default_factory=dict)
    tiers: dict[Name, DisplayName] = Field(default_factory=dict)

    def public(self) -> dict[str, dict[str, dict[str, str]]]:
        return {"queues": {k: v.model_dump() for k, v in self.queues.items()},
                "tiers": {k: v.model_dump() for k, v in self.tiers.items()}}


class AnnounceConfig(Strict):
    first_after_s: Seconds = 15.0
    every_s: Annotated[float, Field(gt=0)] = 45.0
    # str.format fields: position (1 = next), ahead (callers before this one), waiting, wait_min (rounded
    # up), wait_s
    text: Text = Field(default_factory=lambda: {
        "zh": "您现在排在第{position}位，预计等待{wait_min}分钟，请耐心等候。",
        "en": "You are number {position} in the queue. The expected wait is {wait_min} minutes. "
              "Please hold."})
    text_unknown: Text = Field(default_factory=lambda: {
        "zh": "您现在排在第{position}位，请耐心等候。",
        "en": "You are number {position} in the queue. Please hold."})
    callback_hint: Text = ""  # appended when callback_key is set, e.g. {zh: "如需回拨请按1。", en: ...}
    callback_confirm: Text = Field(default_factory=lambda: {
        "zh": "已为您预约回拨，轮到您时我们将给您回电，再见。",
        "en": "Your callback is booked. We will call you back when it is your turn. Goodbye."})


BUILTIN_MESSAGES: dict[str, Text] = {
    "busy": {"zh": "当前来电较多，坐席全忙，请您稍后再拨，再见。",
             "en": "All our agents are busy. Please call again later. Goodbye."},
    "closed": {"zh": "现在不是人工服务时间，请在服务时间内来电，再见。",
               "en": "Our agents are not available at this time. Please call during service hours. Goodbye."},
}


class VoicemailConfig(Strict):
    """A queue's voicemail: the caller leaves a message (recorded by Asterisk, logged as acd.voicemail)."""

    prompt: Text = Field(default_factory=lambda: {
        "zh": "坐席繁忙，请在提示音后留言，说明您的姓名、电话和事由，按井号键结束。",
        "en": "All our agents are busy. After the tone, please leave your name, number and the reason "
              "for your call, then press hash."})
    thanks: Text = Field(default_factory=lambda: {
        "zh": "留言已收到，我们会尽快与您联系，再见。",
        "en": "Thank you, we have your message and will contact you soon. Goodbye."})
    max_s: Annotated[int, Field(ge=5, le=600)] = 120
    silence_s: Annotated[int, Field(ge=1, le=60)] = 6


class AcdConfig(Strict):
    skills: list[Name]
    tiers: list[TierConfig]
    default_tier: Name = "normal"
    customer_id_field: str = "id"  # the key of the customer record that dedicated_customers list
    tier_rules: list[TierRule] = Field(default_factory=list)
    queues: dict[Name, QueueConfig] = Field(default_factory=dict)
    queue_defaults: QueueConfig = Field(default_factory=QueueConfig)
    agents: list[AgentConfig] = Field(default_factory=list)
    calendar: Calendar = Field(default_factory=Calendar)  # the site calendar (calendar.yaml), put in by the loader
    vip: VipConfig = Field(default_factory=VipConfig)
    ring_timeout_s: Annotated[float, Field(gt=0)] = 12.0
    # The engine's own RONA guard fires this long after ring_timeout_s if nobody reported an outcome.
    ring_guard_s: Seconds = 3.0
    agent_selection: Literal["proficiency", "longest_idle"] = "proficiency"
    callback_due_s: Annotated[float, Field(gt=0)] = 86400.0  # overflow/closed callbacks: call back within
    redial_window_s: Seconds = 120.0  # 0 disables "redial gets the old place back"
    login_ready: bool = False  # agents start available on login (else not_ready(login))
    dial_template: str = "PJSIP/agent{id}"
    # a caller on another Asterisk than the agent's rings the agent over the trunk to the agent's server:
    # a PJSIP endpoint on every server named after each other server ({server}); {id}: the agent
    remote_dial_template: str = "PJSIP/{id}@{server}"
    # appended to Dial(); e.g. "m" for music while the agent rings (no spaces: it travels in an AGI command)
    dial_options: Annotated[str, Field(pattern=r"^[A-Za-z0-9()^,.:@=_-]*$")] = ""
    probe_every_s: Annotated[float, Field(gt=0)] = 10.0  # hang-up probe while waiting (a guard: HANGUP wakes at once)
    # A key that asks for a callback in place of waiting. key_source "ami": Asterisk's DTMF events tell the
    # CTI (its AMI user reads the dtmf class; nothing is polled); "poll": WAIT FOR DIGIT every key_poll_ms.
    callback_key: Annotated[str, Field(pattern=r"^[0-9*#]$")] | None = None
    key_source: Literal["ami", "poll"] = "ami"
    key_poll_ms: Annotated[int, Field(ge=100, le=5000)] = 500
    dial_max_s: Annotated[float, Field(gt=0)] = 4 * 3600.0  # AGI timeout for an EXEC Dial (ring + talk)
    # Caller languages, the default first: every text a caller hears (announce, messages, voicemail)
    # exists in each; a language's `desk` takes its callers whatever topic they chose.
    languages: dict[Lang, LanguageConfig] = Field(
        default_factory=lambda: {"zh": LanguageConfig(), "en": LanguageConfig()})
    announce: AnnounceConfig = Field(default_factory=AnnounceConfig)
    names: AcdNames = Field(default_factory=AcdNames)
    # what a caller hears at a `message` destination (overflow, closed queue): name -> text (TTS);
    # `busy` and `closed` (the defaults of a queue's overflow and closed) always exist
    messages: dict[Name, Text] = Field(default_factory=dict, validate_default=True)
    voicemail: VoicemailConfig = Field(default_factory=VoicemailConfig)
    # Queues an attended transfer can reach: code -> skill, e.g. {"9001": supervisor} (the desktop's escalation).
    transfer_codes: dict[TransferCode, Name] = Field(default_factory=dict)

    @field_validator("messages", mode="after")
    @classmethod
    def _builtin_messages(cls, value: dict[str, Text]) -> dict[str, Text]:
        return {**BUILTIN_MESSAGES, **value}

    @property
    def default_language(self) -> str:
        return next(iter(self.languages), "zh")

    def language(self, lang: str | None) -> str:
        """A caller's language as the ACD knows it: the default for an unknown or missing one."""
        return lang if lang and lang in self.languages else self.default_language

    def text(self, text: Text, lang: str | None) -> str:
        """`text` in the caller's language (a plain string is the same in every language)."""
        if isinstance(text, str):
            return text
        lang = self.language(lang)
        return text.get(lang) or text.get(self.default_language) or next(iter(text.values()), "")

    def fixed_texts(self) -> list[tuple[str, str]]:
        """(text, language) of every caller-facing text without fields: rendered before the first caller."""
        texts = [self.announce.callback_confirm, self.voicemail.prompt, self.voicemail.thanks,
                 *self.messages.values()]
        return [(self.text(text, lang), lang) for text in texts for lang in self.languages if self.text(text, lang)]

    def desk_for(self, skill: str, lang: str | None) -> str:
        """The queue for a caller who asked for `skill`: their language's desk if it has one."""
        desk = self.languages.get(lang or "")
        return desk.desk if desk is not None and desk.desk is not None else skill

    @field_validator("transfer_codes", mode="before")
    @classmethod
    def _codes_as_text(cls, value: Any) -> Any:
        """`9001: supervisor` unquoted is an int key in YAML; a code is text (a leading 0 must be quoted)."""
        if isinstance(value, dict):
            return {str(k) if isinstance(k, int) and not isinstance(k, bool) else k: v for k, v in value.items()}
        return value

    @cached_property
    def queue_codes(self) -> dict[str, str]:
        """skill -> its transfer code (the inverse of `transfer_codes`; one code per skill)."""
        return {skill: code for code, skill in self.transfer_codes.items()}

    def queue(self, skill: str) -> QueueConfig:
        return self.queues.get(skill, self.queue_defaults)

    @cached_property
    def tier_rank(self) -> dict[str, int]:
        return {t.name: i for i, t in enumerate(self.tiers)}

    def tier(self, name: str) -> TierConfig:
        return self.tiers[self.tier_rank[name]]

    def classify(self, customer: dict[str, Any] | None) -> str:
        """The tier for a customer record: the first matching rule, else `default_tier`."""
        if customer:
            for rule in self.tier_rules:
                if rule.matches(customer):
                    return rule.tier
        return self.default_tier

    @cached_property
    def agent_servers(self) -> dict[str, str]:
        """agent id -> the Asterisk server their phone is on (agents with a `server`)."""
        return {a.id: a.server for a in self.agents if a.server}

    @cached_property
    def account_agents(self) -> dict[str, str]:
        """customer id -> dedicated agent id."""
        return {c: a.id for a in self.agents for c in a.dedicated_customers}

    def dial_string(self, agent_id: str, from_server: str = "") -> str:
        """What the caller's channel dials to ring the agent: their own dial string on their server, the
        trunk to their server (`remote_dial_template`) from a caller on another one."""
        server = self.agent_servers.get(agent_id)
        if from_server and server and server != from_server:
            return self.remote_dial_template.format(id=agent_id, server=server)
        for a in self.agents:
            if a.id == agent_id and a.dial:
                return a.dial.format(id=agent_id)
        return self.dial_template.format(id=agent_id)

    def dial_args(self, agent_id: str, ring_s: float, from_server: str = "") -> str:
        """The caller's `Dial(...)` arguments to ring the agent: dial string, ring timeout, `dial_options`,
        and the option that records the agent's leg once it answers (the dialplan's [cti-record])."""
        return (f"{self.dial_string(agent_id, from_server)},{max(1, round(ring_s))},"
                f"{self.dial_options}{record_on_answer(agent_id)}")


def _cross_check(cfg: AcdConfig) -> list[tuple[tuple[int | str, ...], str]]:
    """Reference errors as (location in the YAML, message)."""
    out: list[tuple[tuple[int | str, ...], str]] = []
    skills = set(cfg.skills)
    if len(skills) != len(cfg.skills):
        out.append((("skills",), "skill names must be unique"))
    tiers = [t.name for t in cfg.tiers]
    if not tiers:
        out.append((("tiers",), "at least one tier is needed"))
    if len(set(tiers)) != len(tiers):
        out.append((("tiers",), "tier names must be unique"))
    seen_last = False
    for i, t in enumerate(cfg.tiers):
        if t.last_resort:
            seen_last = True
            if t.aging_step_s is not None:
                out.append((("tiers", i, "aging_step_s"), f"tier '{t.name}' is last_resort: it cannot age"))
        elif seen_last:
            out.append((("tiers", i, "name"), f"tier '{t.name}' follows a last_resort tier: "
                        "last_resort tiers must come last"))
        if t.overflow is not None:
            out.extend(_dest_check(cfg, t.overflow, ("tiers", i, "overflow")))
    if cfg.default_tier not in tiers:
        out.append((("default_tier",), f"unknown tier '{cfg.default_tier}' (tiers: {', '.join(tiers)})"))
    if cfg.vip.tier not in tiers:
        out.append((("vip", "tier"), f"unknown tier '{cfg.vip.tier}'"))
    if cfg.vip.desk_skill is not None and cfg.vip.desk_skill not in skills:
        out.append((("vip", "desk_skill"), f"unknown skill '{cfg.vip.desk_skill}'"))
    for i, rule in enumerate(cfg.tier_rules):
        if rule.tier not in tiers:
            out.append((("tier_rules", i, "tier"), f"unknown tier '{rule.tier}'"))
    ids: set[str] = set()
    owners: dict[str, str] = {}
    for i, a in enumerate(cfg.agents):
        if a.id in ids:
            out.append((("agents", i, "id"), f"agent id '{a.id}' appears twice"))
        ids.add(a.id)
        for s in a.skills:
            if s not in skills:
                out.append((("agents", i, "skills", s), f"agent {a.id}: unknown skill '{s}'"))
        for j, c in enumerate(a.dedicated_customers):
            if c in owners and owners[c] != a.id:
                out.append((("agents", i, "dedicated_customers", j),
                            f"customer '{c}' already has account agent {owners[c]}"))
            owners[c] = a.id
        if a.dial is not None:
            out.extend(_template_check(a.dial, ("agents", i, "dial")))
    out.extend(_template_check(cfg.dial_template, ("dial_template",)))
    try:
        cfg.remote_dial_template.format(id="1001", server="pbx2")
    except (KeyError, IndexError, ValueError) as exc:
        out.append((("remote_dial_template",), f"dial template '{cfg.remote_dial_template}' is invalid ({exc!r}); "
                                               f"use {{id}} for the agent id and {{server}} for their Asterisk"))
    for name, q in cfg.queues.items():
        if name not in skills:
            out.append((("queues", name), f"queue '{name}' is not a skill"))
        if q.hours is not None and (msg := unknown_hours(q.hours, cfg.calendar)):
            out.append((("queues", name, "hours"), msg))
        out.extend(_dest_check(cfg, q.overflow, ("queues", name, "overflow")))
        out.extend(_dest_check(cfg, q.closed, ("queues", name, "closed")))
        for j, step in enumerate(q.escalation):
            for k, s in enumerate(step.add_skills):
                if s not in skills:
                    out.append((("queues", name, "escalation", j, "add_skills", k), f"unknown skill '{s}'"))
            if step.move_to is not None and (step.move_to not in skills or step.move_to == name):
                out.append((("queues", name, "escalation", j, "move_to"),
                            f"move_to '{step.move_to}' must be another queue's skill"))
    if cfg.queue_defaults.hours is not None and (msg := unknown_hours(cfg.queue_defaults.hours, cfg.calendar)):
        out.append((("queue_defaults", "hours"), msg))
    out.extend(_dest_check(cfg, cfg.queue_defaults.closed, ("queue_defaults", "closed")))
    out.extend(_language_check(cfg))
    out.extend(_names_check(cfg))
    coded: dict[str, str] = {}
    for code, skill in cfg.transfer_codes.items():
        if skill not in skills:
            out.append((("transfer_codes", code), f"transfer code {code}: unknown skill '{skill}'"))
        elif skill in coded:
            out.append((("transfer_codes", code), f"transfer code {code}: skill '{skill}' already has code "
                        f"{coded[skill]}"))
        else:
            coded[skill] = code
    # Overflow between queues must not loop (a call would bounce forever).
    for start in cfg.queues:
        path = [start]
        cur = start
        while True:
            dest = cfg.queue(cur).overflow
            if dest.kind != "queue":
                break
            cur = dest.target
            if cur in path:
                out.append((("queues", start, "overflow"), "overflow between queues loops: "
                            + " -> ".join([*path, cur])))
                break
            path.append(cur)
    return out


def _names_check(cfg: AcdConfig) -> list[tuple[tuple[int | str, ...], str]]:
    """Every queue (skill) and tier has a display name; names of things that do not exist are typos."""
    out: list[tuple[tuple[int | str, ...], str]] = []
    for what, ids, named in (("queue", cfg.skills, cfg.names.queues), ("tier", [t.name for t in cfg.tiers],
                                                                       cfg.names.tiers)):
        section = "queues" if what == "queue" else "tiers"
        missing = [i for i in ids if i not in named]
        if missing:  # at names.<section>, or the deepest part of it the file has
            out.append((("names", section), f"names.{section}: no display name for {what}(s) "
                                            f"{', '.join(missing)} (give each {{zh: ..., en: ...}})"))
        for name in named:
            if name not in ids:
                out.append((("names", section, name), f"names.{section}: '{name}' is not a {what}"))
    return out


def _language_check(cfg: AcdConfig) -> list[tuple[tuple[int | str, ...], str]]:
    """Every caller-facing text in every language (formatted with its fields); desks are queues."""
    out: list[tuple[tuple[int | str, ...], str]] = []
    langs = list(cfg.languages)
    if not langs:
        return [(("languages",), "at least one caller language is needed")]
    for lang, lc in cfg.languages.items():
        if lc.desk is not None and lc.desk not in cfg.skills:
            out.append((("languages", lang, "desk"), f"language {lang}: unknown queue '{lc.desk}'"))
    texts: list[tuple[tuple[int | str, ...], Text, dict[str, Any] | None]] = [
        (("announce", "text"), cfg.announce.text, ANNOUNCE_FIELDS),
        (("announce", "text_unknown"), cfg.announce.text_unknown, ANNOUNCE_FIELDS),
        (("announce", "callback_hint"), cfg.announce.callback_hint, None),
        (("announce", "callback_confirm"), cfg.announce.callback_confirm, None),
        (("voicemail", "prompt"), cfg.voicemail.prompt, None),
        (("voicemail", "thanks"), cfg.voicemail.thanks, None),
        *((("messages", name), text, None) for name, text in cfg.messages.items()),
    ]
    for loc, text, fields in texts:
        where = ".".join(map(str, loc))
        if isinstance(text, str):
            if text and len(langs) > 1:
                out.append((loc, f"{where}: give the text in every caller language ({', '.join(langs)}), "
                                 f"e.g. {{{langs[0]}: ..., {langs[1]}: ...}}"))
            per_lang = {langs[0]: text}
        else:
            if loc != ("announce", "callback_hint") or any(text.values()):
                missing = [lang for lang in langs if not (text.get(lang) or "").strip()]
                if missing:
                    out.append((loc, f"{where}: no {', '.join(missing)} text (caller languages: "
                                     f"{', '.join(langs)})"))
            per_lang = text
        if fields is None:  # spoken as written
            continue
        for lang, value in per_lang.items():
            try:
                value.format(**fields)
            except (KeyError, IndexError, ValueError) as exc:
                known = ", ".join("{" + f + "}" for f in fields) or "none"
                out.append(((*loc, lang) if isinstance(text, dict) else loc,
                            f"{where}: bad placeholder {exc} in the {lang} text (fields: {known})"))
    return out


def _dest_check(cfg: AcdConfig, d: Destination, loc: tuple[int | str, ...]) -> list[
        tuple[tuple[int | str, ...], str]]:
    if d.kind == "queue" and d.target not in cfg.skills:
        return [((*loc, "target"), f"overflow to unknown queue '{d.target}'")]
    if d.kind == "message" and d.target not in cfg.messages:
        return [((*loc, "target"), f"message '{d.target}' is not in messages "
                                   f"({', '.join(sorted(cfg.messages)) or 'none defined'})")]
    return []


def _template_check(template: str, loc: tuple[int | str, ...]) -> list[tuple[tuple[int | str, ...], str]]:
    try:
        template.format(id="1001")
    except (KeyError, IndexError, ValueError) as exc:
        return [(loc, f"dial template '{template}' is invalid ({exc!r}); use {{id}} for the agent id")]
    return []


def parse_acd_config(path: Path, text: str | None = None, calendar: Calendar | None = None) -> AcdConfig:
    """Validate one acd.yaml (text given or read from `path`) against the site calendar, raising ConfigError."""
    data, root = load_data(path, text)
    if not isinstance(data, dict):
        raise ConfigError.at(path, node_line(root, ()), "expected a mapping of keys at the top level")
    site = site_key_problems(path, data, root)
    try:
        cfg = AcdConfig.model_validate({**without_site_keys(data),
                                        "calendar": calendar if calendar is not None else Calendar()})
    except ValidationError as exc:
        raise ConfigError(sorted(site + validation_problems(path, root, exc), key=lambda p: p.line)) from None
    problems = site + [ConfigProblem(str(path), _line(root, loc), msg) for loc, msg in _cross_check(cfg)]
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: p.line))
    return cfg


def _line(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    return node_line(root, list(loc))


def load_acd_config(config_dir: Path, calendar: Calendar | None = None) -> AcdConfig:
    """`config_dir/acd.yaml`, validated; ConfigError lists every problem as file:line: message."""
    return parse_acd_config(Path(config_dir) / "acd.yaml",
                            calendar=calendar if calendar is not None else load_calendar(config_dir))
