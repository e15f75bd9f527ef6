"""The IVR walker's vocabulary: the actions it asks its driver to carry out, and the inputs it takes back.

    Collect  -> Digits(...) or Timeout()     Lookup -> LookupResult(...)
    Record   -> Recorded(path)               Queue  -> Queued(agent_id) (handoff done)
    Hangup   -> nothing more                 HungUp() is accepted at any time

Plain frozen records (pure): the walker (walker.py) makes and reads them, the FastAGI runtime, the terminal
walker and the tests carry them out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..events import Event


# --- actions -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Say:
    """Speak `text` (TTS) in `lang`; a key press stops it when barge_in."""

    text: str
    lang: str
    barge_in: bool = True


@dataclass(frozen=True, slots=True)
class PlayFile:
    """Play a recorded sound (Asterisk name without extension)."""

    name: str
    barge_in: bool = True


@dataclass(frozen=True, slots=True)
class Collect:
    """Read up to max_digits keys; `terminator` ends early; Timeout after timeout_s of silence."""

    max_digits: int
    timeout_s: float
    terminator: str = ""


@dataclass(frozen=True, slots=True)
class Lookup:
    provider: str
    args: dict[str, str]


@dataclass(frozen=True, slots=True)
class Record:
    name: str  # file name without extension or folder (the runtime puts it in recordings_dir)
    max_s: int
    silence_s: int
    beep: bool = True
    terminator: str = "#"


@dataclass(frozen=True, slots=True)
class Queue:
    """Hand the caller to the ACD. `tier` is the IVR's view (the customer's tier column, else the tree's
    default); `explicit` when the tree's node set it: only then does the ACD take it as given, otherwise
    the ACD's tier rules classify the customer record (important, category, consumption, the column)."""

    skill: str
    tier: str
    explicit: bool = False


@dataclass(frozen=True, slots=True)
class Hangup:
    pass


@dataclass(frozen=True, slots=True)
class LogEvent:
    event: Event


Action = Say | PlayFile | Collect | Lookup | Record | Queue | Hangup | LogEvent


# --- inputs ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Digits:
    """Keys pressed (terminator removed); may be empty (terminator alone) or hold odd keys."""

    digits: str


@dataclass(frozen=True, slots=True)
class Timeout:
    pass


@dataclass(frozen=True, slots=True)
class LookupResult:
    """A provider's answer; `data=None` or `found: false` means not found; `error` means it failed."""

    data: Mapping[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    path: str
    duration_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Queued:
    """The ACD handoff returned: the agent who served the call, or '' if none did."""

    agent_id: str = ""


@dataclass(frozen=True, slots=True)
class HungUp:
    pass


Input = Digits | Timeout | LookupResult | Recorded | Queued | HungUp


class IllegalInput(Exception):
    """An input the walker is not waiting for (names the state and the input)."""

    def __init__(self, state: str, inp: Input) -> None:
        self.state, self.input = state, inp
        super().__init__(f"IVR walker waiting for {state} got {type(inp).__name__}")
