"""Quality inspection in the KPIs (issue 15): per agent and per half hour of the call, the calls inspected
and their average final score (a revised decision's, else the reviewer's), from the `qc` events."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.events import Event, Kind
from ctiserver.kpi.config import KpiConfig
from ctiserver.kpi.render import format_table
from ctiserver.kpi.report import build_report

from .conftest import load

SH = ZoneInfo("Asia/Shanghai")
D0 = datetime(2026, 11, 23, tzinfo=SH).timestamp()
T = D0 + 10 * 3600  # 10:00 local


def qc(ts: float, task: int, action: str, call: str, agent: str, queue: str = "billing", **data: object) -> Event:
    return Event(Kind.QC, ts, call, agent_id=agent, queue=queue, data={"task": task, "action": action, **data})


def inspected_day() -> list[Event]:
    return [
        # calls of 10:00-10:30 scored the next days (the score counts in the call's half hour)
        qc(T + 86400, 1, "scored", "c1", "1001", score=90.0, passed=True, fatal=False, call_ts=T + 60),
        qc(T + 86400 + 60, 2, "scored", "c2", "1001", score=70.0, passed=False, fatal=False, call_ts=T + 120),
        qc(T + 2 * 86400, 2, "acknowledged", "c2", "1001"),
        qc(T + 2 * 86400 + 60, 2, "appealed", "c2", "1001"),
        qc(T + 3 * 86400, 2, "decided", "c2", "1001", decision="revised", score=80.0,  # 80 counts, not 70
           passed=True),  # and the revised verdict
        qc(T + 86400, 3, "scored", "c3", "1002", queue="fault", score=0.0, passed=False, fatal=True,
           call_ts=T + 1800 + 5),  # 10:30-11:00
        qc(T + 4 * 86400, 3, "decided", "c3", "1002", queue="fault", decision="upheld", score=0.0),
        qc(T + 86400, 4, "scored", "c0", "1002", score=100.0, call_ts=D0 - 600),  # a call of the day before
        qc(T + 86400, 5, "scored", "c5", "1003", score=88.0),  # no call time: the half hour it was scored
        qc(T, 6, "acknowledged", "c6", "1003"),  # never scored: not inspected
    ]


async def test_inspected_calls_and_average_score_per_agent_and_half_hour(engine: AsyncEngine) -> None:
    await load(engine, inspected_day())
    now = D0 + 10 * 86400
    r = await build_report(engine, KpiConfig(), D0, D0 + 86400, ["halfhour", "agent"], now=now)
    got = {(row["key"]["halfhour"], row["key"]["agent"]): (row["metrics"]["qc_inspected"],
                                                          row["metrics"]["qc_avg_score"])
           for row in r["rows"] if row["metrics"]["qc_inspected"]}  # type: ignore[index]
    assert got == {("2026-11-23T10:00", "1001"): (2, 85.0), ("2026-11-23T10:30", "1002"): (1, 0.0)}
    by_agent = await build_report(engine, KpiConfig(), D0, D0 + 86400, ["agent"], now=now)
    agents = {row["key"]["agent"]: row["metrics"]["qc_avg_score"] for row in by_agent["rows"]}  # type: ignore[index]
    assert agents == {"1001": 85.0, "1002": 0.0}
    assert (by_agent["total"]["qc_inspected"], by_agent["total"]["qc_avg_score"]) == (3, round(170 / 3, 2))  # type: ignore[index]
    # share passing (the final verdict: task 2's revised one) and fatal errors (task 3's, upheld)
    verdicts = {row["key"]["agent"]: (row["metrics"]["qc_pass_rate"], row["metrics"]["qc_fatal"])  # type: ignore[index]
                for row in by_agent["rows"]}
    assert verdicts == {"1001": (1.0, 0), "1002": (0.0, 1)}
    assert (by_agent["total"]["qc_pass_rate"], by_agent["total"]["qc_fatal"]) == (round(2 / 3, 6), 1)  # type: ignore[index]
    # a call with no call time counts in the half hour it was scored: the next day's report
    nxt = await build_report(engine, KpiConfig(), D0 + 86400, D0 + 2 * 86400, ["agent"], now=now)
    assert {row["key"]["agent"]: row["metrics"]["qc_inspected"] for row in nxt["rows"]  # type: ignore[index]
            if row["metrics"]["qc_inspected"]} == {"1003": 1}
    # `ctiserver report` prints them in their own section
    text = format_table(by_agent)
    assert "Quality inspection (QC)" in text and "85.0" in text and "qc_pass_rate" in text


async def test_the_pure_path_counts_the_same(engine: AsyncEngine) -> None:
    evs = inspected_day()
    await load(engine, evs)
    now = D0 + 10 * 86400
    from_db = await build_report(engine, KpiConfig(), D0, D0 + 86400, ["agent"], now=now)
    from_events = await build_report(evs, KpiConfig(), D0, D0 + 86400, ["agent"], now=now)
    assert from_db["total"]["qc_avg_score"] == from_events["total"]["qc_avg_score"]  # type: ignore[index]
    assert from_db["rows"] == from_events["rows"]


async def test_a_split_by_tier_has_no_qc_figure(engine: AsyncEngine) -> None:
    await load(engine, inspected_day())
    r = await build_report(engine, KpiConfig(), D0, D0 + 86400, ["tier"], now=D0 + 10 * 86400)
    assert all(row["metrics"]["qc_inspected"] is None for row in r["rows"])  # type: ignore[index]
