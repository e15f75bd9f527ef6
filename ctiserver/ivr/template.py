"""Prompt templates over call data: `您的欠费金额为{account.arrears:.2f}元`.

Our own tiny syntax instead of `str.format`: format's `{a.b}` is attribute access on
live objects (a template from a config file could reach into Python internals), and
its errors are not friendly. Here a field is a dotted path into plain dicts, with
an optional format spec; `{{` and `}}` are literal braces. Parsing is separate
from rendering so `ctiserver check` can list the fields a template names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
_SPEC = re.compile(r"^[<>^=]?[+\- ]?[0-9]*[,_]?(?:\.[0-9]+)?[dfgs%]?$")


class TemplateError(ValueError):
    """A template that cannot be parsed (an unclosed brace, a bad field name or format spec)."""


@dataclass(frozen=True, slots=True)
class Field:
    path: str
    spec: str = ""


Part = str | Field


@lru_cache(maxsize=4096)
def parse(template: str) -> tuple[Part, ...]:
    """Split a template into literal text and fields; raise TemplateError naming the column.

    Cached: a tree has a few hundred templates and every call renders them again.
    """
    parts: list[Part] = []
    text: list[str] = []
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch == "{":
            if i + 1 < n and template[i + 1] == "{":
                text.append("{")
                i += 2
                continue
            end = template.find("}", i + 1)
            if end < 0:
                raise TemplateError(f"unclosed '{{' at column {i + 1}")
            inner = template[i + 1:end]
            name, _, spec = inner.partition(":")
            name = name.strip()
            if not _FIELD.fullmatch(name):
                raise TemplateError(
                    f"'{{{inner}}}' at column {i + 1} is not a field like {{account.arrears}}")
            if spec and not _SPEC.match(spec):
                raise TemplateError(f"bad format spec ':{spec}' in '{{{inner}}}'")
            if text:
                parts.append("".join(text))
                text = []
            parts.append(Field(name, spec))
            i = end + 1
        elif ch == "}":
            if i + 1 < n and template[i + 1] == "}":
                text.append("}")
                i += 2
                continue
            raise TemplateError(f"single '}}' at column {i + 1} (write '}}}}' for a literal brace)")
        else:
            text.append(ch)
            i += 1
    if text:
        parts.append("".join(text))
    return tuple(parts)


def fields(template: str) -> list[str]:
    """The dotted paths a template names, in order."""
    return [p.path for p in parse(template) if isinstance(p, Field)]


_MISSING = object()


def lookup(data: Mapping[str, Any], path: str) -> Any:
    """Follow a dotted path through nested mappings; `None` when any step is missing."""
    node: Any = data
    for key in path.split("."):
        if isinstance(node, Mapping) and key in node:
            node = node[key]
        else:
            return None
    return node


def _format(value: Any, spec: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if spec:
        try:
            if spec[-1:] in ("d",) and not isinstance(value, int):
                value = int(float(value))
            elif spec[-1:] in ("f", "g", "%") and not isinstance(value, (int, float)):
                value = float(value)
            return format(value, spec)
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    return str(value)


def render(template: str | tuple[Part, ...], data: Mapping[str, Any]) -> str:
    """Fill a template; a missing value renders empty (checks catch unknown fields ahead of time)."""
    parts = parse(template) if isinstance(template, str) else template
    out: list[str] = []
    for part in parts:
        if isinstance(part, Field):
            out.append(_format(lookup(data, part.path), part.spec))
        else:
            out.append(part)
    return "".join(out)
