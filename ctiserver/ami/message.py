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
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar, overload

from .errors import AmiFieldMissing

T = TypeVar("T")


class AmiMessage:
    """Headers of one frame, in wire order; lookups ignore case, first value wins.

    Two forms behind one API. Built from (key, value) pairs (tests, fakes, the framer's slow path),
    it holds a dict. Built by the framer from a clean frame (`_from_frame`), it holds the frame's bytes
    and their lower-cased copy, and `get` finds one header with a bytes search and decodes only that
    value: an event whose handlers read five of its twenty headers decodes five. The frame was checked
    as UTF-8 and as `Key: value` lines when it was cut, so a lookup cannot fail.
    """

    __slots__ = ("_body", "_event", "_first", "_items", "_low", "_raw", "_received")

    def __init__(self, items: Iterable[tuple[str, str]], body: str = "", received: float | None = None) -> None:
        self._set(tuple((str(k), str(v)) for k, v in items), body, received)

    @classmethod
    def _trusted(cls, items: tuple[tuple[str, str], ...], body: str = "",
                 received: float | None = None) -> AmiMessage:
        """Fast path for the framer, whose pairs are already str (skips the conversions)."""
        msg = cls.__new__(cls)
        msg._set(items, body, received)
        return msg

    @classmethod
    def _from_frame(cls, raw: bytes, low: bytes, received: float | None) -> AmiMessage:
        """The framer's fast path. `raw`: b"\\n" + the frame's `Key: value` lines, each ending in \\n (CRLF or
        LF), valid UTF-8; `low`: `raw.lower()` (ASCII only, so offsets match)."""
        msg = _new(cls)
        _set_raw(msg, raw)
        _set_low(msg, low)
        _set_received(msg, received)
        _set_items(msg, None)
        _set_first(msg, None)
        _set_body(msg, "")
        if low.startswith(b"\nevent:"):  # nearly every frame: the event name is the first line
            _set_event(msg, _value(raw, 7))
        else:
            i = low.find(b"\nevent:")
            _set_event(msg, None if i < 0 else _value(raw, i + 7))
        return msg

    _items: tuple[tuple[str, str], ...] | None
    _first: dict[str, str] | None
    _raw: bytes | None
    _low: bytes
    _event: str | None
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
        setter(self, "_raw", None)
        setter(self, "_low", b"")
        setter(self, "_event", first.get("event"))
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
        if self._raw is None:
            return parse_timestamp(self._first.get("timestamp") if self._first is not None else None)
        i = self._low.find(b"\ntimestamp:")
        return None if i < 0 else parse_timestamp(_raw_value(self._raw, i + 11))

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
        raw = self._raw
        if raw is None:
            return self._first.get(name.lower(), default)  # type: ignore[union-attr]
        needle = _NEEDLES.get(name) or _needle(name)
        i = self._low.find(needle)
        return default if i < 0 else _value(raw, i + len(needle))

    def get_all(self, name: str) -> tuple[str, ...]:
        """Every value of a repeated header, in wire order (empty tuple when absent)."""
        raw = self._raw
        if raw is None:
            low = name.lower()
            return tuple(v for k, v in self._items or () if k.lower() == low)
        needle = _NEEDLES.get(name) or _needle(name)
        found: list[str] = []
        i = self._low.find(needle)
        while i >= 0:
            found.append(_value(raw, i + len(needle)))
            i = self._low.find(needle, i + len(needle))
        return tuple(found)

    def require(self, name: str) -> str:
        """The first value of `name`; raises AmiFieldMissing naming the header and the frame kind."""
        value = self.get(name)
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
        return self._event

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    @property
    def is_response(self) -> bool:
        """A reply to an action. `OriginateResponse` events carry a Response header too: events win."""
        return self._event is None and "response" in self

    @property
    def is_event(self) -> bool:
        return self._event is not None

    @property
    def success(self) -> bool:
        """A response of Success/Follows/Goodbye (events count as success)."""
        if not self.is_response:
            return True
        return (self.response or "").lower() in ("success", "follows", "goodbye")

    @property
    def items(self) -> tuple[tuple[str, str], ...]:
        items = self._items
        if items is None:  # a frame held as bytes: its pairs, decoded once, on first use
            items = tuple((k.decode(), v.decode()) for k, v in _PAIR.findall(self._raw or b""))
            object.__setattr__(self, "_items", items)
        return items

    def as_dict(self) -> dict[str, str]:
        """First value per header, keys as sent (for JSON, logs and screen-pops)."""
        out: dict[str, str] = {}
        for key, value in self.items:
            out.setdefault(key, value)
        return out

    # --- dunder ----------------------------------------------------------------
    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if self._raw is None:
            return name.lower() in self._first  # type: ignore[operator]
        return (_NEEDLES.get(name) or _needle(name)) in self._low

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AmiMessage):
            return NotImplemented
        return self.items == other.items and self._body == other._body

    def __hash__(self) -> int:
        return hash((self.items, self._body))

    def __repr__(self) -> str:
        head = f"Event={self.event!r}" if self.event else f"Response={self.response!r}"
        return f"<AmiMessage {head} headers={len(self.items)}>"


_new = object.__new__
_set_raw = AmiMessage.__dict__["_raw"].__set__  # slot setters: past the immutability guard, for the framer
_set_low = AmiMessage.__dict__["_low"].__set__
_set_received = AmiMessage.__dict__["_received"].__set__
_set_items = AmiMessage.__dict__["_items"].__set__
_set_first = AmiMessage.__dict__["_first"].__set__
_set_body = AmiMessage.__dict__["_body"].__set__
_set_event = AmiMessage.__dict__["_event"].__set__
# one `Key: value` line of a held frame, as its lookups read it: one optional space after the colon,
# one CR before the LF taken off
_PAIR = re.compile(rb"\n([^:\s]+): ?([^\n]*?)\r?(?=\n)")
_NEEDLES: dict[str, bytes] = {}  # header name as callers spell it -> b"\\n" + lower-case name + b":"


def _needle(name: str) -> bytes:
    needle = b"\n" + name.lower().encode("utf-8", "replace") + b":"
    if len(_NEEDLES) < 4096:  # names come from code, not from the wire; the bound is only a guard
        _NEEDLES[name] = needle
    return needle


def _raw_value(raw: bytes, i: int) -> bytes:
    """The value whose text starts at `i` (just after `Key:`), up to its line's end."""
    if raw[i] == 0x20:
        i += 1
    j = raw.index(b"\n", i)
    if j > i and raw[j - 1] == 0x0D:
        j -= 1
    return raw[i:j]


def _value(raw: bytes, i: int) -> str:
    return _raw_value(raw, i).decode()


def parse_timestamp(value: object) -> float | None:
    """`1717171717.123456` -> epoch seconds; None for a missing, garbled, non-finite or non-positive value."""
    if value is None:
        return None
    try:
        stamp = float(value if isinstance(value, bytes) else str(value).strip())
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
