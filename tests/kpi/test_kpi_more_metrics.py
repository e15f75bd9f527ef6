"""Figures the seeds ask for: not-ready time by reason, Anton's occupancy, cost per call (hand-computed)."""

from __future__ import annotations

from ctiserver.events import Event, Kind
from ctiserver.kpi.config import KpiConfig
from ctiserver.kpi.report import build_report

from .test_kpi_golden import D0


def state(t: float, s: str, reason: str | None = None) -> Event:
    return Event(Kind.AGENT_STATE, D0 + t, None, "a1", data={"state": s, "reason": reason})


async def test_not_ready_by_reason_occupancy_and_cost() -> None:
    evs = [state(0, "available"), state(600, "on_call"), state(900, "wrap_up"), state(960, "not_ready", "lunch"),
           state(2760, "not_ready", "training"), state(3360, "available"), state(3600, "logged_out"),
           Event(Kind.ACD_COMPLETE, D0 + 900, "c1", "a1", "billing", "normal", data={"talk_s": 280, "hold_s": 20})]
    cfg = KpiConfig.model_validate({"cost_per_agent_hour": 90.0})
    total = (await build_report(evs, cfg, D0, D0 + 86400, [], now=D0 + 86400))["total"]
    # available 600 + 240, on call 300, wrap 60, lunch 1800, training 600: an hour logged in
    assert total["not_ready_by_reason_s"] == {"lunch": 1800.0, "training": 600.0}
    assert total["not_ready_s"] == 2400.0 and total["logged_in_s"] == 3600.0
    assert total["occupancy_talk"] == round(300 / (300 + 840), 6)
    assert total["occupancy"] == round(360 / (360 + 840), 6)
    assert total["wrap_share"] == round(60 / 3600, 6)
    assert total["cost_per_call"] == 90.0  # one staffed hour at 90 for one handled call
