"""Request bodies and query strings, validated with pydantic: strict types, bounded sizes, no unknown keys.

The same classes feed the OpenAPI document (web/openapi.py), so what is documented is what is
enforced: each rule is written once, as a pydantic type whose JSON schema says what its validator
checks (`Text`'s pattern is the regex it validates with), and a rule across fields is a model
validator beside the JSON-schema form of the same rule. Values the configuration gives (reason
codes, categories, units, tiers) are `Choice`s: the document lists them and the desktop checks them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

# C0 controls but tab, newline and carriage return: NUL breaks PostgreSQL text, the others have no place in a note
CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f"
# what str.strip() removes (str.isspace()), less the controls above
SPACES = r"\t\n\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


@dataclass(frozen=True, slots=True)
class Text:
    """Free text: no control characters (but tab and newlines); with `blank=False`, more than spaces.

    Its JSON schema `pattern` is the very regex the validator matches (ECMA-262 and Python agree on it)."""

    blank: bool = True

    @property
    def pattern(self) -> str:
        if self.blank:
            return f"^[^{CONTROLS}]*$"
        return f"^[^{CONTROLS}]*[^{CONTROLS}{SPACES}][^{CONTROLS}]*$"

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        controls = re.compile(f"[{CONTROLS}]")
        whole = re.compile(self.pattern)

        def check(value: str) -> str:
            if controls.search(value):
                raise ValueError("control characters are not allowed")
            if not whole.fullmatch(value):
                raise ValueError("must not be blank")
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        out = handler(schema)
        out["pattern"] = self.pattern
        return out


@dataclass(frozen=True, slots=True)
class Choice:
    """One of the values the configuration lists under `key` (as GET /api/me names them), else 422 `error_id`.

    The document (openapi._fill_choices) lists the values as the field's `enum`; the desktop checks
    every Choice field of a validated body against the same list (api.Desktop.wrap)."""

    key: str
    error_id: str

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        out = handler(schema)
        out["x-choices"] = self.key
        return out


def choices_of(model: BaseModel) -> list[tuple[str, Any, Choice]]:
    """(field, value, Choice) of every Choice field of `model` that has a value."""
    out = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        for meta in info.metadata:
            if isinstance(meta, Choice) and value is not None:
                out.append((name, value, meta))
    return out


Name = Annotated[str, StringConstraints(min_length=1, max_length=100), Text(blank=False)]
Unit = Annotated[str, StringConstraints(min_length=1, max_length=100), Text()]
Note500 = Annotated[str, StringConstraints(max_length=500), Text()]
Note1000 = Annotated[str, StringConstraints(max_length=1000), Text()]
Note2000 = Annotated[str, StringConstraints(max_length=2000), Text()]
Content = Annotated[str, StringConstraints(min_length=1, max_length=4000), Text(blank=False)]
AgentNo = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{1,20}$")]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,29}$")]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9*#]{1,32}$")]
Account = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,20}$")]
CallId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,80}$")]
Target = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,40}$")]  # a dialplan extension (calls.py)
Status = Literal["open", "dispatched", "resolved", "closed", "reopened"]

class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def _query_schema(schema: dict[str, Any]) -> None:
    """A query string cannot say null: an absent parameter is the default, so no `null` in the schema."""
    for prop in schema.get("properties", {}).values():
        branches = [b for b in prop.get("anyOf", ()) if b.get("type") != "null"]
        if "anyOf" in prop and len(branches) == 1:
            del prop["anyOf"]
            prop.update(branches[0])
        if prop.get("default", 0) is None:
            del prop["default"]


def _query_rule(**rule: Any) -> Any:
    """json_schema_extra of a query model with a rule across its fields (`rule`: JSON-schema keywords)."""
    def extra(schema: dict[str, Any]) -> None:
        _query_schema(schema)
        schema.update(rule)
    return extra


class Query(BaseModel):
    """Query strings are text: lax parsing ("50" -> 50), still no unknown keys."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra=_query_schema)


