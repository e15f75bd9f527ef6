"""One AMI frame (an event or a response) as an immutable, case-insensitive header list.

panoramisk's `Message.__getattr__` answers `''` for a header that is not there, so a
typo (`msg.uniqeid`) reads as an empty value and nobody notices. Here a missing
header is `None` from `get()` or an `AmiFieldMissing` from `require()`; repeated
headers (`ChanVariable`, `Output`, `Variable`) are all kept, in order.

Time: with `timestampevents = yes` in manager.conf every event carries Asterisk's own
`Timestamp: <epoch>.<micro>`; `when` is that, else the time the frame was read off the
socket (`received`, stamped by the reader). Durations taken from `when` do not depend on
how late the CTI got round to an event.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar, overload

from .errors import AmiFieldMissing

T = TypeVar("T")


class AmiMessage:
    """Headers of one frame, in wire order; lookups ignore case, first value wins."""

    __slots__ = ("_body", "_first", "_items", "_received", "_repeats")

    def __init__(self, items: Iterable[tuple[str, str]], body: str = "", received: float | None = None) -> None:
        self._set(tuple((str(k), str(v)) for k, v in items), body, received)

    @classmethod
    def _trusted(cls, items: tuple[tuple[str, str], ...], body: str = "",
                 received: float | None = None) -> AmiMessage:
        """Fast path for the framer, whose pairs are already str (skips the conversions)."""
        msg = cls.__new__(cls)
        msg._set(items, body, received)
        return msg

    _items: tuple[tuple[str, str], ...]
    _first: dict[str, str]
    _repeats: bool
    _body: str
    _received: float | None

    def _set(self, items: tuple[tuple[str, str], ...], body: str, received: float | None = None) -> None:
        lows = [key.lower() for key, _ in items]
        values = [value for _, value in items]
        # reversed, so that the FIRST of repeated headers is the one that stays
        first = dict(zip(reversed(lows), reversed(values), strict=True))
        setter = object.__setattr__
        setter(self, "_items", items)
        setter(self, "_first", first)
        setter(self, "_repeats", len(first) != len(items))
        setter(self, "_body", body)
        setter(self, "_received", received)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"AmiMessage is immutable (tried to set {name!r})")

    @property
    def body(self) -> str:
        """Free text of a legacy `Response: Follows` frame, else ''."""
        return self._body

    @property
    def received(self) -> float | None:
        """When the reader took this frame off the socket (epoch seconds; None if built by hand)."""
        return self._received

    @property
    def timestamp(self) -> float | None:
        """Asterisk's own time of the event (`Timestamp` header), or None when absent or unreadable."""
        return parse_timestamp(self._first.get("timestamp"))

    @property
    def when(self) -> float | None:
        """The event's time: Asterisk's `Timestamp`, else when it was read, else None."""
        stamp = self.timestamp
        return stamp if stamp is not None else self._received

    @classmethod
    def of(cls, **headers: str) -> AmiMessage:
        """Build a message from keyword headers (handy in tests and fakes)."""
        return cls(headers.items())

    # --- lookups -----------------------------------------------------------
    def get(self, name: str, default: T | None = None) -> str | T | None:
        """The first value of header `name` (any case), or `default` when absent."""
        return self._first.get(name.lower(), default)

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of a repeated header, in wire order (empty tuple when absent)."""
        low = name.lower()
        if not self._repeats:
            value = self._first.get(low)
            return () if value is None else (value,)
        return tuple(v for k, v in self._items if k.lower() == low)

    def require(self, name: str) -> str:
        """The first value of `name`; raises AmiFieldMissing naming the header and the frame kind."""
        value = self._first.get(name.lower())
        if value is None:
            raise AmiFieldMissing(name, self.event or self.get("Response") or "frame")
        return value

    def variables(self, name: str = "ChanVariable") -> dict[str, str]:
        """Repeated `NAME=value` headers as a dict (e.g. ChanVariable, Variable); bad items skipped."""
        out: dict[str, str] = {}
        for item in self.get_all(name):
            key, sep, value = item.partition("=")
            if sep and key:
                out[key] = value
        return out

    # --- what kind of frame ---------------------------------------------------
    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    @property
    def is_response(self) -> bool:
        """A reply to an action. `OriginateResponse` events carry a Response header too: events win."""
        return "response" in self._first and "event" not in self._first

    @property
    def is_event(self) -> bool:
        return "event" in self._first

    @property
    def success(self) -> bool:
        """A response of Success/Follows/Goodbye (events count as success)."""
        if not self.is_response:
            return True
        return (self.response or "").lower() in ("success", "follows", "goodbye")

    @property
    def items(self) -> tuple[tuple[str, str], ...]:
        return self._items

    def as_dict(self) -> dict[str, str]:
        """First value per header, keys as sent (for JSON, logs and screen-pops)."""
        out: dict[str, str] = {}
        for key, value in self._items:
            out.setdefault(key, value)
        return out

    # --- dunder ----------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AmiMessage):
            return NotImplemented
        return self._items == other._items and self._body == other._body

    def __hash__(self) -> int:
        return hash((self._items, self._body))

    def __repr__(self) -> str:
        head = f"Event={self.event!r}" if self.event else f"Response={self.response!r}"
        return f"<AmiMessage {head} headers={len(self._items)}>"


def parse_timestamp(value: object) -> float | None:
    """`1717171717.123456` -> epoch seconds; None for a missing, garbled, non-finite or non-positive value."""
    if value is None:
        return None
    try:
        stamp = float(str(value).strip())
    except ValueError:
        return None
    return stamp if math.isfinite(stamp) and stamp > 0 else None


@overload
def event_time(msg: Any, default: float) -> float: ...


@overload
def event_time(msg: Any, default: None = None) -> float | None: ...


def event_time(msg: Any, default: float | None = None) -> float | None:
    """When an AMI event happened: its `when` (AmiMessage), else its `Timestamp` header (any object with
    `get`, e.g. a dict in tests), else `default` (the caller's clock)."""
    when = getattr(msg, "when", None) if isinstance(msg, AmiMessage) else parse_timestamp(msg.get("Timestamp"))
    return default if when is None else float(when)


def messages_named(messages: Sequence[AmiMessage], event: str) -> list[AmiMessage]:
    """The messages whose Event header equals `event` (any case)."""
    want = event.lower()
    return [m for m in messages if (m.event or "").lower() == want]
