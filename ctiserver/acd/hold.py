"""Hold time from Asterisk: AMI `Hold`/`Unhold` (an agent's phone put the caller on hold) to the ACD.

The call is found by Linkedid, the id the ACD knows the caller by. Only talking calls
count (the music a waiting caller hears is not a hold); `AcdRuntime.note_hold` sums the
periods and the completed call reports them as `hold_s`, apart from talk time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ..ami.message import event_time


class _Holds(Protocol):
    def note_hold(self, call_id: str, on: bool, when: float | None = None) -> bool: ...


def hold_listener(acd: _Holds) -> Callable[[str, Any], None]:
    """An AMI listener (server name, message) for the CTI server's `ami_listeners`."""

    def listener(server: str, msg: Any) -> None:
        event = msg.get("Event")
        if event in ("Hold", "Unhold"):
            call_id = msg.get("Linkedid") or msg.get("Uniqueid")
            if call_id:
                acd.note_hold(str(call_id), event == "Hold", event_time(msg))  # as Asterisk stamped it

    return listener
