"""What the ACD engine says back: commands (frozen dataclasses), errors, and the agent state table.

Errors (all `AcdError`):

    AcdError
    ├── IllegalTransition   an agent input that its state does not allow (names both)
    ├── IllegalCallTransition  a call input that its state does not allow (names both)
    ├── UnknownAgent / UnknownCall / UnknownSkill / UnknownTier
    ├── DuplicateCall       enqueue of a call id that is already in the engine
    └── QueueClosed         a callback offered to a queue whose calendar is closed
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..events import Event
from . import states as _states

# Not-ready reasons the ACD sets itself (an agent picks the others from desktop.yaml not_ready_reasons):
# login (just logged in), rona (did not answer a ring), unreachable (the phone could not be rung),
# busy (not ready with no reason given), cti_restart (was on a call when the CTI restarted), server_down
# (the Asterisk their phone registers on is lost: ready again when it returns, see acd/servers.py), unregistered
# (Asterisk says their phone is unavailable, i.e. not registered: ready again when it registers).
SYSTEM_REASONS = ("login", "rona", "unreachable", "busy", "cti_restart", "server_down", "unregistered")
# on_call with this reason: the agent's phone is busy with a call that is not the ACD's (engine.device_state)
DIRECT = "direct"
UNREGISTERED = "unregistered"


class AcdError(Exception):
    """Base of every error the ACD engine raises; `error_id` is stable for APIs."""

    error_id = "acd-error"


class IllegalTransition(AcdError):
    error_id = "acd-illegal-transition"

    def __init__(self, agent_id: str, state: str, event: str) -> None:
        self.agent_id, self.state, self.event = agent_id, state, event
        super().__init__(f"agent {agent_id}: '{event}' is not allowed in state '{state}'")


class IllegalCallTransition(AcdError):
    """A call input its state does not allow (the call transition table in states.py has no entry)."""

    error_id = "acd-illegal-call-transition"

    def __init__(self, call_id: str, state: str, event: str, accepts: tuple[str, ...] = ()) -> None:
        self.call_id, self.state, self.event = call_id, str(state), event
        if accepts:  # the usual case: say which state the input needs
            msg = f"call {call_id} is {state}, not {' or '.join(str(a) for a in accepts)}"
        else:
            msg = f"call {call_id}: '{event}' is not allowed in state '{state}'"
        super().__init__(msg)


class UnknownAgent(AcdError):
    error_id = "acd-unknown-agent"


class UnknownCall(AcdError):
    error_id = "acd-unknown-call"


class UnknownSkill(AcdError):
    error_id = "acd-unknown-skill"


class UnknownTier(AcdError):
    error_id = "acd-unknown-tier"


class DuplicateCall(AcdError):
    error_id = "acd-duplicate-call"


class QueueClosed(AcdError):
    """A callback cannot be queued now: the queue's calendar is closed."""

    error_id = "acd-queue-closed"


# --- states: see states.py (re-exported here for the modules that import them from the model) ---

LOGGED_OUT, AVAILABLE, RESERVED, RINGING, ON_CALL, WRAP_UP, NOT_READY = (
    _states.LOGGED_OUT, _states.AVAILABLE, _states.RESERVED, _states.RINGING, _states.ON_CALL,
    _states.WRAP_UP, _states.NOT_READY)
TRANSITIONS = _states.AGENT_TRANSITIONS


# --- commands -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Destination:
    """Where a caller goes instead of an agent: queue / voicemail / message / callback."""

    kind: str
    target: str = ""


@dataclass(frozen=True, slots=True)
class Offer:
    """Ring `agent_id` for `call_id`. kind 'callback': dial the agent, then `number` (outbound side)."""

    call_id: str
    agent_id: str
    skill: str
    ring_timeout_s: float
    tier: str
    caller: str
    kind: Literal["inbound", "callback"] = "inbound"
    number: str = ""


@dataclass(frozen=True, slots=True)
class CancelOffer:
    """Stop ringing: the caller left, or the engine's ring guard gave up on the agent."""

    call_id: str
    agent_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Overflow:
    """The call leaves this queue (max wait, full queue, tier limit) to `destination`."""

    call_id: str
    destination: Destination
    reason: str


@dataclass(frozen=True, slots=True)
class Blocked:
    """Refused at the door (closed, full, no agents): send the caller to `destination`."""

    call_id: str
    reason: str
    destination: Destination


@dataclass(frozen=True, slots=True)
class ScheduleCallback:
    """Ask the outbound side to call `number` back before `due_ts`."""

    call_id: str
    number: str
    skill: str
    tier: str
    due_ts: float
    reason: str  # abandon | in_place (already waiting in the ACD as `call_id`) | an overflow reason
    customer: dict[str, Any] | None = None
    place_ts: float | None = None  # in_place: the place in the queue the customer keeps
    recording: str = ""  # voicemail: the caller's message (an Asterisk sound path), played to the agent first


@dataclass(frozen=True, slots=True)
class CancelCallback:
    """A scheduled callback is no longer needed: the customer redialled (as call `by_call_id`)."""

    call_id: str
    by_call_id: str
    reason: str


Command = Offer | CancelOffer | Overflow | Blocked | ScheduleCallback | CancelCallback | Event


@dataclass(frozen=True, slots=True)
class Position:
    """For announcements: 1-based place in the queue, and an estimate from live handle times."""

    position: int
    waiting: int
    est_wait_s: float | None
