"""The dialer's `Originator` over our AMI client (ctiserver.ami.client.AmiClient).

Originate goes out with `Async: true` and our `ChannelId`, once: the AMI client
never re-sends an action, and neither do we. Asterisk answers at once ("queued")
and later sends `OriginateResponse`; when the channel could not even be created
that event has no usable Uniqueid, so we remember which ActionID carried which
ChannelId (`channel_for_action`) for the outcome reader. Liveness is asked with
`Status` (listing every channel), cached for a second so a reconcile of many
attempts costs one request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..numbers import is_ascii_digits
from .dialer import OriginateNotSent, OriginateRejected, safe_value

ACTION_MEMORY = 4096  # ActionIDs remembered (far more than calls in flight)


class AmiReply(Protocol):
    @property
    def success(self) -> bool: ...

    @property
    def message(self) -> str: ...

    @property
    def response(self) -> Any: ...

    @property
    def events(self) -> Sequence[Any]: ...


class AmiActions(Protocol):
    async def action(self, name: str, fields: Mapping[str, Any] | None = None, /) -> Any: ...


class AmiOriginator:
    def __init__(self, client: AmiActions, *, channel: str, caller_id: str,
                 live_cache_s: float = 1.0) -> None:
        self.client = client
        self.channel = channel
        self.caller_id = caller_id
        self.live_cache_s = live_cache_s
        self._by_action: OrderedDict[str, str] = OrderedDict()
        self._live: tuple[float, frozenset[str]] | None = None

    async def originate(self, channel_id: str, number: str, context: str, exten: str,
                        variables: dict[str, str], timeout_s: float) -> None:
        if not is_ascii_digits(number):
            raise OriginateRejected(f"refusing to dial {number!r}: ASCII digits only")
        if not self.ready():
            raise OriginateNotSent("the AMI link is down")
        fields: dict[str, Any] = {
            "Channel": self.channel.format(number=number),
            "Context": context,
            "Exten": exten,
            "Priority": "1",
            "Timeout": str(int(timeout_s * 1000)),
            "CallerID": self.caller_id,
            "Async": "true",
            "ChannelId": channel_id,
            "Variable": [f"{k}={safe_value(v)}" for k, v in variables.items()],
        }
        reply = await self.client.action("Originate", fields)
        action_id = reply.response.get("ActionID") if reply.response is not None else None
        if action_id:
            self._by_action[action_id] = channel_id
            while len(self._by_action) > ACTION_MEMORY:
                self._by_action.popitem(last=False)
        if not reply.success:
            if "shutting down" in (reply.message or "").lower():
                raise OriginateNotSent(reply.message)
            raise OriginateRejected(reply.message or "Originate refused")
        self._live = None

    def ready(self) -> bool:
        """The AMI link is up (the dialer starts no attempt while it is not)."""
        return bool(getattr(self.client, "connected", True))

    def channel_for_action(self, action_id: str) -> str | None:
        return self._by_action.get(action_id)

    async def is_live(self, channel_id: str) -> bool:
        now = time.monotonic()
        if self._live is None or now - self._live[0] > self.live_cache_s:
            # `Status` (class call, which Originate needs anyway) rather than CoreShowChannels
            # (class system/reporting, which the CTI's AMI user need not have).
            reply = await self.client.action("Status", {})
            if not reply.success:
                raise ConnectionError(f"Status failed: {reply.message}")
            ids = frozenset(str(ev.get("Uniqueid") or "") for ev in reply.events)
            self._live = (now, ids)
        return channel_id in self._live[1]
