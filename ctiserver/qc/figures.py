"""QC figures per agent, team and queue (pure): inspected calls, average score, share passing, fatal errors."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any


def figures(rows: Iterable[Mapping[str, Any]], team_of: Callable[[str], str | None]) -> dict[str, Any]:
    """`rows`: scored tasks (agent_id, queue, score, passed, fatal). {"total", "agents", "teams", "queues"}."""
    groups: dict[str, dict[str, list[Mapping[str, Any]]]] = {"agents": {}, "teams": {}, "queues": {}}
    everything = []
    for row in rows:
        everything.append(row)
        groups["agents"].setdefault(str(row["agent_id"]), []).append(row)
        groups["teams"].setdefault(team_of(str(row["agent_id"])) or "-", []).append(row)
        groups["queues"].setdefault(str(row.get("queue") or "-"), []).append(row)

    def fold(rs: list[Mapping[str, Any]]) -> dict[str, Any]:
        n = len(rs)
        return {"inspected": n, "avg_score": round(sum(float(r["score"]) for r in rs) / n, 2) if n else None,
                "pass_rate": round(sum(bool(r["passed"]) for r in rs) / n, 4) if n else None,
                "fatal": sum(bool(r["fatal"]) for r in rs)}

    return {"total": fold(everything),
            **{name: {k: fold(v) for k, v in sorted(g.items())} for name, g in groups.items()}}
