"""Satisfaction in the KPIs (issue 12 item 15): scores per agent and per queue of the call rated, and the
回访率 (satisfaction callback rate) of closed work orders, per agent and per queue of the order's call."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.events import Event, Kind
from ctiserver.kpi.config import KpiConfig
from ctiserver.kpi.report import build_report

from .conftest import load

SH = ZoneInfo("Asia/Shanghai")
D0 = datetime(2026, 11, 23, tzinfo=SH).timestamp()
T = D0 + 10 * 3600


def rating(ts: float, call: str, agent: str, queue: str, value: object, **data: object) -> Event:
    return Event(Kind.SURVEY_RATING, ts, call, agent_id=agent, queue=queue, tier="normal",
                 data={"rating": value, **data})


def revisit(ts: float, order: int, action: str, call: str | None = None, agent: str | None = None,
            queue: str | None = None) -> Event:
    return Event(Kind.WORKORDER_CALLBACK, ts, call, agent_id=agent, queue=queue,
                 data={"id": str(order), "action": action, "category": "complaint", "mode": "agent"})


def satisfaction_day() -> list[Event]:
    return [
        # scores after the call (IVR) and from a survey campaign, each naming the call, agent and queue rated
        rating(T, "c1", "1001", "billing", 5, campaign=None, source="ivr"),
        rating(T + 60, "c2", "1001", "billing", 3, campaign=None, source="ivr"),
        rating(T + 120, "c3", "1002", "fault", 4, campaign="survey-workorders", source="campaign"),
        rating(T + 180, "c4", "1002", "fault", "bad"),  # not a score
        rating(T + 240, "c5", "1002", "fault", 7),  # off the 1..5 scale
        # satisfaction callbacks of closed work orders: due when selected, done when the customer was reached
        revisit(T, 1, "due", "c1", "1001", "billing"),
        revisit(T + 3600, 1, "done"),
        revisit(T + 60, 2, "due", "c2", "1001", "billing"),
        revisit(T + 7200, 2, "not_reached"),
        revisit(T + 120, 3, "due", "c3", "1002", "fault"),
        revisit(D0 + 86400 + 3600, 3, "done"),  # reached the next day: still this day's callback
        revisit(D0 - 3600, 4, "due", "c0", "1002", "fault"),  # selected the day before: not this day's
        revisit(T, 4, "done"),
    ]


async def report(engine: AsyncEngine, by: list[str]) -> dict[str, object]:
    await load(engine, satisfaction_day())
    return await build_report(engine, KpiConfig(), D0, D0 + 86400, by, now=D0 + 3 * 86400)


KEYS = ("survey_responses", "survey_avg_score", "satisfaction_callbacks_due", "satisfaction_callbacks_done",
        "satisfaction_callback_rate")


async def test_scores_and_the_callback_rate_per_agent(engine: AsyncEngine) -> None:
    r = await report(engine, ["agent"])
    rows = {row["key"]["agent"]: tuple(row["metrics"][k] for k in KEYS) for row in r["rows"]}  # type: ignore[index]
    assert rows == {"1001": (2, 4.0, 2, 1, 0.5), "1002": (1, 4.0, 1, 1, 1.0)}
    total = r["total"]
    assert tuple(total[k] for k in KEYS) == (3, 4.0, 3, 2, round(2 / 3, 6))  # type: ignore[index]


async def test_scores_and_the_callback_rate_per_queue(engine: AsyncEngine) -> None:
    r = await report(engine, ["queue"])
    rows = {row["key"]["queue"]: tuple(row["metrics"][k] for k in KEYS) for row in r["rows"]}  # type: ignore[index]
    assert rows["billing"] == (2, 4.0, 2, 1, 0.5) and rows["fault"] == (1, 4.0, 1, 1, 1.0)


async def test_the_callback_rate_cannot_be_split_by_tier(engine: AsyncEngine) -> None:
    r = await report(engine, ["tier"])
    [row] = r["rows"]  # type: ignore[misc]
    assert row["metrics"]["survey_responses"] == 3  # scores carry the tier of the call rated
    assert row["metrics"]["satisfaction_callback_rate"] is None  # work orders have no tier
