"""Work orders in the KPI report: on time by the deadline each order got (workorders.yaml), and reopens."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.events import Event, Kind
from ctiserver.kpi.config import load_kpi_config
from ctiserver.kpi.report import build_report

from .conftest import load

CONFIG = Path(__file__).resolve().parents[2] / "config"
SH = ZoneInfo("Asia/Shanghai")


def at(m: int, d: int, h: int = 16) -> float:
    return dt.datetime(2026, m, d, h, tzinfo=SH).timestamp()


async def test_reopens_count_in_the_kpi_report(sqlite_engine: AsyncEngine) -> None:
    def wo(t: float, wid: str, action: str, due: float) -> Event:
        return Event(Kind.WORKORDER, t, None, agent_id="1001",
                     data={"id": wid, "action": action, "category": "inquiry", "due_ts": due})

    t0 = at(11, 23, 9)
    await load(sqlite_engine, [
        wo(t0, "1", "open", t0 + 86400), wo(t0 + 3600, "1", "closed", t0 + 86400),
        wo(t0 + 7200, "1", "reopened", t0 + 7200 + 86400), wo(t0 + 9000, "1", "closed", t0 + 7200 + 86400),
        wo(t0 + 600, "2", "open", t0 + 3600), wo(t0 + 7200, "2", "closed", t0 + 3600),  # late
        wo(t0 + 900, "3", "open", t0 + 86400)])
    cfg = load_kpi_config(CONFIG)
    report = await build_report(sqlite_engine, cfg, at(11, 23, 0), at(11, 24, 0), [], now=at(11, 24, 0))
    m = report["total"]
    assert (m["workorders_opened"], m["workorders_closed"], m["workorders_closed_on_time"]) == (3, 2, 1)
    assert (m["workorders_reopened"], m["workorder_reopen_rate"]) == (1, 0.5)
