"""An action's reply as the AMI client pairs it: the Response frame, and for list actions every event up
to the closing `...Complete` (collected while in flight by `Pending`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .errors import AmiResponseError
from .message import AmiMessage


@dataclass(frozen=True, slots=True)
class AmiResponse:
    """The response to one action, plus (for list actions) every event up to and including
    the closing `...Complete` event (`EventList: Complete`, which carries `ListItems`)."""

    response: AmiMessage
    events: tuple[AmiMessage, ...] = ()

    @property
    def success(self) -> bool:
        return self.response.success

    @property
    def message(self) -> str:
        return self.response.get("Message", "") or ""

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.response.get(name, default)

    def raise_for_error(self, action: str = "action") -> AmiResponse:
        """Return self, or raise AmiResponseError when Asterisk said Error."""
        if not self.success:
            raise AmiResponseError(action, self.message or "Error")
        return self


@dataclass(slots=True)
class Pending:
    """An action in flight: its future, its Response once read, and a list action's events so far."""

    name: str
    future: asyncio.Future[AmiResponse]
    response: AmiMessage | None = None
    listing: bool = False
    events: list[AmiMessage] = field(default_factory=list)


def ends_list(msg: AmiMessage) -> bool:
    return (msg.get("EventList") or "").lower() == "complete" or (msg.event or "").endswith("Complete")
