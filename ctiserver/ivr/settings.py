"""IVR settings (`config/ivr/settings.yaml`): which tree answers, TTS, recordings, lookup limits.

Every other `*.yaml` in `config/ivr/` is a tree; this one file name is reserved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from ..calendar import Calendar, load_calendar, load_site_model
from ..configfile import Strict
from .tts import TtsSettings

SETTINGS_FILE = "settings.yaml"


class IvrSettings(Strict):
    default_tree: str = "hotline"  # for agi://host/ivr; agi://host/ivr/<tree> or ?tree=<name> picks another
    tts: TtsSettings = Field(default_factory=TtsSettings)
    # As Asterisk sees it; it must exist there (RECORD FILE creates no folders). Debian's Asterisk has monitor/.
    recordings_dir: str = "/var/spool/asterisk/monitor"
    sound_dirs: list[str] = Field(default_factory=list)  # extra folders `check` searches for `file:` prompts
    lookup_timeout_s: Annotated[float, Field(gt=0, le=60)] = 3.0
    reload_poll_s: Annotated[float, Field(gt=0, le=3600)] = 2.0
    calendar: Calendar = Field(default_factory=Calendar)  # the site calendar (calendar.yaml), put in by the loader

    @property
    def timezone(self) -> str:
        return self.calendar.timezone


def load_ivr_settings(config_dir: str | Path, calendar: Calendar | None = None) -> IvrSettings:
    site = calendar if calendar is not None else load_calendar(config_dir)
    return load_site_model(Path(config_dir) / "ivr" / SETTINGS_FILE, IvrSettings, site)
