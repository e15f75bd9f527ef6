"""How the QC features plug into a server (called by the wiring)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..recording.config import load_recording_config
from .monitor import add_monitor_routes


def install_monitoring(server: Any, *, config_dir: Path, agent_of: Callable[[str], str | None],
                       sessions: Callable[[], Any], hub: Callable[[], Any]) -> None:
    """POST /api/monitor (ChanSpy through the supervisor's phone): see ctiserver/qc/monitor.py."""
    cfg = load_recording_config(config_dir)

    def channels() -> list[tuple[str, str]]:
        return [(name, leg.channel) for name, t in server.trackers.items() for leg in t.legs.values()]

    def tell_agent(agent: str, data: dict[str, Any]) -> None:
        from ..web.ws import agent_stream

        hub().publish(agent_stream(agent), "monitored", data)

    add_monitor_routes(server.http_app, cfg=cfg.monitoring, sessions=sessions, channels=channels, ami=server.ami,
                       agent_of=agent_of, emit=server.emit, now=server.clock.now, tell_agent=tell_agent)


def install_qc(server: Any, *, config_dir: Path, calendar: Any, sessions: Callable[[], Any]) -> None:
    """The QC routes and page; teams come from wfm.yaml's roster (when there is one)."""
    from .http import add_qc_routes
    from .sheet import load_qc_sheet

    teams: dict[str, str] = {}
    try:
        from ..wfm.config import load_wfm_config

        roster = load_wfm_config(config_dir, calendar).roster
        teams = {aid: rules.team for aid, rules in roster.agents.items() if rules.team}
    except Exception:  # no wfm.yaml (or a broken one, which `check` reports): no teams
        teams = {}
    add_qc_routes(server.http_app, sheet=load_qc_sheet(config_dir), sessions=sessions,
                  engine=lambda: server.store.engine, emit=server.emit, now=server.clock.now, team_of=teams.get)
