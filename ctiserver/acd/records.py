"""The engine's two mutable records, an agent and a call, and the one way a call changes state.

Both are slotted and compared by identity (they sit in heaps and sets). The engine's parts share
them: the roster (agents.py) owns agents, the queues (queues.py) own calls, selection
(selection.py) pairs them, the timers (timers.py) fire on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..events import Event
from .model import Destination, IllegalCallTransition
from .states import CALL_ACCEPTS, CALL_NEXT, LOGGED_OUT, WAITING, AgentState, CallState

# The agent's phone, from Asterisk's device state (AMI DeviceStateChange): NOT_INUSE (and UNKNOWN: no word)
# is free; INUSE, BUSY, RINGING, RINGINUSE, ONHOLD busy; UNAVAILABLE (not registered) and INVALID unavailable.
DEVICE_FREE, DEVICE_BUSY, DEVICE_UNAVAILABLE = "free", "busy", "unavailable"
DEVICE_STATUSES = (DEVICE_FREE, DEVICE_BUSY, DEVICE_UNAVAILABLE)

# VIP phases: account agent only, + VIP desk, + everyone with the skill
PH_ACCOUNT, PH_DESK, PH_ALL = 0, 1, 2


@dataclass(slots=True, eq=False)
class Agent:
    id: str
    skills: dict[str, int]
    state: AgentState = LOGGED_OUT
    reason: str | None = None
    since: float | None = None  # when the current state began; None: logged out since before we knew
    idle_since: float = 0.0
    order: int = 0  # stable tie-break (config order)
    version: int = 0
    call: Call | None = None
    wrap_until: float | None = None
    wrap_skill: str | None = None
    pending_not_ready: str | None = None
    published: bool = False  # in the free-agent heaps (only while available and nothing to take)
    server: str = ""  # the Asterisk server the agent's phone registers on ("": the only one)
    device: str = "free"  # the phone as Asterisk says: free / busy / unavailable (DEVICE_* below)
    device_own: bool = False  # busy since during the ACD's own offer or call (not a call outside the ACD)


@dataclass(slots=True, eq=False)
class Call:
    id: str
    skill: str
    tier: str
    rank: int
    caller: str
    customer: dict[str, Any] | None
    account_agent: str | None
    arrived: float
    place_ts: float  # orders the call within its tier (kept across RONA, redial, re-tier)
    seq: int
    queue_entered: float
    state: CallState = WAITING
    version: int = 0
    pools: tuple[tuple[str, int], ...] = ()
    min_prof: int = 1
    extra_skills: tuple[str, ...] = ()
    phase: int = PH_ALL
    phase_at: float | None = None
    step: int = 0
    step_at: float | None = None
    aging_at: float | None = None
    maxwait_at: float | None = None
    maxwait_dest: Destination | None = None
    maxwait_reason: str = ""
    agent: Agent | None = None
    offered_at: float = 0.0
    rang_at: float | None = None  # when the offered agent's phone really began to ring (Asterisk's DialBegin)
    ring_deadline: float | None = None
    answered_at: float = 0.0
    offers: int = 0
    in_place: bool = False  # callback in place of waiting: the caller is off the line
    number: str = ""
    redial: bool = False
    kind: str = ""  # "" a customer's call; "consult": an agent's warm-transfer leg; "return": back from a transfer
    caller_name: str = ""  # the CallerID name Asterisk gave
    prefer: str | None = None  # an agent offered this call before anyone else (the one it comes back to)
    lang: str = ""  # the caller's language
    server: str = ""  # the Asterisk server the caller is on ("": unknown or the only one)


def call_next(call: Call, event: str) -> CallState:
    """The state `event` takes `call` to, from the table; IllegalCallTransition when it has no entry."""
    nxt = CALL_NEXT.get(event, _NONE).get(call.state)
    if nxt is None:
        raise IllegalCallTransition(call.id, call.state, event, CALL_ACCEPTS.get(event, ()))
    return nxt


def call_move(call: Call, event: str) -> None:
    """Apply the call transition table (see states.py)."""
    nxt = CALL_NEXT.get(event, _NONE).get(call.state)
    if nxt is None:
        raise IllegalCallTransition(call.id, call.state, event, CALL_ACCEPTS.get(event, ()))
    call.state = nxt


_NONE: dict[CallState, CallState] = {}


def call_event(kind: str, now: float, call: Call, agent_id: str | None, /, **data: Any) -> Event:
    """An event about `call` (its queue and tier filled in)."""
    return Event(kind, now, call.id, agent_id, call.skill, call.tier, None, data)  # positional: hot path
