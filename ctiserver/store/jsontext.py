"""JSON text for event data that never fails on an odd value.

Event `data` comes from many features and, through them, from callers, AMI and
browsers. One unexpected value must not stop the event (or the batch it is in):
objects JSON cannot express (datetime, Decimal, enum, set) become their str(),
non-string keys become str keys, and text that is not valid Unicode (a lone
surrogate) is \\u-escaped instead of failing the UTF-8 encoding.
"""

from __future__ import annotations

import json
from typing import Any


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_ENCODERS = {(nan, compact): json.JSONEncoder(ensure_ascii=False, default=str, allow_nan=nan,
                                               separators=(",", ":") if compact else None)
             for nan in (False, True) for compact in (False, True)}  # made once: one per call cost more than the text


def dumps(value: Any, *, allow_nan: bool = True, compact: bool = False) -> str:
    """`value` as JSON text; Chinese stays readable. Raises ValueError only for NaN/Infinity
    when `allow_nan` is False (PostgreSQL's json type has no NaN)."""
    encoder = _ENCODERS[(allow_nan, compact)]
    try:
        text = encoder.encode(value)
    except TypeError:  # keys JSON cannot have (tuples, objects)
        value = _plain(value)
        text = encoder.encode(value)
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:  # a lone surrogate: escaped, so the text is valid UTF-8
            seps = (",", ":") if compact else None
            text = json.dumps(value, ensure_ascii=True, default=str, allow_nan=allow_nan, separators=seps)
    return text
