"""Request bodies and query strings, validated with pydantic: strict types, bounded sizes, no unknown keys.

The same classes feed the OpenAPI document (api.openapi), so what is documented is
what is enforced.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


def _no_control(value: str) -> str:
    # NUL breaks PostgreSQL text; other C0 controls (but tab/newline) have no place in a note.
    if any(ord(c) < 32 and c not in "\t\n\r" for c in value):
        raise ValueError("control characters are not allowed")
    return value


_Clean = AfterValidator(_no_control)
Name = Annotated[str, StringConstraints(min_length=1, max_length=100), _Clean]
Unit = Annotated[str, StringConstraints(min_length=1, max_length=100), _Clean]
Note500 = Annotated[str, StringConstraints(max_length=500), _Clean]
Note1000 = Annotated[str, StringConstraints(max_length=1000), _Clean]
Note2000 = Annotated[str, StringConstraints(max_length=2000), _Clean]
Content = Annotated[str, StringConstraints(min_length=1, max_length=4000), _Clean]
AgentNo = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{1,20}$")]
Code = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,29}$")]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9*#]{1,32}$")]
Account = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,20}$")]
CallId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,80}$")]
Target = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,40}$")]
Status = Literal["open", "dispatched", "resolved", "closed", "reopened"]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Query(BaseModel):
    """Query strings are text: lax parsing ("50" -> 50), still no unknown keys."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class LoginIn(Body):
    agent_no: AgentNo
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class UserIn(Body):
    agent_no: AgentNo
    name: Name
    role: Literal["agent", "supervisor", "admin"]
    password: Annotated[str, StringConstraints(min_length=8, max_length=256)]


class AgentStateIn(Body):
    action: Literal["login", "logout", "ready", "not_ready"]
    reason: Code | None = Field(default=None, description="not-ready reason code (see /api/me)")


class TransferIn(Body):
    target_kind: Literal["queue", "agent"]
    target: Target
    kind: Literal["blind", "attended"] = "blind"


class PriorityIn(Body):
    tier: Code = Field(description="the caller's new tier, highest first in acd.yaml (e.g. vip, priority, normal)")


class EscalateIn(Body):
    note: Note500 = ""


class DispositionIn(Body):
    call_id: CallId | None = None
    category: Code
    note: Note2000 = ""
    resolved: bool
    customer_account: Account | None = None
    caller_number: Phone | None = None


class WorkOrderIn(Body):
    call_id: CallId | None = None
    incoming_number: Phone
    call_time: float | None = Field(default=None, gt=0, description="epoch seconds; default: now")
    category: Code
    customer_name: Name
    content: Content
    customer_account: Account | None = None
    anonymous: bool = False
    unit: Unit | None = None


class WorkOrderStatusIn(Body):
    status: Status
    note: Note1000 = ""
    unit: Unit | None = None
    satisfaction_callback: bool = Field(default=False, description="on close: ask for a satisfaction call")


class WorkOrderQuery(Query):
    account: Account | None = None
    number: Phone | None = None
    status: Status | None = None
    overdue: bool = False
    limit: int = Field(default=50, ge=1, le=500)


class DispositionQuery(Query):
    call_id: CallId | None = None
    limit: int = Field(default=50, ge=1, le=500)


class CustomerQuery(Query):
    phone: Phone | None = None
    account: Account | None = None
