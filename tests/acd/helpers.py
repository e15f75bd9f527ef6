"""Builders shared by the ACD tests: small configs and command filters."""

from __future__ import annotations

import copy
from typing import Any

from ctiserver.acd.config import AcdConfig
from ctiserver.acd.engine import AcdEngine
from ctiserver.acd.model import Command, Offer
from ctiserver.events import Event

ALWAYS = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}

BASE: dict[str, Any] = {
    "skills": ["billing", "fault", "vip_desk", "english"],
    "tiers": [
        {"name": "vip"},
        {"name": "priority", "callback_on_abandon": {"min_wait_s": 10, "due_within_s": 86400}},
        {"name": "normal"},
        {"name": "blacklist", "last_resort": True, "max_wait_s": 300,
         "overflow": {"kind": "message", "target": "blacklist_notice"}},
    ],
    "ring_timeout_s": 12,
    "ring_guard_s": 0,
    "redial_window_s": 120,
    "vip": {"tier": "vip", "desk_skill": "vip_desk", "account_agent_wait_s": 0, "desk_wait_s": 0},
    "queue_defaults": {"wrap_up_s": 10, "handle_time_s": 100},
    "agents": [],
}


def config(skills_by_agent: dict[str, dict[str, int]] | None = None, **over: Any) -> AcdConfig:
    """BASE plus agents {id: {skill: proficiency}} plus top-level overrides."""
    data = copy.deepcopy(BASE)
    data["agents"] = [{"id": k, "skills": v} for k, v in (skills_by_agent or {}).items()]
    for key, value in over.items():
        data[key] = value
    return AcdConfig.model_validate(data)


def engine(agents: dict[str, dict[str, int]] | None = None, *, ready: bool = True, now: float = 0.0,
           **over: Any) -> AcdEngine:
    eng = AcdEngine(config(agents, **over))
    if ready:
        for a in eng.agent_ids():
            eng.login(a, now, ready=True)
    return eng


def offers(cmds: list[Command]) -> list[Offer]:
    return [c for c in cmds if isinstance(c, Offer)]


def events(cmds: list[Command], kind: str | None = None) -> list[Event]:
    return [c for c in cmds if isinstance(c, Event) and (kind is None or c.kind == kind)]


def only(cmds: list[Command], cls: type) -> list[Any]:
    return [c for c in cmds if isinstance(c, cls)]
