"""A roster as CSV or an Excel workbook (openpyxl): what a supervisor prints or mails to the team.

The workbook has three sheets: the grid (agent × day, the shift in each cell), the shifts one a
row, and the coverage per half hour. Bytes in memory; the caller writes them where it wants.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

SHIFT_COLUMNS = ["agent", "name", "team", "date", "pattern", "start", "end", "meal", "paid_h"]


def shifts_csv(doc: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SHIFT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in doc["assignments"]:
        w.writerow({k: "" if row.get(k) is None else row.get(k) for k in SHIFT_COLUMNS})
    return buf.getvalue()


def roster_xlsx(doc: dict[str, Any], coverage: list[dict[str, Any]], agents: list[tuple[str, str, str]]) -> bytes:
    """`agents`: (id, name, team) in the order the grid lists them."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    week = dt.date.fromisoformat(doc["week"])
    days = [week + dt.timedelta(days=i) for i in range(7)]
    wb = Workbook()
    grid = wb.active
    assert grid is not None
    grid.title = "Roster"
    grid.append(["Agent", "Name", "Team"] + [f"{d:%a} {d.isoformat()}" for d in days])
    cells: dict[tuple[str, int], str] = {}
    for row in doc["assignments"]:
        meal = f" (meal {row['meal']})" if row.get("meal") else ""
        cells[(row["agent"], int(row["day"]))] = f"{row['start']}-{row['end']}{meal}"
    for aid, name, team in agents:
        grid.append([aid, name, team] + [cells.get((aid, i), "") for i in range(7)])
    shifts = wb.create_sheet("Shifts")
    shifts.append(SHIFT_COLUMNS)
    for row in doc["assignments"]:
        shifts.append([row.get(k) for k in SHIFT_COLUMNS])
    cov = wb.create_sheet("Coverage")
    if coverage:
        cols = list(coverage[0])
        cov.append(cols)
        for r in coverage:
            cov.append([r[c] for c in cols])
    for ws in (grid, shifts, cov):
        for c in ws[1]:
            c.font = Font(bold=True)
        ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
