"""A scripted caller on a fake AGI channel, and a TTS stand-in that names prompts without rendering."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from ctiserver.agi.channel import AgiHangup, AgiReply


@dataclass
class ScriptedCaller:
    """Answers AGI commands like Asterisk would for a caller following `presses`.

    Each press is a key, `None` (let WAIT FOR DIGIT time out), or `!k` (press k during the
    current interruptible prompt: barge-in). When the presses run out the caller hangs up.
    """

    presses: Sequence[str | None]
    headers_in: dict[str, str] = field(default_factory=dict)
    linkedid: str | None = "1700000000.42"
    missing_sounds: set[str] = field(default_factory=set)
    path_in: str = "ivr"
    delay_s: float = 0.0  # per command: a network round trip
    commands: list[str] = field(default_factory=list)
    played: list[str] = field(default_factory=list)
    hung_up: bool = False

    def __post_init__(self) -> None:
        self._left = list(self.presses)

    @property
    def headers(self) -> dict[str, str]:
        return {"agi_callerid": "13800000002", "agi_uniqueid": "1700000000.43", "agi_channel": "PJSIP/trunk-0001",
                **self.headers_in}

    @property
    def path(self) -> str:
        return self.path_in

    async def execute(self, command: str) -> AgiReply:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        else:
            await asyncio.sleep(0)
        if self.hung_up:
            raise AgiHangup("the caller hung up")
        self.commands.append(command)
        verb = command.split(" ")[0]
        if command.startswith("GET VARIABLE CHANNEL(linkedid)"):
            return AgiReply(200, "1", self.linkedid) if self.linkedid else AgiReply(200, "0")
        if command.startswith("STREAM FILE"):
            _, _, name, escape = command.split(" ", 3)
            self.played.append(name)
            if name in self.missing_sounds:
                return AgiReply(200, "-1", "endpos=0")
            if escape != '""' and self._left and isinstance(self._left[0], str) and self._left[0].startswith("!"):
                key = self._left.pop(0)[1]
                return AgiReply(200, str(ord(key)), "endpos=800")
            return AgiReply(200, "0", "endpos=16000")
        if command.startswith("WAIT FOR DIGIT"):
            if not self._left:
                self.hung_up = True
                raise AgiHangup("the caller hung up")
            press = self._left.pop(0)
            if press is None:
                return AgiReply(200, "0")
            return AgiReply(200, str(ord(press.lstrip("!"))))
        if verb == "HANGUP":
            self.hung_up = True
            return AgiReply(200, "1")
        if verb == "CHANNEL":
            return AgiReply(200, "6")
        return AgiReply(200, "0")


class NamingTts:
    """Stands in for Tts in runtime tests: same names (cti/<hash>), no synthesis, records what was said."""

    def __init__(self) -> None:
        self.said: list[tuple[str, str]] = []

    async def sound(self, text: str, lang: str) -> str:
        self.said.append((text, lang))
        return "cti/" + hashlib.sha256(f"{text}\x1f{lang}".encode()).hexdigest()[:24]
