"""`config/recording.yaml`: where Asterisk writes, where the archive lives, the codec, retention, monitoring.

Absent file: recording is off (a site that has not decided to record must not record by surprise)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from ..configfile import Strict, load_model

FILE = "recording.yaml"
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,29}$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class Retention(Strict):
    """How long each kind of recording is kept. A call's kind is the first of `kinds` whose disposition
    categories include one of the call's dispositions (e.g. complaints), else `default`."""

    default_days: Annotated[int, Field(ge=1, le=3650)] = 183
    kinds: dict[str, KindRule] = Field(default_factory=dict)
    run_at: str = "03:30"  # local time (calendar.yaml) of the daily run

    @field_validator("kinds")
    @classmethod
    def _names(cls, v: dict[str, KindRule]) -> dict[str, KindRule]:
        for name in v:
            if not _KIND.match(name):
                raise ValueError(f"kind {name!r}: lower-case letters, digits and _ (at most 30)")
        return v

    @field_validator("run_at")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError("run_at must be HH:MM (24 h)")
        return v


class KindRule(Strict):
    days: Annotated[int, Field(ge=1, le=3650)]
    categories: list[Annotated[str, Field(min_length=1, max_length=30)]] = Field(min_length=1)


class Monitoring(Strict):
    """Live listen / whisper / barge (ChanSpy through the supervisor's own phone)."""

    enabled: bool = True
    show_agent: bool = False  # the agent's desktop shows "being monitored"
    dial: str = "PJSIP/{phone}"  # the supervisor's endpoint; {phone} from the request or the user's agent no
    ring_timeout_s: Annotated[int, Field(ge=5, le=120)] = 30


class RecordingConfig(Strict):
    enabled: bool = False
    # the folder Asterisk writes to, as Asterisk sees it, and the same folder as the CTI sees it (NFS,
    # a bind mount; the sandbox maps it into its chroot). Empty spool_dir: the same path.
    asterisk_dir: str = "/var/spool/asterisk/monitor/cti"
    spool_dir: str = ""
    root: str = "var/recordings"  # the archive (relative: to the project folder), by local date
    codec: Literal["opus"] = "opus"
    # below 32 kbit/s libopus may code the call as mono or intensity stereo (measured, docs/qc.md): the
    # caller's channel would carry the agent's voice
    bitrate_kbps: Annotated[int, Field(ge=32, le=128)] = 32
    # libopus's effort (0-10); 5 with the narrowband limit: 2.8x less CPU than opusenc's 10, PESQ as good (docs/qc.md)
    complexity: Annotated[int, Field(ge=0, le=10)] = 5
    # recordings finalized at a time (sox + opusenc processes); 0: half the machine's cores (at least 1)
    encoders: Annotated[int, Field(ge=0, le=64)] = 0
    agents_hear_own: bool = False
    retention: Retention = Field(default_factory=Retention)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    # a recording whose Asterisk never said it was done (a crash) is indexed anyway after this long
    stale_after_s: Annotated[float, Field(ge=60.0, le=7 * 86400.0)] = 6 * 3600.0
    sweep_every_s: Annotated[float, Field(ge=1.0, le=3600.0)] = 60.0

    @field_validator("asterisk_dir")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/") or not re.fullmatch(r"[A-Za-z0-9_/.-]{2,200}", v) or ".." in v:
            raise ValueError("asterisk_dir must be an absolute path of letters, digits, _ . - and /")
        return v.rstrip("/")

    def encoders_now(self) -> int:
        return self.encoders or max(1, (os.cpu_count() or 2) // 2)

    def spool(self) -> Path:
        return Path(self.spool_dir or self.asterisk_dir)

    def archive(self, base: Path) -> Path:
        root = Path(self.root)
        return root if root.is_absolute() else base / root


Retention.model_rebuild()


def load_recording_config(config_dir: Path) -> RecordingConfig:
    path = Path(config_dir) / FILE
    if not path.exists():
        return RecordingConfig()
    return load_model(path, RecordingConfig, default_empty=True)
