"""Encoding of AMI actions, refusing anything that could smuggle in a second action.

panoramisk's `Action.__str__` writes values as given: a caller name or agent note
holding `\\r\\n\\r\\nAction: Originate...` becomes a second action on the wire. We
reject CR, LF and NUL in the action name, every key and every value, naming the
field (never echoing the value: it may be a secret or a customer's data).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .errors import AmiActionError

FieldValue = str | int | Sequence[str]
_FORBIDDEN = {"\r": "a carriage return (CR)", "\n": "a line feed (LF)", "\0": "a NUL byte"}
_RESERVED = "action"  # set from `name`; a second Action header would confuse Asterisk


def _check_text(field: str, text: str) -> None:
    for ch, what in _FORBIDDEN.items():
        if ch in text:
            raise AmiActionError(field, f"contains {what}")


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise AmiActionError(repr(key), "header names must be strings")
    if not key:
        raise AmiActionError(key, "header name is empty")
    _check_text(key, key)
    if ":" in key or key != key.strip() or " " in key:
        raise AmiActionError(key, "header names may not hold ':' or spaces")
    return key


def _values(key: str, value: object) -> list[str]:
    if isinstance(value, bool):  # before int: bool is an int
        return ["true" if value else "false"]
    if isinstance(value, int):
        return [str(value)]
    if isinstance(value, str):
        _check_text(key, value)
        return [value]
    if isinstance(value, Sequence):
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise AmiActionError(f"{key}[{i}]", f"expected a string, got {type(item).__name__}")
            _check_text(f"{key}[{i}]", item)
            out.append(item)
        return out
    raise AmiActionError(key, f"unsupported value type {type(value).__name__}")


def encode_action(name: str, fields: Mapping[str, FieldValue]) -> bytes:
    """`Action: name` plus one `Key: value` line per field (a sequence gives repeated lines)."""
    if not isinstance(name, str) or not name:
        raise AmiActionError("Action", "action name is empty")
    _check_text("Action", name)
    if ":" in name or " " in name:
        raise AmiActionError("Action", "action name may not hold ':' or spaces")
    lines = [f"Action: {name}"]
    for key, value in fields.items():
        key = _check_key(key)
        if key.lower() == _RESERVED:
            raise AmiActionError(key, "the action name is given separately")
        lines.extend(f"{key}: {v}" for v in _values(key, value))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def variables(values: Mapping[str, str | int]) -> list[str]:
    """`{"CTI_CALL": "x"}` to `["CTI_CALL=x"]` for an Originate `Variable` field, checked."""
    out = []
    for key, value in values.items():
        if not key or "=" in key:
            raise AmiActionError(f"Variable {key!r}", "variable names may not be empty or hold '='")
        text = f"{key}={value}"
        _check_text(f"Variable {key}", text)
        out.append(text)
    return out
