"""The outage and repair loop in the KPI report (issue 16): outage notices sent and reached (SMS delivered,
calls that reached someone), "power restored" likewise, and the crews' deadlines kept (arrival, the
30-minute report), per local half hour like every other family, summed for the report's range.

SMS count once settled (the `sms` event of a final state: delivered, failed, fallback, excluded); calls
are the outbound family's contacts of the `outage-<id>` and `restored-<id>` campaigns; repair steps are
the `repair` events (arrival and the first report carry `on_time`, the 95598 deadline kept). Pure: the
SQL that sums them per half hour is compute.py's `loop_query`.
"""

from __future__ import annotations

from typing import Any

from ..events import Kind
from .facts import Facts

LOOP_SUMS = ("notice_sms", "notice_sms_delivered", "restored_sms", "restored_sms_delivered", "arrivals",
             "arrivals_on_time", "reports", "reports_on_time", "restorations")
LOOP_KINDS = (Kind.SMS, Kind.REPAIR)


def _rate(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def loop_metrics(facts: Facts) -> dict[str, Any]:
    """The report's `loop` section: notices and restorations by channel, the crews' on-time rates."""
    s = {k: sum(int(r.get(k) or 0) for r in facts.loop) for k in LOOP_SUMS}

    def calls(prefix: str) -> tuple[int, int]:
        rows = [r for r in facts.outbound if str(r.get("d_campaign") or "").startswith(prefix)]
        return sum(int(r["contacts"]) for r in rows), sum(int(r["reached"]) for r in rows)

    notice_calls, notice_reached = calls("outage-")
    restored_calls, restored_reached = calls("restored-")
    return {
        "notices": {"sms_settled": s["notice_sms"], "sms_delivered": s["notice_sms_delivered"],
                    "sms_delivered_rate": _rate(s["notice_sms_delivered"], s["notice_sms"]),
                    "calls": notice_calls, "calls_reached": notice_reached,
                    "call_reach_rate": _rate(notice_reached, notice_calls),
                    "sent": s["notice_sms"] + notice_calls, "reached": s["notice_sms_delivered"] + notice_reached},
        "restored": {"sms_settled": s["restored_sms"], "sms_delivered": s["restored_sms_delivered"],
                     "calls": restored_calls, "calls_reached": restored_reached},
        "repair": {"arrivals": s["arrivals"], "arrivals_on_time": s["arrivals_on_time"],
                   "arrival_on_time_rate": _rate(s["arrivals_on_time"], s["arrivals"]),
                   "reports": s["reports"], "reports_on_time": s["reports_on_time"],
                   "report_on_time_rate": _rate(s["reports_on_time"], s["reports"]),
                   "restorations": s["restorations"]},
    }
