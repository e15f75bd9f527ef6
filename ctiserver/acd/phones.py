"""What an agent's phone, as Asterisk reports it, does to the agent: the device-state rule.

Busy while the ACD offers them a caller or they talk to one is the ACD's own call: noted, nothing moves.
Busy otherwise (a direct call, one they dialled, a transfer or a fallback queue's call): an available
agent goes on_call "direct" and is offered nothing; wrap-up and breaks run on, and whoever would become
available then goes on_call "direct" instead (`to_work`). Free again: back to available (or to a break
asked for meanwhile) and offered the next caller. Unavailable (not registered): an available agent becomes
not ready "unregistered", ready again when the phone is back.
"""

from __future__ import annotations

from .agents import Roster
from .model import DIRECT, UNREGISTERED, Command
from .offers import Offers
from .records import DEVICE_BUSY, DEVICE_UNAVAILABLE, Agent, Call
from .states import AVAILABLE, NOT_READY, ON_CALL, AgentState


class Phones:
    """The device-state rule over the roster's transition table and the offers."""

    def __init__(self, roster: Roster, offers: Offers) -> None:
        self._move = roster.move
        self._offers = offers

    def device_state(self, a: Agent, device: str, now: float, out: list[Command]) -> None:
        """The agent's phone is now `device` (records.DEVICE_*; see the module docstring)."""
        if device == a.device and not (a.state == NOT_READY and a.reason == UNREGISTERED):
            return
        a.device = device
        state = a.state
        a.device_own = device == DEVICE_BUSY and a.call is not None  # reserved, ringing or talking (the ACD's)
        if state == AVAILABLE:
            if device == DEVICE_BUSY:
                self._move(a, "device_busy", now, out, reason=DIRECT)
            elif device == DEVICE_UNAVAILABLE:
                self._move(a, "not_ready", now, out, reason=UNREGISTERED)
            else:  # still available since the ACD's own call: now free to take the next
                self._offers.agent_free(a, now, out)
        elif state == ON_CALL and a.call is None:  # on_call "direct"
            if device == DEVICE_BUSY:
                return
            if a.pending_not_ready is not None:
                reason, a.pending_not_ready = a.pending_not_ready, None
                self._move(a, "device_free", now, out, to=NOT_READY, reason=reason)
            else:
                self.to_work(a, "device_free", now, out)
        elif state == NOT_READY and a.reason == UNREGISTERED and device != DEVICE_UNAVAILABLE:
            self.to_work(a, "ready", now, out)  # registered again

    def to_work(self, a: Agent, event: str, now: float, out: list[Command], *, call: Call | None = None,
                free_to: AgentState | None = None) -> None:
        """The agent is done (ready, wrap-up over, a caller left, the phone free): available and offered
        the next caller, unless their phone says otherwise: busy outside the ACD (on_call "direct"), not
        registered (not ready "unregistered"), or still busy from the ACD's own call (available, offered
        nothing until it is free)."""
        device = a.device
        if device == DEVICE_UNAVAILABLE:
            self._move(a, event, now, out, to=NOT_READY, reason=UNREGISTERED, call=call)
        elif device == DEVICE_BUSY and not a.device_own:
            self._move(a, event, now, out, to=ON_CALL, reason=DIRECT, call=call)
        else:
            self._move(a, event, now, out, to=free_to, call=call)
            self._offers.agent_free(a, now, out)
