"""IVR settings (`config/ivr/settings.yaml`): which tree answers, TTS, recordings, lookup limits.

Every other `*.yaml` in `config/ivr/` is a tree; this one file name is reserved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from ..configfile import Strict, load_model
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
    timezone: str = "Asia/Shanghai"


def load_ivr_settings(config_dir: str | Path) -> IvrSettings:
    path = Path(config_dir) / "ivr" / SETTINGS_FILE
    return load_model(path, IvrSettings, default_empty=True) if path.exists() else IvrSettings()
