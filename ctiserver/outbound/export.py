"""The not-reached export of a campaign, for the billing office (`campaign results --not-reached-csv` and
`GET /api/outbound/campaigns/{name}/not-reached.csv`)."""

from __future__ import annotations

import csv
import io
from typing import Any

from .contacts import control_character


def not_reached_csv(rows: list[dict[str, Any]]) -> str:
    """The export for the billing office; UTF-8 with BOM so Excel shows the Chinese names."""
    base = ["number", "name", "account", "area", "priority", "attempts", "last_outcome"]
    extra = sorted({k for r in rows for k in r} - set(base))
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=base + extra, extrasaction="ignore", lineterminator="\r\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(r.get(k, "")) for k in base + extra})
    return "\ufeff" + out.getvalue()


def _cell(value: Any) -> Any:
    # A cell starting with = + - @ is a formula to a spreadsheet: keep it text. Control characters
    # (rows stored before imports refused them) are written as visible \xNN / \uNNNN, never raw.
    text = str(value)
    if control_character(text) is not None:
        text = "".join(ch if control_character(ch) is None else f"\\x{ord(ch):02x}" if ord(ch) < 256
                       else f"\\u{ord(ch):04x}" for ch in text)
        value = text
    return "'" + text if text[:1] in ("=", "+", "-", "@") else value
