"""How the recording feature plugs into a server (called by the wiring)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..calendar import Calendar
from .config import RecordingConfig, load_recording_config
from .encode import missing_tools
from .http import add_recording_routes
from .service import Recorder

log = logging.getLogger(__name__)


def install_recording(server: Any, *, config_dir: Path, calendar: Calendar,
                      sessions: Callable[[], Any], sandbox_root: str | None = None) -> Recorder:
    """The recorder (a leader feature: the caller adds `recorder.running` to the leader group), its AMI and
    event listeners and its HTTP routes. With the sandbox, the spool is the chroot's own folder."""
    cfg: RecordingConfig = load_recording_config(config_dir)
    spool = None
    if sandbox_root and not cfg.spool_dir:
        spool = Path(sandbox_root) / cfg.asterisk_dir.lstrip("/")
        spool.mkdir(parents=True, exist_ok=True)
    if cfg.enabled and missing_tools():
        log.error("recording is on but %s is missing: recordings stay in the spool until it is installed",
                  " and ".join(missing_tools()))
    recorder = Recorder(cfg, ami=server.ami, engine=lambda: server.store.engine, emit=server.emit,
                        now=server.clock.now, calendar=calendar, base_dir=server.base_dir,
                        spool=spool)
    server.ami_listeners.append(recorder.on_ami)
    server.event_listeners.append(recorder.on_event)
    add_recording_routes(server.http_app, cfg=cfg, sessions=sessions, engine=lambda: server.store.engine,
                         calendar=calendar, root=recorder.root, emit=server.emit, now=server.clock.now)
    return recorder

