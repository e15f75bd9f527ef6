"""`ctiserver forecast` on a SQLite event store filled with generated ACD events."""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from ctiserver.calendar import load_calendar
from ctiserver.events import Event
from ctiserver.store.clidb import CliError
from ctiserver.wfm.cli import add_wfm_commands
from ctiserver.wfm.history import QueueHistory
from ctiserver.wfm.synth import generate

from ..kpi.conftest import load

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config"
CAL = load_calendar(CONFIG)


def history_events(h: QueueHistory) -> list[Event]:
    """An enqueue and a complete event per generated call, spread over its half hour."""
    out: list[Event] = []
    n = 0
    for (day, slot), count in sorted(h.offered.items()):
        k = int(count)
        mean = h.handle_s[(day, slot)] / h.handled[(day, slot)]
        for i in range(k):
            ts = CAL.at(day, slot * 30 + 30 * i / k)
            n += 1
            tier = "vip" if n % 10 == 0 else "normal"
            out.append(Event("acd.enqueue", ts, f"c{n}", None, h.queue, tier, None, {"position": 1}))
            out.append(Event("acd.complete", ts + 1, f"c{n}", "a1", h.queue, tier, None,
                             {"talk_s": mean - 30, "hold_s": 0.0, "wrap_up_s": 30.0}))
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    h, _ = generate(CAL, "billing", dt.date(2026, 7, 6), 42, base=60.0, seed=11)
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('wfm') / 'events.db'}"

    async def fill() -> None:
        engine = create_async_engine(url)
        await load(engine, history_events(h))
        await engine.dispose()

    asyncio.run(fill())
    return url


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ctiserver")
    add_wfm_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_forecast_two_weeks_as_table_json_and_csv(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["forecast", "--config", str(CONFIG), "--url", store, "--from", "2026-08-17", "--weeks", "2"]
    assert run(base) == 0
    table = capsys.readouterr().out
    assert "billing: held-out week from 2026-08-10: per half hour MAPE" in table
    assert run([*base, "--format", "json", "--by", "day"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["rows"]) == 14 and doc["accuracy"]["billing"]["day"]["wape"] < 0.3
    monday, saturday = doc["rows"][0], doc["rows"][5]
    assert monday["date"] == "2026-08-17" and monday["calls"] > 1.5 * saturday["calls"]
    assert run([*base, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 14 * 48 and rows[20]["time"] == "10:00" and float(rows[20]["aht_s"]) > 100


def test_unknown_queue_and_empty_range_are_one_line_errors(store: str) -> None:
    with pytest.raises(CliError, match="no calls in the event store for nosuch"):
        run(["forecast", "--config", str(CONFIG), "--url", store, "--from", "2026-08-17", "--queue", "nosuch"])
    with pytest.raises(CliError, match="no calls in the event store for any queue"):
        run(["forecast", "--config", str(CONFIG), "--url", store, "--from", "2026-01-05"])
