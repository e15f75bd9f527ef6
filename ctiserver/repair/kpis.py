"""KPIs of the outage and repair loop, from the event log (pure): dispatch-to-arrival time and on-time
arrival by area class, the 30-minute report's on-time rate, restoration time, repeat reports per outage,
SMS delivered/failed rate, and outage notice coverage (share of notices delivered before the outage
started). A section of its own beside the call KPIs (docs/outages.md)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from statistics import mean
from typing import Any

from ..events import Event, Kind


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def loop_kpis(events: Iterable[Event], outage_starts: Mapping[int, float] | None = None) -> dict[str, Any]:
    """`events`: the window's repair, sms, outage.report and outage events; `outage_starts`: outage id ->
    start time (for notice coverage; else taken from the `outage` events)."""
    arrive: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    reports: list[bool] = []
    restore: list[float] = []
    repeats: dict[int, int] = {}
    sms_states: dict[str, int] = defaultdict(int)
    notices: dict[int, list[tuple[float, str]]] = defaultdict(list)
    starts = dict(outage_starts or {})
    for e in events:
        d = e.data
        if e.kind == Kind.REPAIR and d.get("step") == "arrive" and d.get("on_time") is not None:
            arrive[str(d.get("area_class") or "")].append((float(d.get("minutes") or 0.0), bool(d["on_time"])))
        elif e.kind == Kind.REPAIR and d.get("step") == "report" and d.get("on_time") is not None:
            reports.append(bool(d["on_time"]))
        elif e.kind == Kind.REPAIR and d.get("step") == "restore":
            restore.append(float(d.get("minutes") or 0.0))
        elif e.kind == Kind.OUTAGE_REPORT:
            repeats[int(d["outage"])] = max(repeats.get(int(d["outage"]), 0), int(d.get("reports") or 0))
        elif e.kind == Kind.SMS:
            sms_states[str(d.get("state"))] += 1
            ref = str(d.get("ref") or "")
            if ref.startswith("outage:") and d.get("kind") == "outage_notice":
                notices[int(ref.split(":", 1)[1])].append((e.ts, str(d.get("state"))))
        elif e.kind == Kind.OUTAGE and d.get("action") == "add" and d.get("start_ts") is not None:
            starts.setdefault(int(d["id"]), float(d["start_ts"]))
    sent = sum(sms_states.values())
    covered = told = 0
    for oid, items in notices.items():
        start = starts.get(oid)
        for ts, state in items:
            told += 1
            covered += int(state == "delivered" and (start is None or ts <= start))
    return {
        "arrival_by_class": {cls: {"orders": len(v), "avg_dispatch_to_arrival_min": round(mean(m for m, _ in v), 1),
                                   "on_time_rate": _rate(sum(ok for _, ok in v), len(v))}
                             for cls, v in sorted(arrive.items())},
        "report_on_time_rate": _rate(sum(reports), len(reports)),
        "avg_restoration_min": round(mean(restore), 1) if restore else None,
        "repeat_reports_per_outage": round(mean(repeats.values()), 2) if repeats else None,
        "sms": {"settled": sent, "delivered_rate": _rate(sms_states.get("delivered", 0), sent),
                "failed_rate": _rate(sms_states.get("failed", 0) + sms_states.get("fallback", 0), sent),
                "by_state": dict(sorted(sms_states.items()))},
        "notice_coverage": _rate(covered, told),
    }
