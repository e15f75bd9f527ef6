"""Adherence and attendance from the production ACD engine's own agent.state events, on a FakeClock."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from ctiserver.acd.config import AcdConfig
from ctiserver.acd.engine import AcdEngine
from ctiserver.clock import FakeClock
from ctiserver.events import Event
from ctiserver.wfm.adherence import adherence, planned_day, team_adherence
from ctiserver.wfm.roster import variant_for
from ctiserver.wfm.shifts import Assignment

from .test_roster import CAL, PATTERNS, config

WEEK = dt.date(2026, 8, 10)  # Monday
ACD = AcdConfig.model_validate({"skills": ["billing"], "tiers": [{"name": "normal"}],
                                "vip": {"tier": "normal", "desk_skill": None},
                                "queue_defaults": {"wrap_up_s": 30}})


class Floor:
    """The ACD engine with two agents, driven at the times a test names on a FakeClock."""

    def __init__(self) -> None:
        self.clock = FakeClock(CAL.at(WEEK, 7 * 60))
        self.engine = AcdEngine(ACD)
        for a in ("A", "B"):
            self.engine.add_agent(a, {"billing": 5})
        self.events: list[Event] = []

    def at(self, hhmm: str, action: str, *args: Any) -> None:
        h, m = hhmm.split(":")
        self.clock.set(CAL.at(WEEK, int(h) * 60 + int(m)))
        out = getattr(self.engine, action)(*args, self.clock.now(), **({"ready": True} if action == "login" else {}))
        self.events += [c for c in out if isinstance(c, Event)]


@pytest.fixture
def day() -> Floor:
    """A is where the roster says all day (and takes a call); B logs in 10 minutes late, takes the morning
    break half an hour late, skips the afternoon one and leaves 30 minutes early."""
    f = Floor()
    f.at("07:58", "login", "A")
    f.at("08:10", "login", "B")
    f.at("09:00", "enqueue", "c1", "billing", "normal", "13800000001")
    agent = next(e.agent_id for e in f.events if e.kind == "acd.offer")
    f.at("09:00", "ring_started", "c1")
    f.at("09:00", "ring_answered", "c1")
    f.at("09:05", "call_ended", "c1")
    f.at("09:06", "tick")  # the wrap-up's deadline
    f.at("10:00", "set_not_ready", "A", "break")
    f.at("10:15", "set_ready", "A")
    f.at("10:30", "set_not_ready", "B", "break")
    f.at("10:45", "set_ready", "B")
    f.at("12:00", "set_not_ready", "A", "lunch")
    f.at("12:00", "set_not_ready", "B", "lunch")
    f.at("12:30", "set_ready", "A")
    f.at("12:30", "set_ready", "B")
    f.at("14:30", "set_not_ready", "A", "break")
    f.at("14:45", "set_ready", "A")
    f.at("16:00", "logout", "B")
    f.at("16:30", "logout", "A")
    assert agent in ("A", "B")
    return f


def plans() -> list[Any]:
    cfg = config()
    shift = variant_for(cfg, "early", "08:00", "12:00")  # breaks at 10:00 and 14:30 (15 min), meal 12:00-12:30
    return planned_day([Assignment("A", 0, shift), Assignment("B", 0, shift)], WEEK, WEEK, CAL)


def test_adherence_and_attendance_over_the_whole_shift(day: Floor) -> None:
    rows = {r.agent: r for r in adherence(plans(), day.events, day.clock.now())}
    a, b = rows["A"], rows["B"]
    assert a.scheduled_s == b.scheduled_s == 8.5 * 3600
    assert a.adherence == 1.0 and a.late_login_s is None and a.early_logout_s is None
    # B: 600 s late + 900 s on the phones in the 10:00 break + 900 s on break at 10:30 + 900 s on the
    # phones in the 14:30 break + 1,800 s gone early = 5,100 s out of adherence
    assert b.scheduled_s - b.adherent_s == 5100
    assert b.adherence == pytest.approx(1 - 5100 / 30600)
    assert b.late_login_s == 600 and b.early_logout_s == 1800 and not b.absent
    assert b.out_reasons == {"logged_out": 2400, "available": 1800, "not_ready:break": 900}
    teams = team_adherence(list(rows.values()), {"A": "day", "B": "day"})
    assert teams == {"day": pytest.approx(1 - 5100 / 61200)}


def test_live_view_mid_morning(day: Floor) -> None:
    """At 10:35 B is on a break the roster does not give them: out of adherence now."""
    now = CAL.at(WEEK, 10 * 60 + 35)
    early = [e for e in day.events if e.ts <= now]
    rows = {r.agent: r for r in adherence(plans(), early, now)}
    assert rows["B"].now_activity == "phones" and rows["B"].now_state == "not_ready"
    assert rows["B"].now_reason == "break" and rows["B"].now_in_adherence is False
    assert rows["A"].now_in_adherence is True
    assert rows["B"].scheduled_s == 2 * 3600 + 35 * 60
    assert rows["B"].scheduled_s - rows["B"].adherent_s == 600 + 900 + 300


def test_absent_agent_and_not_yet_started() -> None:
    cfg = config()
    late_shift = variant_for(cfg, "late", "13:00", "17:00")
    p = planned_day([Assignment("C", 0, late_shift)], WEEK, WEEK, CAL)
    [before] = adherence(p, [], CAL.at(WEEK, 12 * 60))
    assert before.scheduled_s == 0 and before.adherence is None and not before.absent
    [missing] = adherence(p, [], CAL.at(WEEK, 13 * 60 + 5))
    assert missing.absent and missing.adherence == 0.0 and missing.now_in_adherence is False


def test_adherence_command_reads_the_store_and_the_saved_roster(day: Floor, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio
    import json
    import shutil

    from sqlalchemy.ext.asyncio import create_async_engine

    from ctiserver.wfm.config import roster_folder
    from ctiserver.wfm.roster import WEEK_SLOTS, Roster, to_doc

    from ..kpi.conftest import load
    from .test_forecast_cli import CONFIG, run

    cfg_dir = tmp_path / "config"
    shutil.copytree(CONFIG, cfg_dir)
    shift = variant_for(config(), "early", "08:00", "12:00")
    doc = to_doc(Roster(WEEK, [Assignment("A", 0, shift), Assignment("B", 0, shift)],
                        {"billing": [0.0] * WEEK_SLOTS}), [])
    roster_folder(cfg_dir).mkdir(parents=True)
    (roster_folder(cfg_dir) / f"roster-{WEEK}.json").write_text(json.dumps(doc), encoding="utf-8")
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"

    async def fill() -> None:
        engine = create_async_engine(url)
        await load(engine, day.events)
        await engine.dispose()

    asyncio.run(fill())
    (cfg_dir / "wfm.yaml").write_text(yaml.safe_dump({"roster": {"patterns": PATTERNS}}), encoding="utf-8")
    assert run(["adherence", "--config", str(cfg_dir), "--url", url, "--date", str(WEEK), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {r["agent"]: r for r in out["rows"]}
    assert rows["A"]["adherence"] == 1.0 and rows["B"]["late_login_s"] == 600 and rows["B"]["early_logout_s"] == 1800


def test_half_hours_share_the_definition_with_the_shift_figures(day: Floor) -> None:
    """Per agent and half hour (what `ctiserver report --with adherence` prints): B's 10:00 half hour has the
    break scheduled for 10:00-10:15 while B was on the phones, B's 10:30 half hour the break B took instead;
    summed over the day, the half hours give exactly the shift's adherence (one definition)."""
    from ctiserver.wfm.adherence import half_hours
    from ctiserver.wfm.history import slot_of

    t0, t1 = CAL.at(WEEK), CAL.at(WEEK + dt.timedelta(days=1))
    rows = half_hours(plans(), day.events, t0, t1, lambda ts: slot_of(CAL, ts))
    b = {r["time"]: r for r in rows if r["agent"] == "B"}
    assert b["10:00"]["scheduled"] == "break+phones" and b["10:00"]["adherence"] == 0.5
    assert b["10:00"]["conformance"] == 2.0  # on the phones 30 min of the 15 scheduled there
    assert b["10:30"]["scheduled"] == "phones" and b["10:30"]["adherence"] == 0.5
    assert b["10:30"]["conformance"] == 0.5 and b["10:30"]["actual"] == "available 900s, not_ready:break 900s"
    assert b["08:00"]["adherent_s"] == 1200 and b["16:00"]["adherence"] == 0.0
    assert "07:30" not in b and "16:30" not in b  # neither scheduled nor logged in
    a = {r["time"]: r for r in rows if r["agent"] == "A"}
    assert a["07:30"]["scheduled"] == "-" and a["07:30"]["phones_s"] == 120  # logged in before the shift
    whole = {r.agent: r for r in adherence(plans(), day.events, t1)}
    for agent in ("A", "B"):
        mine = [r for r in rows if r["agent"] == agent]
        assert sum(r["adherent_s"] for r in mine) == whole[agent].adherent_s
        assert sum(r["scheduled_s"] for r in mine) == whole[agent].scheduled_s


