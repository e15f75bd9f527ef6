"""The KPI report as text: an aligned table for a terminal, CSV for a spreadsheet, JSON as is."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from .headers import header

HEADLINE = ("calls_offered", "answered", "service_level", "asa_s", "abandon_rate", "call_loss_rate",
            "aht_s", "occupancy", "fcr_rate")


QC_COLUMNS = ("qc_inspected", "qc_avg_score", "qc_pass_rate", "qc_fatal")  # the report's QC section

def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1 else f"{v:.1f}"
    if isinstance(v, dict):
        return " ".join(f"{k}={n}" for k, n in v.items())
    return str(v)


def _grid(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in header], *[[_cell(v) for v in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_table(report: dict[str, Any]) -> str:
    by = report["by"]
    rows = [[*(r["key"].get(d) for d in by), *(r["metrics"][m] for m in HEADLINE)] for r in report["rows"]]
    if by or not rows:  # without groupings the one row is the total already
        rows.append([*(["TOTAL", *[""] * (len(by) - 1)] if by else []), *(report["total"][m] for m in HEADLINE)])
    parts = [f"KPI report {report['from']} .. {report['to']} ({report['timezone']})",
             _grid([*by, *HEADLINE], rows), "", "Tiers",
             _grid(["tier", "offered", "answered", "service_level", "target", "met", "asa_s"],
                   [[t["tier"], t["calls_offered"], t["answered"], t["service_level"], t["target"], t["met"],
                     t["asa_s"]] for t in report["tiers"]]),
             "", "Targets",
             _grid(["metric", "op", "target", "actual", "met"],
                   [[t["metric"], t["op"], t["target"], t["actual"], t["met"]] for t in report["targets"]])]
    if report["staffing"]:
        parts += ["", "Staffing (Erlang C)",
                  _grid(["halfhour", "arrivals", "aht_s", "erlangs", "needed", "logged_in", "sl_logged_in"],
                        [[s["halfhour"], s["arrivals"], s["aht_s"], s["load_erlangs"], s["agents_needed"],
                          s["agents_logged_in"], s["sl_with_logged_in"]] for s in report["staffing"]])]
    qc_rows = [r for r in report["rows"] if r["metrics"].get("qc_inspected")]
    if qc_rows or report["total"].get("qc_inspected"):
        parts += ["", "Quality inspection (QC)",
                  _grid([*by, *QC_COLUMNS],
                        [*([*(r["key"].get(d) for d in by), *(r["metrics"][c] for c in QC_COLUMNS)] for r in qc_rows),
                         [*(["TOTAL", *[""] * (len(by) - 1)] if by else []),
                          *(report["total"][c] for c in QC_COLUMNS)]])]
    if report["outbound"]["rows"]:
        ob_cols = ("contacts", "attempts", "reach_rate", "confirm_rate", "machine_rate",
                   "attempts_per_contact")
        okeys = list(report["outbound"]["rows"][0]["key"])
        parts += ["", "Outbound",
                  _grid([*okeys, *ob_cols], [[*r["key"].values(), *(r["metrics"][c] for c in ob_cols)]
                                             for r in report["outbound"]["rows"]])]
    for sec in report.get("sections", {}).values():  # what `--with` added (kpi/cli.py Section)
        parts += ["", sec["title"], _grid(sec["columns"], [[r.get(c) for c in sec["columns"]] for r in sec["rows"]]),
                  *sec["notes"]]
    return "\n".join(parts) + "\n"


def _section_rows(report: dict[str, Any]) -> list[list[Any]]:
    """Each added section below the report: a blank line, its title, its header and rows."""
    out: list[list[Any]] = []
    for sec in report.get("sections", {}).values():
        out += [[], [sec["title"]], list(sec["columns"]),
                *[[_csv_value(r.get(c)) for c in sec["columns"]] for r in sec["rows"]]]
    return out


def _sheet_rows(report: dict[str, Any], lang: str = "en", names: dict[str, Any] | None = None) -> list[list[Any]]:
    """Header and one line per row plus a TOTAL line; every scalar metric a column (dispositions as k=v)."""
    by = report["by"]
    metric_names = list(report["total"])
    total = header("TOTAL", lang)
    out: list[list[Any]] = [[*(header(d, lang, names) for d in by), *(header(m, lang, names) for m in metric_names)]]
    for r in report["rows"]:
        out.append([*("" if r["key"][d] is None else r["key"][d] for d in by),
                    *(_csv_value(r["metrics"][m]) for m in metric_names)])
    if by or not report["rows"]:  # without groupings the one row is the total already
        out.append([*([total, *[""] * (len(by) - 1)] if by else []),
                    *(_csv_value(report["total"][m]) for m in metric_names)])
    return out


def format_csv(report: dict[str, Any], lang: str = "en", names: dict[str, Any] | None = None) -> str:
    """The report as CSV (headers: metric keys, or Chinese with lang="zh")."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([*_sheet_rows(report, lang, names), *_section_rows(report)])
    return buf.getvalue()


TIER_COLS = ("tier", "calls_offered", "sl_offered", "answered", "threshold_s", "target", "service_level", "met",
             "asa_s", "abandon_rate")


def format_xlsx(report: dict[str, Any], lang: str = "en", names: dict[str, Any] | None = None) -> bytes:
    """The report as an Excel workbook: sheet "report" (the CSV's columns) and sheet "tiers"."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "report"
    for row in _sheet_rows(report, lang, names):
        ws.append([None if v == "" else v for v in row])
    ws.freeze_panes = "A2"
    tiers = wb.create_sheet("tiers")
    tiers.append([header(c, lang, names) for c in TIER_COLS])
    for t in report["tiers"]:
        tiers.append([t.get(c) for c in TIER_COLS])
    for name, sec in report.get("sections", {}).items():  # one sheet per added section
        sheet = wb.create_sheet(name[:31])
        sheet.append(list(sec["columns"]))
        for r in sec["rows"]:
            sheet.append([_csv_value(r.get(c)) for c in sec["columns"]])
        sheet.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, dict):
        return ";".join(f"{k}={n}" for k, n in v.items())
    return v


def format_json(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


FORMATTERS = {"table": format_table, "csv": format_csv, "json": format_json}
BINARY_FORMATTERS = {"xlsx": format_xlsx}