class LoginIn(Body):
    agent_no: AgentNo
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class UserIn(Body):
    agent_no: AgentNo
    name: Name
    role: Literal["agent", "supervisor", "admin", "dispatcher", "qc"]
    password: Annotated[str, StringConstraints(min_length=8, max_length=256)]


class AgentStateIn(Body):
    """A reason goes with not_ready, and only with it (the handler refuses the rest: 422)."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"properties": {"action": {"const": "not_ready"}, "reason": {"type": "string"}},
         "required": ["action", "reason"]},
        {"properties": {"action": {"enum": ["login", "logout", "ready"]}, "reason": {"type": "null"}},
         "required": ["action"]},
    ]})

    action: Literal["login", "logout", "ready", "not_ready"]
    reason: Annotated[Code | None, Choice("not_ready_reasons", "unknown-reason")] = Field(
        default=None, description="not-ready reason code (see /api/me); only with not_ready")


class TransferIn(Body):
    target_kind: Literal["queue", "agent"]
    target: Target
    kind: Literal["blind", "attended"] = "blind"


class PriorityIn(Body):
    tier: Annotated[Code, Choice("tiers", "unknown-tier")] = Field(
        description="the caller's new tier, highest first in acd.yaml (e.g. vip, priority, normal)")


class EscalateIn(Body):
    note: Note500 = ""


class DispositionIn(Body):
    call_id: CallId | None = None
    category: Annotated[Code, Choice("categories", "unknown-category")]
    note: Note2000 = ""
    resolved: bool
    customer_account: Account | None = None
    caller_number: Phone | None = None


class WorkOrderIn(Body):
    call_id: CallId | None = None
    incoming_number: Phone
    call_time: float | None = Field(default=None, gt=0,
                                    description="epoch seconds, not in the future (5 min of clock skew allowed; "
                                                "else 422); default: now")
    category: Annotated[Code, Choice("workorder_categories", "no-sla-for-category")]
    customer_name: Name
    content: Content
    customer_account: Account | None = None
    anonymous: bool = False
    unit: Annotated[Unit | None, Choice("units", "unknown-unit")] = None


class WorkOrderStatusIn(Body):
    status: Status
    note: Note1000 = ""
    unit: Annotated[Unit | None, Choice("units", "unknown-unit")] = None
    satisfaction_callback: bool = Field(default=False, description="on close: ask for a satisfaction call")

    # a satisfaction callback goes with closing (the handler refuses the rest: 422)
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"properties": {"satisfaction_callback": {"const": False}}},
        {"properties": {"status": {"const": "closed"}}}]})


class WorkOrderQuery(Query):
    """At least one filter: account, number, status or overdue=true (else 400)."""

    model_config = ConfigDict(json_schema_extra=_query_rule(anyOf=[
        {"required": ["account"]}, {"required": ["number"]}, {"required": ["status"]},
        {"required": ["overdue"], "properties": {"overdue": {"const": True}}}]))

    account: Account | None = None
    number: Phone | None = None
    status: Status | None = None
    overdue: bool = False
    limit: int = Field(default=50, ge=1, le=500)

    @model_validator(mode="after")
    def _a_filter(self) -> WorkOrderQuery:
        if self.account is None and self.number is None and self.status is None and not self.overdue:
            raise ValueError("filter by account, number, status or overdue=true")
        return self


class DispositionQuery(Query):
    call_id: CallId | None = None
    limit: int = Field(default=50, ge=1, le=500)


class CustomerQuery(Query):
    """Exactly one of phone or account (else 400)."""

    model_config = ConfigDict(json_schema_extra=_query_rule(minProperties=1, maxProperties=1))

    phone: Phone | None = None
    account: Account | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> CustomerQuery:
        if (self.phone is None) == (self.account is None):
            raise ValueError("give exactly one of phone or account")
        return self
