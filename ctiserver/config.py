"""The server's own settings (`config/ctiserver.yaml`): Asterisk servers, database, listeners.

Feature settings (IVR, ACD, outbound, KPIs) live in their own files and modules;
`ctiserver.app.settings.load_all` gathers every one of them for `check` and `serve`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .calendar import Calendar, load_site_model
from .configfile import Strict
from .ha.config import HaConfig

_SAFE = re.compile(r"^[A-Za-z0-9_.@-]+$")


class AmiServer(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] = "pbx1"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 5038
    username: str = "ctiserver"
    # `secret_env` names an environment variable; a literal `secret` is allowed for the sandbox.
    secret: str | None = None
    secret_env: str | None = None
    ping_interval_s: Annotated[float, Field(gt=0)] = 5.0
    ping_timeout_s: Annotated[float, Field(gt=0)] = 3.0
    reconnect_min_s: Annotated[float, Field(gt=0)] = 0.2
    reconnect_max_s: Annotated[float, Field(gt=0)] = 10.0
    action_timeout_s: Annotated[float, Field(gt=0)] = 10.0

    @field_validator("username")
    @classmethod
    def _username(cls, v: str) -> str:
        if not _SAFE.match(v):
            raise ValueError("username may hold only letters, digits and _ . @ -")
        return v

    def resolved_secret(self) -> str:
        if self.secret_env:
            value = os.environ.get(self.secret_env)
            if value is None:
                raise ValueError(f"environment variable {self.secret_env} (AMI secret) is not set")
            return value
        return self.secret or ""


class Retention(Strict):
    """How many whole months (in the calendar's zone) before the current one the database keeps; empty: all.

    Enforced by the leader's daily job (ctiserver/store/retention.py). On PostgreSQL a month goes as a
    whole partition (DETACH, DROP: constant time); on SQLite by a ranged DELETE. Recordings have their
    own retention (recording.yaml)."""

    events_months: Annotated[int, Field(ge=1, le=1200)] | None = None  # the event log (every feature's)
    facts_months: Annotated[int, Field(ge=1, le=1200)] | None = None  # KPI facts and their half-hour rollups
    run_at: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")] = "03:30"  # local time, daily

    @model_validator(mode="after")
    def _facts_outlive_events(self) -> Retention:
        # A report over a month whose facts went but whose events stayed would show the families read from
        # the events (dispositions, work orders, outbound) without the calls they belong to.
        if self.events_months is not None and self.facts_months is not None \
                and self.facts_months < self.events_months:
            raise ValueError(f"facts_months ({self.facts_months}) must be at least events_months "
                             f"({self.events_months}): the facts are what is left of a month once its events go")
        return self

    def run_minute(self) -> int:
        hh, mm = self.run_at.split(":")
        return int(hh) * 60 + int(mm)


class DatabaseConfig(Strict):
    # SQLAlchemy async URL; relative sqlite paths are relative to the config dir's parent.
    url: str = "sqlite+aiosqlite:///var/ctiserver.db"
    batch_size: Annotated[int, Field(ge=1, le=10000)] = 1000
    flush_interval_s: Annotated[float, Field(gt=0)] = 0.2
    # How late the KPI facts may follow the events: their sink runs at most this often in a transaction of
    # its own, with a catch-up after a crash (store/deferred.py); 0: in every batch's own transaction.
    facts_interval_s: Annotated[float, Field(ge=0, le=60)] = 2.0
    buffer_limit: Annotated[int, Field(ge=10)] = 50000  # events held in memory before spilling
    journal: str = "var/journal.jsonl"  # where events go while the database is away
    retry_max_s: Annotated[float, Field(gt=0)] = 5.0
    retention: Retention = Field(default_factory=Retention)


class HttpConfig(Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080


class AgiConfig(Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 4573
    command_timeout_s: Annotated[float, Field(gt=0)] = 30.0
    header_timeout_s: Annotated[float, Field(gt=0)] = 5.0
    max_pending: Annotated[int, Field(ge=1, le=10_000)] = 64  # connections in their header phase at once


class ServerConfig(Strict):
    asterisk: list[AmiServer] = Field(default_factory=lambda: [AmiServer()])
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    agi: AgiConfig = Field(default_factory=AgiConfig)
    log_level: Annotated[str, Field(pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")] = "INFO"
    # several nodes on one PostgreSQL, one leading (ctiserver/ha/, docs/ha.md); absent: one node, as always
    ha: HaConfig | None = None

    def for_sandbox(self, host: str, port: int, username: str, secret: str) -> ServerConfig:
        """For `--sandbox`: the first Asterisk entry is the sandbox (its address, user and own secret)."""
        first = self.asterisk[0].model_copy(update={"host": host, "port": port, "username": username,
                                                    "secret": secret, "secret_env": None})
        return self.model_copy(update={"asterisk": [first, *self.asterisk[1:]]})

    @field_validator("ha")
    @classmethod
    def _ha_needs_postgresql(cls, v: HaConfig | None, info: ValidationInfo) -> HaConfig | None:
        db = info.data.get("database")
        if v is not None and db is not None and not db.url.startswith(("postgresql", "postgres")):
            raise ValueError("high availability requires PostgreSQL (database.url: postgresql+asyncpg://...): "
                             "the nodes share the lease and the event store there; SQLite is for one node")
        return v

    @field_validator("asterisk")
    @classmethod
    def _unique(cls, v: list[AmiServer]) -> list[AmiServer]:
        names = [s.name for s in v]
        if len(set(names)) != len(names):
            raise ValueError("asterisk server names must be unique")
        return v


# Deployment overrides (containers): listen addresses and the database URL.
ENV_OVERRIDES = {
    "CTISERVER_HTTP_HOST": ("http", "host"),
    "CTISERVER_HTTP_PORT": ("http", "port"),
    "CTISERVER_AGI_HOST": ("agi", "host"),
    "CTISERVER_AGI_PORT": ("agi", "port"),
    "CTISERVER_DB_URL": ("database", "url"),
    "CTISERVER_HA_NODE": ("ha", "node"),  # one config folder, several nodes: each its own name
}


def load_server_config(config_dir: str | Path) -> ServerConfig:
    path = Path(config_dir) / "ctiserver.yaml"
    # the time zone is calendar.yaml's (one setting, one reader): a `timezone` here is an error
    cfg = load_site_model(path, ServerConfig, Calendar(), field=None)
    updates: dict[str, dict[str, object]] = {}
    for var, (section, key) in ENV_OVERRIDES.items():
        if var in os.environ:
            updates.setdefault(section, {})[key] = os.environ[var]
    if updates:
        data = cfg.model_dump()
        for section, values in updates.items():
            if data[section] is not None:  # CTISERVER_HA_NODE names a node; it does not turn HA on
                data[section].update(values)
        cfg = ServerConfig.model_validate(data)
    return cfg


def resolve_db_url(url: str, base: Path) -> str:
    """Make a relative sqlite path absolute against `base` (the project folder)."""
    prefix = "sqlite+aiosqlite:///"
    if url.startswith(prefix) and not url[len(prefix):].startswith("/") and ":memory:" not in url:
        return prefix + str((base / url[len(prefix):]).resolve())
    return url
