"""What the desktop needs from the rest of the server, as small Protocols the lead wires up.

The desktop never imports the ACD runtime, the call tracker or the IVR data layer;
it talks to these. Implementations raise `PortError` (or a subclass) with a stable
`error_id` for refusals the agent should see (unknown agent, illegal state change,
unknown call): the API turns it into a 4xx JSON error, never a 500.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

TargetKind = Literal["queue", "agent"]
TransferKind = Literal["blind", "attended"]


class PortError(Exception):
    """A refusal from a port. `status` is the HTTP status the API answers with (404, 409, ...)."""

    def __init__(self, error_id: str, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.error_id = error_id
        self.message = message
        self.status = status


class AgentControl(Protocol):
    """The ACD's agents. `state` returns e.g. {"agent_id", "state", "reason", "since"} or None if unknown."""

    async def login(self, agent_id: str) -> None: ...
    async def logout(self, agent_id: str) -> None: ...
    async def set_ready(self, agent_id: str) -> None: ...
    async def set_not_ready(self, agent_id: str, reason: str) -> None: ...
    def state(self, agent_id: str) -> dict[str, Any] | None: ...
    def all_states(self) -> list[dict[str, Any]]: ...


class CallControl(Protocol):
    """Live calls. Each call dict has at least "call_id" and "agent_id" (None while queued)."""

    def live_calls(self) -> list[dict[str, Any]]: ...
    async def hangup(self, call_id: str) -> None: ...
    async def transfer(self, call_id: str, target_kind: TargetKind, target: str, kind: TransferKind,
                       *, escalated: bool = False) -> None:
        """Blind or attended transfer to a queue (skill) or agent; `escalated` marks a supervisor escalation."""
        ...


class WallboardSource(Protocol):
    """Live figures for the wallboard, e.g. {"queues": [{"queue", "waiting", "longest_wait_s"}],
    "agents": {"available": 3, ...}, "service_level": 0.82, "abandon_rate": 0.04, "tiers": ["vip", ...],
    "waiting_calls": [{"call_id", "queue", "tier", "caller", "wait_s", "ringing", "callback"}]}."""

    def snapshot(self) -> dict[str, Any]: ...

    def set_priority(self, call_id: str, tier: str, by: str) -> dict[str, Any]:
        """Move a waiting caller to another tier (their priority in the queue), on a supervisor's word:
        {"call_id", "tier", "previous", "changed"}. PortError 404 for a caller not waiting, 422 for an
        unknown tier."""
        ...


class CustomerLookup(Protocol):
    """Customer records: {"account", "name", "tier", "area", "outage": {...}|None, "arrears", "history": [...]}."""

    async def by_phone(self, phone: str) -> dict[str, Any] | None: ...
    async def by_account(self, account: str) -> dict[str, Any] | None: ...
