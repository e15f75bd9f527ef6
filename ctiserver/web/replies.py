"""What the desktop API answers, as pydantic models: the schemas of its responses in /api/openapi.json.

The handlers build plain dicts; these models describe them for clients (and for the contract test,
which checks every live response against the document). A reply may carry more fields than listed:
clients ignore what they do not know.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class UserOut(Out):
    agent_no: str
    name: str
    role: Literal["agent", "supervisor", "admin", "dispatcher", "qc"]


class LoginOut(Out):
    token: str = Field(description="send as `Authorization: Bearer <token>`; also set as the session cookie")
    expires_at: float = Field(description="epoch seconds")
    user: UserOut


class OkOut(Out):
    ok: Literal[True]


class MeOut(Out):
    user: UserOut
    not_ready_reasons: dict[str, dict[str, str]] = Field(description="reason code -> its name per language")
    reasons: dict[str, dict[str, str]] = Field(
        description="every not-ready reason an agent can be in (theirs and the ACD's own, e.g. rona) -> its names")
    queues: dict[str, dict[str, str]] = Field(description="queue (skill) -> its name per language")
    tiers: dict[str, dict[str, str]] = Field(description="customer tier -> its name per language")
    acd_agent: bool = Field(description="whether this login has a seat in the ACD (else: no agent controls)")
    categories: dict[str, dict[str, str]] = Field(description="disposition category -> its name per language")
    workorder_categories: list[str] = Field(description="categories a work order can be opened for")
    units: dict[str, dict[str, str]] = Field(description="unit a work order can be dispatched to -> its names")
    ws_epoch: str = Field(description="the WebSocket hub's lifetime (see /ws)")


class AgentStateOut(Out):
    agent_id: str
    state: str = Field(description="logged_out, not_ready, available, reserved, ringing, on_call, wrap_up, ...")
    reason: str | None
    call_id: str | None = None
    in_state_s: float | None = None


class CallOut(Out):
    call_id: str
    agent_id: str | None = Field(description="the agent on the call; null while queued")


class CallActionOut(Out):
    ok: Literal[True]
    call_id: str
    escalated: bool | None = None


class PriorityOut(Out):
    call_id: str
    tier: str
    previous: str
    changed: bool = Field(description="false when the caller already had that tier (nothing logged)")


class HistoryItem(Out):
    ts: float
    category: str | None
    note: str | None


class CustomerOut(Out):
    account: Any
    name: Any = None
    tier: Any = None
    area: Any = None
    outage: dict[str, Any] | None = None
    history: list[HistoryItem] = Field(default_factory=list, description="recent dispositions and work orders")


class DispositionOut(Out):
    id: int
    ts: float
    agent_no: str
    call_id: str | None
    category: str
    note: str
    resolved: bool
    customer_account: str | None
    caller_number: str | None


class WorkOrderOut(Out):
    id: int
    created_ts: float
    updated_ts: float
    created_by: str
    call_id: str | None
    incoming_number: str = Field(description="'***' for an anonymous order to a role that may not see callers")
    call_time: float
    category: str
    customer_name: str
    content: str
    customer_account: str | None
    anonymous: bool
    status: Literal["open", "dispatched", "resolved", "closed", "reopened"]
    unit: str | None
    due_ts: float
    reopen_count: int
    closed_ts: float | None
    overdue: bool


class WorkOrderStep(Out):
    id: int
    work_order_id: int
    ts: float
    agent_no: str
    from_status: str | None
    to_status: str
    unit: str | None
    note: str


class WorkOrderDetailOut(WorkOrderOut):
    history: list[WorkOrderStep]


class WorkOrderMovedOut(WorkOrderOut):
    previous_status: str


class OverdueWorkOrder(Out):
    id: int
    category: str
    unit: str | None
    status: str
    overdue_s: float


class WallboardOut(Out):
    queues: list[dict[str, Any]] = Field(description="per queue: waiting, callbacks, longest_wait_s, ...")
    agents: dict[str, int] = Field(description="agents per state")
    overdue_workorders: list[OverdueWorkOrder]
    ts: float
