"""The callback key from Asterisk: AMI `DTMFEnd` (a key a waiting caller pressed) to their session.

With `key_source: ami` (acd.yaml) a waiting caller's FastAGI session sends no command to listen for
the key: Asterisk reports every key a channel receives (class dtmf, `Direction: Received`), even while
the session is idle and music plays, so the CTI learns of it without polling `WAIT FOR DIGIT` twice a
second per waiting caller. The call is found by Linkedid; `AcdRuntime.key_pressed` takes the key only
on the held caller's own channel, only the callback key, only while they wait.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class _Keys(Protocol):
    def key_pressed(self, call_id: str, channel: str, digit: str) -> bool: ...


def callback_key_listener(acd: _Keys) -> Callable[[str, Any], None]:
    """An AMI listener (server name, message) for the CTI server's `ami_listeners`."""

    def listener(server: str, msg: Any) -> None:
        if msg.get("Event") == "DTMFEnd" and msg.get("Direction") == "Received":
            call_id = msg.get("Linkedid")
            if call_id:
                acd.key_pressed(str(call_id), str(msg.get("Channel") or ""), str(msg.get("Digit") or ""))

    return listener
