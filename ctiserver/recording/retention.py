"""Which recordings are past their keep time (pure): the rows, the rules, `now` in; the expired out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .config import Retention

DAY = 86400.0


@dataclass(frozen=True)
class Expired:
    id: int
    path: str
    kind: str
    days: int
    start_ts: float


def kind_of(categories: Iterable[str], rules: Retention) -> tuple[str, int]:
    """The kind a call's recording is kept as, and for how many days: of the kinds its disposition
    categories name, the one kept longest (a complaint stays 2 years even if also marked billing)."""
    cats = set(categories)
    best = ("default", rules.default_days)
    for name, rule in rules.kinds.items():
        if cats & set(rule.categories) and rule.days > best[1]:
            best = (name, rule.days)
    return best


def shortest_days(rules: Retention) -> int:
    return min([rules.default_days, *(r.days for r in rules.kinds.values())])


def expired(rows: Iterable[Mapping[str, Any]], rules: Retention, now: float) -> list[Expired]:
    """Rows (id, path, start_ts, categories) whose kind's days have passed since their start."""
    out = []
    for row in rows:
        kind, days = kind_of(row.get("categories") or (), rules)
        if float(row["start_ts"]) + days * DAY <= now:
            out.append(Expired(int(row["id"]), str(row["path"]), kind, days, float(row["start_ts"])))
    return out


def next_run(local_day_start: float, run_minute: int, now: float) -> float:
    """The next daily run at or after `now`: today's `run_minute` (from the local midnight given) or
    tomorrow's. (DST-free zones only; the site's zone, Asia/Shanghai, has none.)"""
    at = local_day_start + run_minute * 60.0
    return at if at > now else at + DAY
