"""In-memory stand-ins for the desktop's ports (ctiserver/web/ports.py), with real state rules."""

from __future__ import annotations

from typing import Any

from ctiserver.web.ports import PortError, TargetKind, TransferKind

_MOVES = {  # (state, action) -> next state; the ACD engine's table, reduced to what the desktop drives
    ("logged_out", "login"): "not_ready",
    ("not_ready", "ready"): "available",
    ("available", "ready"): "available",
    ("available", "not_ready"): "not_ready",
    ("not_ready", "not_ready"): "not_ready",
    ("wrap_up", "ready"): "available",
    ("wrap_up", "not_ready"): "not_ready",
    ("available", "logout"): "logged_out",
    ("not_ready", "logout"): "logged_out",
    ("wrap_up", "logout"): "logged_out",
}


class FakeAgents:
    def __init__(self, agent_ids: list[str], names: dict[str, str] | None = None) -> None:
        self.states: dict[str, dict[str, Any]] = {
            a: {"agent_id": a, "state": "logged_out", "reason": None} for a in agent_ids}
        self.names = names or {}

    def _move(self, agent_id: str, action: str, reason: str | None = None) -> None:
        st = self.states.get(agent_id)
        if st is None:
            raise PortError("acd-unknown-agent", f"no agent {agent_id}", 404)
        nxt = _MOVES.get((st["state"], action))
        if nxt is None:
            raise PortError("acd-illegal-transition", f"agent {agent_id} in {st['state']} cannot {action}")
        st["state"], st["reason"] = nxt, reason

    async def login(self, agent_id: str) -> None:
        self._move(agent_id, "login", "login")

    async def logout(self, agent_id: str) -> None:
        self._move(agent_id, "logout")

    async def set_ready(self, agent_id: str) -> None:
        self._move(agent_id, "ready")

    async def set_not_ready(self, agent_id: str, reason: str) -> None:
        self._move(agent_id, "not_ready", reason)

    def state(self, agent_id: str) -> dict[str, Any] | None:
        st = self.states.get(agent_id)
        return dict(st) if st else None

    def all_states(self) -> list[dict[str, Any]]:
        return [{**s, "name": self.names.get(s["agent_id"], ""), "in_state_s": 0.0} for s in self.states.values()]


class FakeCalls:
    def __init__(self) -> None:
        self.calls: dict[str, dict[str, Any]] = {}
        self.actions: list[tuple[Any, ...]] = []

    def live_calls(self) -> list[dict[str, Any]]:
        return [dict(c) for c in self.calls.values()]

    async def hangup(self, call_id: str) -> None:
        self.actions.append(("hangup", call_id))
        self.calls.pop(call_id)

    async def transfer(self, call_id: str, target_kind: TargetKind, target: str, kind: TransferKind,
                       *, escalated: bool = False) -> None:
        self.actions.append(("transfer", call_id, target_kind, target, kind, escalated))


class FakeWallboard:
    TIERS = ("vip", "priority", "normal", "blacklist")

    def __init__(self) -> None:
        self.waiting = {"billing": 0, "fault": 0}
        self.callbacks = {"billing": 0, "fault": 0}
        self.agents = {"available": 1, "on_call": 2, "not_ready": 1, "wrap_up": 0}
        self.waiting_calls: list[dict[str, Any]] = []
        self.priorities: list[tuple[str, str, str]] = []  # (call id, tier, by)

    def snapshot(self) -> dict[str, Any]:
        return {"queues": [{"queue": q, "waiting": n, "callbacks": self.callbacks[q], "longest_wait_s": 12.0 * n}
                           for q, n in self.waiting.items()],
                "agents": dict(self.agents),
                "service_level": 0.83, "abandon_rate": 0.04, "answered": 120, "offered": 126,
                "tiers": list(self.TIERS), "waiting_calls": [dict(c) for c in self.waiting_calls]}

    def set_priority(self, call_id: str, tier: str, by: str) -> dict[str, Any]:
        call = next((c for c in self.waiting_calls if c["call_id"] == call_id), None)
        if call is None:
            raise PortError("not-waiting", f"no caller {call_id!r} is waiting", 404)
        if tier not in self.TIERS:
            raise PortError("unknown-tier", f"tier must be one of: {', '.join(self.TIERS)}", 422)
        previous, call["tier"] = call["tier"], tier
        self.priorities.append((call_id, tier, by))
        return {"call_id": call_id, "tier": tier, "previous": previous, "changed": previous != tier}


class FakeCustomers:
    def __init__(self) -> None:
        self.records = {
            "13800138000": {"account": "3100012345", "name": "王小明", "tier": "vip", "area": "浦东新区",
                            "outage": {"kind": "fault", "reason": "10kV 线路故障", "expected_restore": "14:00"},
                            "arrears": "126.50",
                            "history": [{"ts": 1_700_000_000, "category": "fault_repair", "note": "停电报修"}]},
        }

    async def by_phone(self, phone: str) -> dict[str, Any] | None:
        return self.records.get(phone)

    async def by_account(self, account: str) -> dict[str, Any] | None:
        return next((r for r in self.records.values() if r["account"] == account), None)
