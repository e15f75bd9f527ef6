"""Schedule adherence as a section of `ctiserver report` (`--with adherence`): the IO edge.

The KPI package does not know workforce management; the command line composes them (app/cli.py gives
`add_report_command` this section). The figures are `adherence.half_hours`: the same pieces and the
same `adherent` test as the /wfm page's and the wallboard's adherence.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from .adherence import Planned, half_hours, planned_day
from .config import load_wfm_config, roster_folder
from .history import slot_of
from .roster import from_doc
from .store import agent_states

COLUMNS = ["agent", "date", "time", "scheduled", "actual", "scheduled_s", "adherent_s", "adherence", "phones_s",
           "conformance"]


async def adherence_section(config_dir: Path, engine: AsyncEngine, t0: float, t1: float, now: float
                            ) -> dict[str, Any]:
    """Per agent and half hour of [t0, min(t1, now)): what the saved rosters scheduled, what the agent's
    state was, adherence and conformance; per agent totals in the notes."""
    cfg = load_wfm_config(config_dir)
    cal = cfg.calendar
    until = min(t1, now)
    first, last = cal.local(t0).date() - dt.timedelta(days=1), cal.local(max(t0, until - 1)).date()
    plans: list[Planned] = []
    notes: list[str] = []
    missing: set[dt.date] = set()
    day = first
    while day <= last:
        week = day - dt.timedelta(days=day.weekday())
        path = roster_folder(config_dir) / f"roster-{week.isoformat()}.json"
        if path.exists():
            try:
                roster = from_doc(json.loads(path.read_text(encoding="utf-8")), cfg.roster)
            except (ValueError, KeyError) as exc:
                notes.append(f"{path}: unreadable ({exc}); its days count as unscheduled")
            else:
                plans += planned_day(roster.assignments, week, day, cal)
        elif day > first:
            missing.add(week)
        day += dt.timedelta(days=1)
    notes += [f"no roster for the week of {w} (`ctiserver roster build --week {w}`): time logged in counts as "
              f"unscheduled" for w in sorted(missing)]
    if until <= t0:
        return {"title": "Schedule adherence per agent and half hour", "columns": COLUMNS, "rows": [],
                "notes": [*notes, "the range has not begun"]}
    events = await agent_states(engine, t0 - 86400.0, until)
    rows = half_hours(plans, events, t0, until, lambda ts: slot_of(cal, ts))
    totals: dict[str, list[float]] = {}
    for r in rows:
        t = totals.setdefault(r["agent"], [0.0, 0.0, 0.0, 0.0])
        t[0] += r["adherent_s"]
        t[1] += r["scheduled_s"]
        t[2] += r["phones_s"]
        t[3] += r["scheduled_phones_s"]
    notes += [f"{a}: adherence {_pct(x[0], x[1])}, conformance {_pct(x[2], x[3])} "
              f"({round(x[1] / 60)} min scheduled)" for a, x in sorted(totals.items())]
    notes.append("adherence = time doing what the roster said / time scheduled; conformance = time on the phones "
                 "/ time scheduled on the phones (docs/wfm.md)")
    return {"title": "Schedule adherence per agent and half hour", "columns": COLUMNS, "rows": rows, "notes": notes}


def _pct(a: float, b: float) -> str:
    return f"{a / b:.1%}" if b > 0 else "-"
