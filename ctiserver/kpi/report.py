"""The KPI report: `build_report` and the request it answers (range, groupings).

`build_report` is the one entry point for the CLI, the /api/reports page and the
simulator: give it an engine holding the `events` table, or a list of `Event`s
(it loads them into an in-memory SQLite and runs the very same SQL). The JSON
shape is documented in docs/kpis.md ("Report JSON") and versioned by `schema`.

The work is split by job: kpi/source.py fetches the facts (kpi/compute.py holds the SQL),
kpi/metrics.py rolls them up and derives the metrics, kpi/render.py formats a report as a
table, CSV or JSON, and kpi/cli.py is `ctiserver report`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from .config import KpiConfig
from .facts import Window
from .metrics import ALL_DIMS, ENTITY_DIMS, SCHEMA, TIME_DIMS, ReportError, assemble
from .rollup import margin_s
from .source import Source, fetch_report_facts

__all__ = ["ALL_DIMS", "ENTITY_DIMS", "MAX_RANGE_DAYS", "SCHEMA", "TIME_DIMS", "WHEN", "ReportError", "build_report",
           "parse_by", "parse_when", "resolve_range", "to_epoch"]

MAX_RANGE_DAYS = 400


# ---------------------------------------------------------------------------------- inputs

def parse_by(by: Sequence[str] | str | None) -> list[str]:
    """'day,tier' or ['day', 'tier'] -> validated list (order kept, duplicates refused)."""
    if by is None:
        return []
    items = [p.strip() for p in by.split(",")] if isinstance(by, str) else [str(p).strip() for p in by]
    items = [p for p in items if p]
    for p in items:
        if p not in ALL_DIMS:
            raise ReportError(f"unknown grouping {p!r}; choose from {', '.join(ALL_DIMS)}")
    if len(set(items)) != len(items):
        raise ReportError("a grouping is listed twice")
    return items


# What parse_when takes (and /api/openapi.json publishes): a date or a date-time, seconds and an offset
# optional, in the years 1970-2999 (a range's end, a day later, stays a date Python can hold)
WHEN = (r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
        r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?$")
_WHEN = re.compile(WHEN)


def parse_when(text: str, cfg: KpiConfig) -> float:
    """'2026-11-23', '2026-11-23T09:30' (local to cfg.timezone) or with an offset -> epoch seconds."""
    try:
        if not _WHEN.fullmatch(text):
            raise ValueError(text)
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ReportError(f"{text[:40]!r} is not a date or date-time (YYYY-MM-DD[THH:MM])") from None
    return to_epoch(dt, cfg)


def to_epoch(when: datetime | float | int, cfg: KpiConfig) -> float:
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=cfg.zone())
        return when.timestamp()
    if isinstance(when, bool) or not isinstance(when, int | float) or not math.isfinite(when):
        raise ReportError(f"not a time: {when!r}")
    return float(when)


def resolve_range(start: str | None, end: str | None, cfg: KpiConfig,
                  now: float) -> tuple[float, float]:
    """CLI/HTTP range defaults: today (local, as of `now`) from midnight; `to` defaults to a day after `from`."""
    if start:
        t0 = parse_when(start, cfg)
    else:
        today = datetime.fromtimestamp(now, cfg.zone()).date()
        t0 = datetime(today.year, today.month, today.day, tzinfo=cfg.zone()).timestamp()
    if end:
        t1 = parse_when(end, cfg)
    else:
        d0 = datetime.fromtimestamp(t0, cfg.zone())
        t1 = (d0.replace(tzinfo=None) + timedelta(days=1)).replace(tzinfo=cfg.zone()).timestamp()
    return t0, t1


# ---------------------------------------------------------------------------------- entry point

async def build_report(source: Source, cfg: KpiConfig,
                       start: datetime | float, end: datetime | float, by: Sequence[str] | str = (),
                       *, now: float, rollups: bool = True) -> dict[str, Any]:
    """The KPI report for calls arriving in [start, end), grouped by `by` (see docs/kpis.md).

    `now` (epoch s, the caller's clock) ends agent states still in force. `rollups=False` sums every
    call and leg fact afresh instead of reading the half-hour rollups (the same figures, slower).
    """
    dims = parse_by(by)
    t0, t1 = to_epoch(start, cfg), to_epoch(end, cfg)
    if t1 <= t0:
        raise ReportError("the end of the range must be after its start")
    if t1 - t0 > MAX_RANGE_DAYS * 86400:
        raise ReportError(f"the range may span at most {MAX_RANGE_DAYS} days")
    win = Window.build(t0, t1, float(now), cfg.zone(), margin_s(cfg))
    entity = [d for d in dims if d in ENTITY_DIMS]
    sql_dims = list(dict.fromkeys([*entity, "tier"]))
    return assemble(await fetch_report_facts(source, cfg, win, sql_dims, rollups=rollups), cfg, win, dims)
