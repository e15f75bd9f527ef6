"""The sample configuration, pointed at the sandbox Asterisk, for tests that run the whole server.

One builder for every live test (desktop end to end, transfers, callbacks, hold, destinations,
restart): the config as shipped, with the sandbox's AMI, free local ports, a temp SQLite database and
the sandbox's sounds folder as the TTS cache; agents optionally as `Local/<id>@sim-agents` channels.
"""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path
from typing import Any

import yaml

from tests.asterisk_fixture import sounds_dir

REPO = Path(__file__).resolve().parents[1]
IVR_TO_AGENT = "w6|1|w6|1|w10|0"  # a timed key plan (dialplan): the billing menu, then 0 for an agent
KEYS_TO_AGENT = "1|1|0"  # the same keys, pressed when the IVR listens (originate_caller(keys=...))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sandbox_config(tmp: Path, info: Any, *, local_agents: bool = False) -> Path:
    """Copy config/ to `tmp/config` and point it at the sandbox; returns the folder."""
    cfg = tmp / "config"
    shutil.copytree(REPO / "config", cfg)
    server = yaml.safe_load((cfg / "ctiserver.yaml").read_text(encoding="utf-8"))
    server["asterisk"][0].update(host=info.ami_host, port=info.ami_port, username=info.ami_user,
                                 secret=info.ami_secret)
    server["asterisk"][0].pop("secret_env", None)  # the shipped config reads it from the environment
    server["database"].update(url=f"sqlite+aiosqlite:///{tmp / 'cti.db'}", flush_interval_s=0.05)
    server["http"] = {"host": "127.0.0.1", "port": free_port()}
    server["agi"] = {"host": "127.0.0.1", "port": free_port()}
    (cfg / "ctiserver.yaml").write_text(yaml.safe_dump(server, allow_unicode=True), encoding="utf-8")
    if local_agents:
        acd = (cfg / "acd.yaml").read_text(encoding="utf-8")
        acd = re.sub(r'^dial_template: .*$', 'dial_template: "Local/{id}@sim-agents"', acd, flags=re.M)
        (cfg / "acd.yaml").write_text(acd, encoding="utf-8")
    # recordings: Asterisk writes into its chroot's spool, the CTI reads it there and archives into tmp
    rec = yaml.safe_load((cfg / "recording.yaml").read_text(encoding="utf-8"))
    spool = Path(info.root) / rec["asterisk_dir"].lstrip("/")
    spool.mkdir(parents=True, exist_ok=True)
    rec.update(spool_dir=str(spool), root=str(tmp / "recordings"))
    (cfg / "recording.yaml").write_text(yaml.safe_dump(rec, allow_unicode=True), encoding="utf-8")
    ivr = yaml.safe_load((cfg / "ivr" / "settings.yaml").read_text(encoding="utf-8"))
    ivr["tts"]["cache_dir"] = str(sounds_dir(info))  # what the sandbox shows Asterisk as sounds/cti
    (cfg / "ivr" / "settings.yaml").write_text(yaml.safe_dump(ivr, allow_unicode=True), encoding="utf-8")
    return cfg
