"""The outbound tables (campaigns, contacts, attempts, the do-not-call list), the store's errors and
the records it hands out. The queries live in store.py (writes, the crash-safe dial path) and
reports.py (progress and results)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    text,
)

from ..store.schema import IdType, metadata
from .model import CampaignSpec

IMPORTANT = 10  # contacts with this priority or more are "important": reported by name when missed

campaigns = Table(
    "outbound_campaigns",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("uid", String(16), nullable=False, unique=True),
    Column("kind", String(24), nullable=False),
    Column("state", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("spec", JSON, nullable=False),
    Column("created_ts", Float, nullable=False),
    Column("updated_ts", Float, nullable=False),
)

contacts = Table(
    "outbound_contacts",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("campaign_id", IdType, ForeignKey("outbound_campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("number", String(20), nullable=False),
    Column("name", String(100), nullable=False, default=""),
    Column("account", String(40), nullable=False, default=""),
    Column("area", String(60), nullable=False, default=""),
    Column("priority", Integer, nullable=False, default=0),
    Column("tier", String(20), nullable=False, default=""),
    Column("quiet", String(200), nullable=False, default=""),
    Column("variables", JSON, nullable=False, default=dict),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_due_ts", Float, nullable=False, default=0.0),
    Column("last_outcome", String(16)),
    Column("updated_ts", Float, nullable=False),
    UniqueConstraint("campaign_id", "number", name="uq_outbound_contacts_number"),
    Index("ix_outbound_contacts_due", "campaign_id", "status", "next_due_ts"),
    Index("ix_outbound_contacts_account", "account"),
)

attempts = Table(
    "outbound_attempts",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("campaign_id", IdType, ForeignKey("outbound_campaigns.id", ondelete="CASCADE"), nullable=False),
    Column("contact_id", IdType, ForeignKey("outbound_contacts.id", ondelete="CASCADE"), nullable=False),
    Column("attempt_no", Integer, nullable=False),
    Column("channel_id", String(80), nullable=False, unique=True),
    Column("number", String(20), nullable=False),
    Column("status", String(16), nullable=False),  # dialing | ended
    Column("outcome", String(16)),
    Column("dtmf", String(20), nullable=False, default=""),
    Column("started_ts", Float, nullable=False),
    Column("ended_ts", Float),
    UniqueConstraint("contact_id", "attempt_no", name="uq_outbound_attempts_no"),
    Index("ix_outbound_attempts_status", "status"),
    Index("ux_outbound_attempts_live_number", "number", unique=True,
          sqlite_where=text("status = 'dialing'"), postgresql_where=text("status = 'dialing'")),
)

dnc = Table(
    "outbound_dnc",
    metadata,
    Column("number", String(20), primary_key=True),
    Column("list", String(16), nullable=False),  # dnc | blacklist
    Column("reason", String(200), nullable=False, default=""),
    Column("added_ts", Float, nullable=False),
)

TABLES = (campaigns, contacts, attempts, dnc)
DIALING, ENDED = "dialing", "ended"


class OutboundError(Exception):
    """Base of the outbound store's errors; each has a stable `error_id` for the API."""

    error_id = "outbound_error"


class UnknownCampaign(OutboundError):
    error_id = "unknown_campaign"


class CampaignExists(OutboundError):
    error_id = "campaign_exists"


class CampaignStateError(OutboundError):
    error_id = "campaign_state"


class AttemptConflict(OutboundError):
    """The contact changed since the plan was made (paused, stopped, dialed, or number in a call)."""

    error_id = "attempt_conflict"


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    id: int
    name: str
    uid: str
    kind: str
    state: str
    spec: CampaignSpec


@dataclass(frozen=True, slots=True)
class InFlight:
    channel_id: str
    campaign: str
    contact: int
    attempt_no: int
    started_ts: float


@dataclass(frozen=True, slots=True)
class Finished:
    """An outcome as written: what the dialer reports in events."""

    campaign: str
    kind: str
    contact: int
    number: str
    attempt_no: int
    channel_id: str
    outcome: str
    dtmf: str
    contact_status: str
    tier: str
    variables: dict[str, Any] = field(default_factory=dict)
    upgraded: bool = False  # replaced an earlier, less specific outcome
    previous_status: str = ""  # the contact's status before this outcome


def campaign_record(row: Any) -> CampaignRecord:
    spec = CampaignSpec.model_validate(row.spec)
    return CampaignRecord(row.id, row.name, row.uid, row.kind, row.state, spec)