def test_report_command_with_the_adherence_section(day: Floor, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio
    import csv
    import io
    import json
    import shutil

    from sqlalchemy.ext.asyncio import create_async_engine

    from ctiserver.app.cli import main
    from ctiserver.wfm.config import roster_folder
    from ctiserver.wfm.roster import WEEK_SLOTS, Roster, to_doc

    from ..kpi.conftest import load
    from .test_forecast_cli import CONFIG

    cfg_dir = tmp_path / "config"
    shutil.copytree(CONFIG, cfg_dir)
    shift = variant_for(config(), "early", "08:00", "12:00")
    doc = to_doc(Roster(WEEK, [Assignment("A", 0, shift), Assignment("B", 0, shift)],
                        {"billing": [0.0] * WEEK_SLOTS}), [])
    roster_folder(cfg_dir).mkdir(parents=True)
    (roster_folder(cfg_dir) / f"roster-{WEEK}.json").write_text(json.dumps(doc), encoding="utf-8")
    (cfg_dir / "wfm.yaml").write_text(yaml.safe_dump({"roster": {"patterns": PATTERNS}}), encoding="utf-8")
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"

    async def fill() -> None:
        engine = create_async_engine(url)
        await load(engine, day.events)
        await engine.dispose()

    asyncio.run(fill())
    base = ["report", "--config", str(cfg_dir), "--url", url, "--from", str(WEEK), "--with", "adherence"]
    assert main([*base, "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    sec = report["sections"]["adherence"]
    b = {r["time"]: r for r in sec["rows"] if r["agent"] == "B"}
    assert b["10:30"]["adherence"] == 0.5 and b["10:30"]["conformance"] == 0.5
    assert f"B: adherence {1 - 5100 / 30600:.1%}" in " ".join(sec["notes"])  # the /wfm page's figure
    assert report["total"]["calls_offered"] == 1  # the KPI report is all there too
    assert main([*base, "--format", "csv"]) == 0
    lines = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    at = lines.index(["Schedule adherence per agent and half hour"])
    assert lines[at + 1][:4] == ["agent", "date", "time", "scheduled"]
    assert main([*base]) == 0
    assert "Schedule adherence per agent and half hour" in capsys.readouterr().out
    xlsx = tmp_path / "r.xlsx"
    assert main([*base, "--format", "xlsx", "--output", str(xlsx)]) == 0
    from openpyxl import load_workbook

    assert load_workbook(xlsx)["adherence"]["A1"].value == "agent"
