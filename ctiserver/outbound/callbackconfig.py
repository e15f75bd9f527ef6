"""The callback blocks of config/outbound.yaml: `callbacks` (satisfaction callbacks when a work order closes)
and `acd_callbacks` (callbacks the ACD asks for), with the retry delays and the agent's whisper."""

from __future__ import annotations

import hashlib
import string
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ..calendar import DaysRule
from ..configfile import Strict
from .timeranges import TimeRange, _ranges


def _whisper(v: str) -> str:
    """What an agent hears before a callback's customer is dialled: placeholders number, last4, reason, skill."""
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(v) if f is not None}
    except ValueError as exc:
        raise ValueError(f"bad template ({exc})") from None
    unknown = names - {"number", "last4", "reason", "skill"}
    if unknown:
        raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; allowed: last4, number, reason, skill")
    return v


class CallbackConfig(Strict):
    """Satisfaction callbacks (回访) when a work order closes.

    Which closures are called back: every one of a category in `always` (complaints), ticked or not
    (an anonymous order only when ticked); of the others,
    those the agent ticked, thinned to `sample[category]` (fault repairs: 5%; a category not listed:
    all). Keys of `always` and `sample` are work-order categories (desktop.yaml
    disposition_categories); `ctiserver check` rejects any other.

    mode `agent` (the rulebook's): an agent with `skill` calls the customer back through the ACD, the
    customer's record popped on the desktop before the customer is dialled; by the category's callback
    deadline in workorders.yaml (one working day of the closure by default), inside the customer
    class's window (business customers in working hours, residential after work, never after 22:00).
    mode `survey`: an automated TTS survey in `campaign` (press 1-5)."""

    mode: Literal["agent", "survey"] = "agent"
    skill: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] = "outbound"
    tier: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] = "normal"
    due_working_days: object = None  # moved: workorders.yaml's `callback` (an error here)
    class_windows: dict[str, list[str]] = Field(default_factory=lambda: {
        "business": ["09:00-17:00"], "residential": ["17:00-22:00"]})  # keys: business, residential
    whisper: str = "工单回访，客户尾号{last4}。"
    campaign: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = "survey-workorders"
    sample: dict[str, Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=lambda: {"fault_repair": 0.05})
    always: list[str] = Field(default_factory=lambda: ["complaint"])  # when: workorders.yaml's callback

    _v_whisper = field_validator("whisper")(_whisper)

    @model_validator(mode="after")
    def _always_is_not_sampled(self) -> CallbackConfig:
        both = sorted(k for k in self.always if self.sample.get(k, 1.0) < 1.0)
        if both:
            raise ValueError(f"{', '.join(both)}: called back on every closure (always) and sampled at once")
        return self

    def selects(self, category: str, workorder_id: int, *, requested: bool, anonymous: bool = False) -> bool:
        """Whether a closed work order is called back (pure; by when: workorders.yaml's `callback`).
        An order of an `always` category is, ticked or not (anonymous ones only when ticked); any other
        only when ticked and then only if the order falls in its category's sample."""
        if category in self.always:
            return requested or not anonymous
        return requested and sampled(workorder_id, self.sample.get(category, 1.0))

    @field_validator("due_working_days")
    @classmethod
    def _moved(cls, v: object) -> object:
        if v is not None:
            raise ValueError("callback deadlines are defined once, in workorders.yaml (callback)")
        return v

    @field_validator("class_windows")
    @classmethod
    def _v_class_windows(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = set(v) - {"business", "residential"}
        if unknown:
            raise ValueError(f"customer classes are business and residential, not {sorted(unknown)}")
        for ranges in v.values():
            _ranges(ranges)
        return v


def sampled(workorder_id: int, share: float) -> bool:
    """Deterministic sampling by work order: the same order is always in or out of the sample."""
    digest = int(hashlib.sha256(str(workorder_id).encode()).hexdigest()[:8], 16)
    return digest % 10000 < round(share * 10000)


class CallbackRetry(Strict):
    """Seconds before the next try after a customer was not reached (busy, no answer, ...)."""

    busy: Annotated[float, Field(ge=0)] = 600
    no_answer: Annotated[float, Field(ge=0)] = 1800
    congestion: Annotated[float, Field(ge=0)] = 300
    failed: Annotated[float, Field(ge=0)] = 1800
    lost: Annotated[float, Field(ge=0)] = 300  # the CTI stopped mid-callback: result unknown
    agent_hangup: Annotated[float, Field(ge=0)] = 60  # the agent hung up before the customer answered

    def delay(self, outcome: str) -> float | None:
        value = getattr(self, outcome, None) if outcome in type(self).model_fields else None
        return float(value) if value is not None else None


class AcdCallbackConfig(Strict):
    """Callbacks the ACD asks for (a priority caller who gave up, a kept place, an overflow to
    callback): an agent is reserved first, then the customer is dialled from the agent's phone."""

    enabled: bool = True
    windows: list[str] = Field(default_factory=lambda: ["08:00-21:00"])  # scheduled ones only
    days: DaysRule = "any"
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    retry: CallbackRetry = Field(default_factory=CallbackRetry)
    max_in_acd: Annotated[int, Field(ge=1, le=10000)] = 10  # callbacks waiting for agents at once
    customer_ring_s: Annotated[float, Field(gt=0, le=300)] = 30
    context: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] = "acd-callback"
    # what the agent hears once they answered, before the customer is dialled ("" for nothing)
    whisper: str = "回拨客户，尾号{last4}。"
    skip_dnc: bool = True  # automatic callbacks skip do-not-call numbers; a kept place never does

    _v_windows = field_validator("windows")(_ranges)

    _v_whisper = field_validator("whisper")(_whisper)

    @property
    def window_ranges(self) -> tuple[TimeRange, ...]:
        return tuple(TimeRange.parse(w) for w in self.windows)
