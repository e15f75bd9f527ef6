"""Outage days for the forecast come from the outage records: which outages are major, which days they
mark, and what that does to a forecast on generated history (the test knows the truth)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from ctiserver.outages.store import OutageStore, outage_records, outage_reports
from ctiserver.wfm.cli import add_wfm_commands
from ctiserver.wfm.forecast import forecast_queue
from ctiserver.wfm.outage_days import MajorOutageRule, OutageSpan, outage_days
from ctiserver.wfm.synth import generate

from ..kpi.conftest import load
from .test_forecast import CAL, FIRST
from .test_forecast_cli import CONFIG, history_events

RULE = MajorOutageRule()


def at(day: dt.date, hhmm: str) -> float:
    h, m = hhmm.split(":")
    return CAL.at(day, int(h) * 60 + int(m))


def span(i: int, kind: str, start: float, end: float | None, reports: int, expected: float | None = None
         ) -> OutageSpan:
    return OutageSpan(i, kind, f"cause {i}", start, end, expected, reports)


def test_which_outages_are_major_and_which_days_they_mark() -> None:
    d = dt.date(2026, 9, 14)
    spans = [
        span(1, "fault", at(d, "22:00"), at(d + dt.timedelta(days=1), "03:00"), 0),  # 5 h fault over midnight
        span(2, "planned", at(d, "09:00"), at(d, "10:00"), 3),  # an hour, few calls: not major
        span(10, "load_limit", at(d, "09:00"), at(d, "19:00"), 0),  # load limiting is not counted
        span(3, "planned", at(d + dt.timedelta(days=3), "09:00"), at(d + dt.timedelta(days=3), "10:00"), 25),
        span(4, "fault", at(d + dt.timedelta(days=5), "10:00"), at(d + dt.timedelta(days=5), "11:00"), 5),  # short
        span(5, "temporary", at(d + dt.timedelta(days=6), "20:00"), at(d + dt.timedelta(days=7), "00:00"), 0),
        span(6, "fault", at(d + dt.timedelta(days=9), "10:00"), None, 0),  # still open: runs to now
    ]
    now = at(d + dt.timedelta(days=10), "12:00")
    marked = outage_days(spans, CAL, RULE, now)
    assert sorted(marked) == [d, d + dt.timedelta(days=1), d + dt.timedelta(days=3), d + dt.timedelta(days=6),
                              d + dt.timedelta(days=9), d + dt.timedelta(days=10)]  # #5 ends at midnight
    assert marked[d].startswith("outage #1 (fault, 0 fault calls)")
    assert "outage #3 (planned, 25 fault calls)" in marked[d + dt.timedelta(days=3)]
    # an open fault that has not lasted min_hours yet, with no expected restoration, is not major (yet)
    assert outage_days([span(7, "fault", now - 600, None, 0)], CAL, RULE, now) == {}
    # ...but one expected to last longer is
    assert outage_days([span(8, "fault", now - 600, None, 0, now + 3 * 3600)], CAL, RULE, now) != {}


STORMS = {dt.date(2026, 8, 17): 3.0, dt.date(2026, 9, 16): 2.5}  # a Monday and a Wednesday


def storm_records() -> list[OutageSpan]:
    """The storms as dispatchers entered them (hundreds of fault calls attached), plus an hour's planned
    outage with a few calls on an ordinary day."""
    out = [span(i + 1, "fault", at(d, "06:00"), at(d, "19:00"), 400) for i, d in enumerate(STORMS)]
    return [*out, span(9, "planned", at(dt.date(2026, 9, 2), "09:00"), at(dt.date(2026, 9, 2), "10:00"), 4)]


def test_forecast_keeps_major_outage_days_out_of_the_baseline() -> None:
    h, truth = generate(CAL, "billing", FIRST, 91, outages=STORMS, seed=5)
    marked = outage_days(storm_records(), CAL, RULE, at(dt.date(2026, 9, 28), "00:00"))
    assert set(marked) == set(STORMS)  # the planned outage with 4 calls is an ordinary day
    start = dt.date(2026, 9, 28)
    with_records = forecast_queue(h, CAL, start, 14, set(marked))
    unmarked = forecast_queue(h, CAL, start, 14)

    def mape(fc: object) -> float:
        days = [(fc.day_total(d), truth.day_total(d)) for d in fc.days]  # type: ignore[attr-defined]
        return sum(abs(p - a) / a for p, a in days) / len(days)

    print(f"day MAPE against the truth: outage days from the records {mape(with_records):.3f}, "
          f"unmarked {mape(unmarked):.3f}")
    assert mape(with_records) < 0.08
    assert mape(with_records) < mape(unmarked)
    # the storm Wednesday is no longer in the held-out week's errors (it would dominate them)
    assert with_records.accuracy is not None and unmarked.accuracy is not None
    assert with_records.accuracy.wape_day is not None and unmarked.accuracy.wape_day is not None
    assert with_records.accuracy.wape_day < unmarked.accuracy.wape_day


@pytest.fixture(scope="module")
def store_with_outages(tmp_path_factory: pytest.TempPathFactory) -> str:
    h, _ = generate(CAL, "billing", dt.date(2026, 7, 6), 42, base=60.0, seed=11, outages={dt.date(2026, 7, 29): 3.0})
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('wfm-outages') / 'events.db'}"

    async def fill() -> None:
        engine = create_async_engine(url)
        await load(engine, history_events(h))
        await OutageStore(engine).create_tables()
        async with engine.begin() as conn:
            for oid, kind, day in ((1, "fault", dt.date(2026, 7, 29)), (2, "planned", dt.date(2026, 8, 19))):
                await conn.execute(insert(outage_records).values(
                    id=oid, kind=kind, cause="台风" if oid == 1 else "检修", scope={"areas": ["north"]},
                    start_ts=at(day, "08:00"), expected_restore_ts=at(day, "18:00"),
                    end_ts=at(day, "18:00") if oid == 1 else None, status="closed" if oid == 1 else "open",
                    created_by="3001", created_ts=at(day, "08:00") - 86400 * 8, updated_ts=at(day, "18:00")))
            for i in range(150):
                await conn.execute(insert(outage_reports).values(outage_id=1, ts=at(dt.date(2026, 7, 29), "09:00") + i,
                                                                 call_id=f"c{i}", account="", number=""))
        await engine.dispose()

    asyncio.run(fill())
    return url


def test_forecast_command_reads_the_outage_records(store_with_outages: str, capsys: pytest.CaptureFixture[str]
                                                   ) -> None:
    parser = argparse.ArgumentParser(prog="ctiserver")
    add_wfm_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["forecast", "--config", str(CONFIG), "--url", store_with_outages, "--from",
                              "2026-08-17", "--weeks", "1", "--format", "json", "--by", "day"])
    assert args.func(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc["outage_days"]) == ["2026-07-29", "2026-08-19"]  # the storm; the planned 10-hour one ahead
    assert "billing: 1 outage day(s) kept out of the history: 2026-07-29" in doc["notes"]
    assert any(n.startswith("billing: 2026-08-19 has a major outage (outage #2 (planned") for n in doc["notes"])


def test_forecast_command_without_outage_tables_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h, _ = generate(CAL, "billing", dt.date(2026, 7, 6), 28, base=60.0, seed=2)
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"

    async def fill() -> None:
        engine = create_async_engine(url)
        await load(engine, history_events(h))
        await engine.dispose()

    asyncio.run(fill())
    parser = argparse.ArgumentParser(prog="ctiserver")
    add_wfm_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["forecast", "--config", str(CONFIG), "--url", url, "--from", "2026-08-03",
                              "--weeks", "1", "--format", "json", "--by", "day"])
    assert args.func(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert any("outage records not read" in n for n in doc["notes"]) and len(doc["rows"]) == 7
