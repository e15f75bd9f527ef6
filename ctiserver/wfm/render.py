"""Forecast, staffing and roster results as a table, CSV or JSON (the `--format` of the wfm commands).

A result is a dict: {"title", "columns", "rows", "notes": [...], plus anything for JSON}. Pure.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) >= 10 or v == 0 else f"{v:.2f}"
    return str(v)


def format_table(result: dict[str, Any]) -> str:
    cols: list[str] = result["columns"]
    rows = [[_cell(r.get(c)) for c in cols] for r in result["rows"]]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    lines = [str(result.get("title", ""))] if result.get("title") else []
    lines += [f"  {n}" for n in result.get("notes", [])]
    lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines) + "\n"


def format_csv(result: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=result["columns"], extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in result["rows"]:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


def format_json(result: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in result.items() if k != "columns"}, ensure_ascii=False, indent=1,
                      default=str) + "\n"


FORMATTERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "table": format_table, "csv": format_csv, "json": format_json}
