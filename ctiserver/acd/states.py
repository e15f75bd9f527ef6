"""The states an agent and a call go through, and the tables of the transitions each may make.

Both tables are the whole truth: the engine moves an agent or a call only through them, and an
input whose (state, event) pair is missing is refused with an error naming both (h11's rule: a
transition not in the table is an error, never a silent no-op). Nothing here imports anything.

Agent:  logged_out -login-> not_ready/available -offer-> reserved -ring-> ringing -answer-> on_call
        -hangup-> wrap_up -wrap_done-> available (ring_fail: not_ready "rona"; release: the caller left).
        available -device_busy-> on_call "direct" -device_free-> available: the agent's phone is busy with a
        call that is not the ACD's (a direct or transferred call, one the agent dialled, a fallback queue's):
        the ACD offers them nothing until it is free (engine.device_state; see docs/packages/acd.md).
Call:   (enqueue) waiting -offer-> offered -answer-> talking -end-> gone; offered -ring_fail-> waiting
        (back to its place); waiting/offered -abandon/withdraw-> gone; waiting -overflow-> gone (or
        -move-> waiting in another queue); waiting -redial-> gone (the caller rang in person while a
        callback kept their place: the new call takes that place).
"""

from __future__ import annotations

from enum import StrEnum


class AgentState(StrEnum):
    """An agent's state; a str, so events, APIs and comparisons with plain strings keep working."""

    LOGGED_OUT = "logged_out"
    AVAILABLE = "available"
    RESERVED = "reserved"  # picked by the engine, the ring is being set up
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    NOT_READY = "not_ready"


class CallState(StrEnum):
    """A call's state inside the engine (`gone`: it left; the engine no longer holds it)."""

    WAITING = "waiting"
    OFFERED = "offered"
    TALKING = "talking"
    GONE = "gone"


LOGGED_OUT, AVAILABLE, RESERVED, RINGING, ON_CALL, WRAP_UP, NOT_READY = (
    AgentState.LOGGED_OUT, AgentState.AVAILABLE, AgentState.RESERVED, AgentState.RINGING,
    AgentState.ON_CALL, AgentState.WRAP_UP, AgentState.NOT_READY)
WAITING, OFFERED, TALKING, GONE = CallState.WAITING, CallState.OFFERED, CallState.TALKING, CallState.GONE

# (state, input) -> next state. Anything absent raises IllegalTransition.
AGENT_TRANSITIONS: dict[tuple[AgentState, str], AgentState] = {
    (LOGGED_OUT, "login"): NOT_READY,  # or AVAILABLE when configured login_ready
    (AVAILABLE, "offer"): RESERVED,
    (AVAILABLE, "not_ready"): NOT_READY,
    (AVAILABLE, "ready"): AVAILABLE,
    (AVAILABLE, "logout"): LOGGED_OUT,
    (AVAILABLE, "device_busy"): ON_CALL,  # reason "direct": the phone is busy outside the ACD
    (RESERVED, "ring"): RINGING,
    (RESERVED, "answer"): ON_CALL,
    (RESERVED, "ring_fail"): NOT_READY,
    (RESERVED, "release"): AVAILABLE,  # caller left before the agent answered
    (RINGING, "answer"): ON_CALL,
    (RINGING, "ring_fail"): NOT_READY,
    (RINGING, "release"): AVAILABLE,
    (ON_CALL, "hangup"): WRAP_UP,
    (ON_CALL, "device_free"): AVAILABLE,  # only "direct" (or not_ready: a pending break, the phone unregistered)
    (ON_CALL, "logout"): LOGGED_OUT,  # only "direct": an ACD call is ended first
    (WRAP_UP, "wrap_done"): AVAILABLE,
    (WRAP_UP, "ready"): AVAILABLE,
    (WRAP_UP, "not_ready"): NOT_READY,
    (WRAP_UP, "logout"): LOGGED_OUT,
    (NOT_READY, "ready"): AVAILABLE,
    (NOT_READY, "not_ready"): NOT_READY,
    (NOT_READY, "logout"): LOGGED_OUT,
}

# (state, input) -> next state. Anything absent raises IllegalCallTransition.
CALL_TRANSITIONS: dict[tuple[CallState, str], CallState] = {
    (WAITING, "offer"): OFFERED,  # an agent is reserved for it
    (WAITING, "callback"): WAITING,  # the caller hangs up and keeps the place (a callback in place)
    (WAITING, "retier"): WAITING,
    (OFFERED, "retier"): OFFERED,  # only the tier changes; the ring goes on
    (WAITING, "move"): WAITING,  # overflow or escalation to another queue
    (WAITING, "overflow"): GONE,  # to voicemail, a message, a callback
    (WAITING, "redial"): GONE,  # the caller rang again in person: the new call takes the kept place
    (WAITING, "abandon"): GONE,
    (OFFERED, "abandon"): GONE,
    (WAITING, "withdraw"): GONE,
    (OFFERED, "withdraw"): GONE,
    (OFFERED, "ring"): OFFERED,  # the agent's phone began to ring
    (OFFERED, "answer"): TALKING,
    (OFFERED, "ring_fail"): WAITING,  # RONA: back to the head of its place
    (TALKING, "end"): GONE,
}

# the same table by event (the engine's hot path looks a move up in one dict), and the states each
# event is accepted in (for error messages: "call c1 is offered, not talking")
CALL_NEXT: dict[str, dict[CallState, CallState]] = {}
for (_state, _event), _to in CALL_TRANSITIONS.items():
    CALL_NEXT.setdefault(_event, {})[_state] = _to
CALL_ACCEPTS: dict[str, tuple[CallState, ...]] = {e: tuple(by_state) for e, by_state in CALL_NEXT.items()}
del _state, _event, _to
