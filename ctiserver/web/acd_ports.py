"""Ports backed by the ACD runtime: AgentControl and the live part of WallboardSource.

Thin adapters so the lead can wire the desktop to `ctiserver.acd.runtime.AcdRuntime`
in two lines. ACD refusals (`AcdError` with its stable `error_id`) become PortErrors:
unknown agents 404, illegal transitions 409.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from ..acd.model import AcdError, UnknownAgent, UnknownCall, UnknownTier
from ..acd.runtime import AcdRuntime
from ..events import Event, Kind
from .ports import PortError


def _port_error(exc: AcdError) -> PortError:
    return PortError(exc.error_id, str(exc), 404 if isinstance(exc, UnknownAgent) else 409)


class AcdAgentControl:
    """AgentControl over an AcdRuntime (its methods are synchronous; ours are async for other backends)."""

    def __init__(self, runtime: AcdRuntime) -> None:
        self.runtime = runtime

    def _do(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except AcdError as exc:
            raise _port_error(exc) from None

    async def login(self, agent_id: str) -> None:
        self._do(lambda: self.runtime.login(agent_id))

    async def logout(self, agent_id: str) -> None:
        self._do(lambda: self.runtime.logout(agent_id))

    async def set_ready(self, agent_id: str) -> None:
        self._do(lambda: self.runtime.set_ready(agent_id))

    async def set_not_ready(self, agent_id: str, reason: str) -> None:
        self._do(lambda: self.runtime.set_not_ready(agent_id, reason))

    def state(self, agent_id: str) -> dict[str, Any] | None:
        try:
            state, reason = self.runtime.engine.agent_state(agent_id)
        except UnknownAgent:
            return None
        return {"agent_id": agent_id, "state": state, "reason": reason,
                "call_id": self.runtime.engine.agent_call(agent_id)}

    def all_states(self) -> list[dict[str, Any]]:
        """Every agent's state, with their name (acd.yaml) and how long they have been in it."""
        now = self.runtime.clock.now()
        names = {a.id: a.name for a in self.runtime.cfg.agents}
        return [{**{k: a[k] for k in ("agent_id", "state", "reason", "in_state_s", "call_id")},
                 "name": names.get(a["agent_id"], "")}
                for a in self.runtime.engine.agents_snapshot(now)]


class AcdWallboard:
    """WallboardSource: queues and agents live from the ACD; today's SL/abandon rate from `today()`.

    `today` (e.g. a KPI query cached for a few seconds) returns {"service_level", "abandon_rate", ...};
    without it those figures are absent and the gauges show 0.
    """

    def __init__(self, runtime: AcdRuntime, today: Callable[[], dict[str, Any]] | None = None, *,
                 max_waiting_calls: int = 50) -> None:
        self.runtime = runtime
        self.today = today
        self.max_waiting_calls = max_waiting_calls  # the longest waits, when more are queued

    def snapshot(self) -> dict[str, Any]:
        now = self.runtime.clock.now()
        queues = self.runtime.engine.queues_snapshot(now)
        agents = Counter(a["state"] for a in self.runtime.engine.agents_snapshot(now))
        snap: dict[str, Any] = {
            # callers on the line; callbacks (nobody on hold: a kept place or a scheduled one) apart
            "queues": [{"queue": q, "waiting": v["waiting"] - v["callbacks_in_place"],
                        "callbacks": v["callbacks_in_place"], "longest_wait_s": round(v["longest_wait_s"], 1),
                        "available": v["available"], "staffed": v["staffed"]} for q, v in sorted(queues.items())],
            "agents": dict(agents),
            "tiers": [t.name for t in self.runtime.cfg.tiers],
            "waiting_calls": [{**c, "wait_s": round(c["wait_s"], 1)}
                              for c in self.runtime.engine.waiting_calls(now, limit=self.max_waiting_calls)],
        }
        if self.today is not None:
            snap.update(self.today())
        return snap

    def set_priority(self, call_id: str, tier: str, by: str) -> dict[str, Any]:
        try:
            cmds = self.runtime.retier(call_id, tier, by=by)
        except UnknownCall:
            raise PortError("not-waiting", f"no caller {call_id!r} is waiting in the ACD", 404) from None
        except UnknownTier:
            raise PortError("unknown-tier", f"tier must be one of: {', '.join(t.name for t in self.runtime.cfg.tiers)}",
                            422) from None
        except AcdError as exc:
            raise _port_error(exc) from None
        logged = [c for c in cmds if isinstance(c, Event) and c.kind == Kind.ACD_RETIER]
        previous = logged[0].data["previous"] if logged else tier
        return {"call_id": call_id, "tier": tier, "previous": previous, "changed": bool(logged)}
