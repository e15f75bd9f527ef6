"""The `ha:` block of config/ctiserver.yaml: this node's name and the lease's timing.

Without the block the server runs alone, as it always did (SQLite or PostgreSQL, it always leads).
With it, every node sharing the PostgreSQL database competes for one lease (ctiserver/ha/lease.py);
`ctiserver check` refuses it on SQLite (ctiserver/ha/checks.py).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from ..configfile import Strict
from .lease import default_guard


class HaConfig(Strict):
    # unique per node (containers: CTISERVER_HA_NODE); shown in /healthz, `ha status` and the claims table
    node: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,80}$")]
    lease_ttl_s: Annotated[float, Field(ge=1.0, le=60.0)] = 3.0
    renew_s: Annotated[float, Field(gt=0, le=20.0)] = 1.0
    # where a standby sends writes that must go to the leader (its HTTP base URL); default http://host:port
    address: Annotated[str, Field(max_length=200, pattern=r"^(https?://[^\s]+)?$")] = ""
    # the leader deletes fencing claims older than this (ctiserver/ha/prune.py: at least a day, far longer
    # than any action a claim guards stays open)
    claims_keep_days: Annotated[float, Field(ge=1.0, le=3650.0)] = 7.0

    @model_validator(mode="after")
    def _timing(self) -> HaConfig:
        local = self.lease_ttl_s - default_guard(self.lease_ttl_s)
        if self.renew_s >= local:
            raise ValueError(f"renew_s ({self.renew_s:g}) must be shorter than lease_ttl_s minus its guard "
                             f"({local:g} s): a leader renews several times before it must stop")
        return self
