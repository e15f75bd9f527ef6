"""Forecasts as rows for the renderers (table/CSV/JSON). Pure."""

from __future__ import annotations

from typing import Any

from .forecast import QueueForecast
from .history import SLOTS


def slot_label(slot: int) -> str:
    return f"{slot // 2:02d}:{(slot % 2) * 30:02d}"


def forecast_result(forecasts: list[QueueForecast], *, by: str = "halfhour") -> dict[str, Any]:
    """Rows per queue, day and half hour (`by='day'`: per queue and day), with held-out accuracy notes."""
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    accuracy: dict[str, Any] = {}
    for fc in forecasts:
        acc = fc.accuracy.as_dict() if fc.accuracy else None
        accuracy[fc.queue] = acc
        if acc:
            notes.append(f"{fc.queue}: held-out week from {acc['start']}: per half hour MAPE "
                         f"{_pct(acc['half_hour']['mape'])} WAPE {_pct(acc['half_hour']['wape'])}, per day MAPE "
                         f"{_pct(acc['day']['mape'])} WAPE {_pct(acc['day']['wape'])}, handle time WAPE "
                         f"{_pct(acc['half_hour']['aht_wape'])}")
        else:
            notes.append(f"{fc.queue}: under 3 weeks of history, no held-out week to measure accuracy on")
        notes.append(f"{fc.queue}: model {fc.model}; special-day factors "
                     + ", ".join(f"{k} {v:.2f}" for k, v in fc.factors.items()))
        notes += outage_notes(fc)
        for d in fc.days:
            if by == "day":
                calls = fc.day_total(d)
                aht = (sum(fc.calls[(d, s)] * fc.aht_s[(d, s)] for s in range(SLOTS)) / calls) if calls else None
                rows.append({"queue": fc.queue, "date": d.isoformat(), "kind": fc.day_kind[d],
                             "calls": round(calls, 1), "aht_s": None if aht is None else round(aht, 1)})
                continue
            for s in range(SLOTS):
                rows.append({"queue": fc.queue, "date": d.isoformat(), "time": slot_label(s),
                             "kind": fc.day_kind[d], "calls": round(fc.calls[(d, s)], 2),
                             "aht_s": round(fc.aht_s[(d, s)], 1)})
    cols = ["queue", "date", "kind", "calls", "aht_s"] if by == "day" else \
        ["queue", "date", "time", "kind", "calls", "aht_s"]
    return {"title": "Forecast of offered calls and handle time", "columns": cols, "rows": rows,
            "notes": list(dict.fromkeys(notes)), "accuracy": accuracy,
            "outage_days": {d.isoformat(): why for fc in forecasts for d, why in fc.outage_days.items()}}


def outage_notes(fc: QueueForecast) -> list[str]:
    """The outage days the forecast kept out of its history, and those announced inside its window."""
    first, last = fc.days[0], fc.days[-1]
    past = [d for d in fc.outage_days if d < first]
    ahead = [(d, why) for d, why in fc.outage_days.items() if first <= d <= last]
    out = list(fc.problems)
    if past:
        out.append(f"{fc.queue}: {len(past)} outage day(s) kept out of the history: "
                   + ", ".join(d.isoformat() for d in sorted(past)))
    out += [f"{fc.queue}: {d} has a major outage ({why}): its extra calls are not in this forecast"
            for d, why in sorted(ahead)]
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"
