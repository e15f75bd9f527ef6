"""One calendar (config/calendar.yaml) for every feature: time zone, holidays, make-up workdays, hours sets.

The four copies this replaced disagreed (2026-09-25 a holiday only for outbound, the make-up Sunday
09-20 vs 09-27, 2027-01-01 only in the IVR, no make-up days on the desktop); these tests pin the one
calendar to the State Council's 2026 notice and show every feature deciding from it.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from ctiserver.acd.config import load_acd_config
from ctiserver.acd.engine import AcdEngine
from ctiserver.acd.model import Blocked, Offer
from ctiserver.app.cli import main
from ctiserver.calendar import Calendar, load_calendar
from ctiserver.configfile import ConfigError
from ctiserver.events import Kind
from ctiserver.ivr.settings import load_ivr_settings
from ctiserver.ivr.tree import load_tree
from ctiserver.ivr.walker import IvrWalker, LogEvent
from ctiserver.kpi.config import load_kpi_config
from ctiserver.outbound.model import CampaignSpec, load_outbound_config
from ctiserver.outbound.scheduler import CampaignView, ContactView, Scheduler, Snapshot
from ctiserver.web.config import load_desktop_config
from ctiserver.workorders.deadlines import Limit

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config"
SH = ZoneInfo("Asia/Shanghai")


def at(y: int, m: int, d: int, h: int = 10, mi: int = 0) -> float:
    return dt.datetime(y, m, d, h, mi, tzinfo=SH).timestamp()


def days(first: str, last: str) -> set[dt.date]:
    a, b = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return {a + dt.timedelta(days=i) for i in range((b - a).days + 1)}


# 国务院办公厅关于2026年部分节假日安排的通知 (2025-11-04)
HOLIDAYS_2026 = (days("2026-01-01", "2026-01-03") | days("2026-02-15", "2026-02-23") | days("2026-04-04", "2026-04-06")
                 | days("2026-05-01", "2026-05-05") | days("2026-06-19", "2026-06-21")
                 | days("2026-09-25", "2026-09-27") | days("2026-10-01", "2026-10-07"))
WORKDAYS_2026 = {dt.date.fromisoformat(d) for d in ("2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09",
                                                    "2026-09-20", "2026-10-10")}


def test_the_shipped_calendar_is_the_state_councils_2026_schedule() -> None:
    cal = load_calendar(CONFIG)
    assert cal.timezone == "Asia/Shanghai"
    assert {d for d in cal.holidays if d.year == 2026} == HOLIDAYS_2026
    assert set(cal.workdays) == WORKDAYS_2026
    assert {d for d in cal.holidays if d.year == 2027} == {dt.date(2027, 1, 1)}  # statutory; the rest awaits its notice
    assert cal.day_kind(dt.date(2026, 9, 25)) == "holiday"  # Mid-Autumn, a Friday
    assert cal.day_kind(dt.date(2026, 9, 20)) == "working"  # a Sunday worked for National Day
    assert cal.day_kind(dt.date(2026, 9, 27)) == "holiday"  # a Sunday, inside the Mid-Autumn break
    assert cal.day_kind(dt.date(2026, 10, 17)) == "rest"
    assert cal.add_working_days(dt.date(2026, 9, 30), 1) == dt.date(2026, 10, 8)
    assert cal.add_working_days(dt.date(2026, 10, 9), 1) == dt.date(2026, 10, 10)  # the make-up Saturday


def test_every_feature_reads_the_one_calendar() -> None:
    cal = load_calendar(CONFIG)
    assert load_acd_config(CONFIG).calendar == cal
    assert load_ivr_settings(CONFIG).calendar == cal
    assert load_outbound_config(CONFIG).calendar == cal
    assert load_desktop_config(CONFIG).calendar == cal
    assert load_kpi_config(CONFIG).calendar == cal


@pytest.mark.parametrize(("when", "is_open"), [
    (at(2026, 9, 24), True),  # Thursday
    (at(2026, 9, 25), False),  # Mid-Autumn (the ACD used to keep it open; only outbound knew)
    (at(2026, 9, 27), False),  # a Sunday of the break (the ACD used to open it as a make-up day)
    (at(2026, 9, 20), True),  # the make-up Sunday (the ACD used to keep it closed)
    (at(2026, 1, 4), True),  # the New Year make-up Sunday (in no copy before)
    (at(2026, 9, 20, 12, 30), False),  # lunch break on a make-up day
])
def test_the_acd_business_queue_follows_the_calendar(when: float, is_open: bool) -> None:
    eng = AcdEngine(load_acd_config(CONFIG))
    eng.login("1007", when - 60, ready=True)  # 赵敏: business 9
    cmds = eng.enqueue("c1", "business", "normal", "13800000001", when)
    assert bool([c for c in cmds if isinstance(c, Offer)]) is is_open
    if not is_open:
        [blocked] = [c for c in cmds if isinstance(c, Blocked)]
        assert (blocked.reason, blocked.destination.kind, blocked.destination.target) == ("closed", "message",
                                                                                     "business_closed")


@pytest.mark.parametrize(("when", "branch"), [
    (at(2026, 9, 24), "to_business"),
    (at(2026, 9, 25), "business_holiday"),  # the IVR used to say "open" on Mid-Autumn day
    (at(2026, 9, 20), "to_business"),  # the make-up Sunday (the IVR had 09-27 instead)
    (at(2026, 10, 17), "business_closed"),  # an ordinary Saturday
    (at(2027, 1, 1), "business_holiday"),
])
def test_the_ivr_hours_branch_follows_the_calendar(when: float, branch: str) -> None:
    hotline = load_tree(CONFIG / "ivr" / "hotline.yaml").tree
    tree = hotline.model_copy(update={"start": "business_hours_check"})  # as a caller pressing 3 reaches it
    walker = IvrWalker(tree, {"call_id": "x", "caller": ""}, when, load_ivr_settings(CONFIG).calendar)
    visited = [a.event.data["node"] for a in walker.start()
               if isinstance(a, LogEvent) and a.event.kind == Kind.IVR_NODE]
    assert visited[:2] == ["business_hours_check", branch]


def test_outbound_working_days_follow_the_calendar() -> None:
    sched = Scheduler(load_outbound_config(CONFIG))
    spec = CampaignSpec.model_validate({"name": "a", "kind": "arrears_reminder", "windows": ["08:00-21:00"],
                                        "days": "working"})
    camp = CampaignView.from_spec(spec, uid="A", state="running")
    people = [ContactView(1, "a", "13800000001")]
    # New Year: Friday 01-02 is a day off (outbound's copy missed it), Sunday 01-04 is worked
    plan = sched.plan(at(2026, 1, 1, 9), Snapshot([camp], people))
    assert plan.dials == [] and plan.next_deadline == at(2026, 1, 4, 8)


def test_campaign_hours_name_an_hours_set() -> None:
    sched = Scheduler(load_outbound_config(CONFIG))
    spec = CampaignSpec.model_validate({"name": "b", "kind": "survey", "hours": "business_hours"})
    camp = CampaignView.from_spec(spec, uid="B", state="running")
    people = [ContactView(1, "b", "13800000001")]
    assert sched.plan(at(2026, 9, 20, 9), Snapshot([camp], people)).dials  # make-up Sunday, in hours
    plan = sched.plan(at(2026, 9, 24, 12, 30), Snapshot([camp], people))  # Thursday lunch
    assert plan.dials == [] and plan.next_deadline == at(2026, 9, 24, 13, 30)
    plan = sched.plan(at(2026, 9, 24, 18), Snapshot([camp], people))  # Thursday evening: Mid-Autumn follows
    assert plan.next_deadline == at(2026, 9, 28, 8)
    with pytest.raises(ValidationError, match="either hours"):
        CampaignSpec.model_validate({"name": "c", "kind": "survey", "hours": "business_hours",
                                     "windows": ["08:00-21:00"]})


def test_desktop_working_day_deadlines_count_make_up_saturdays() -> None:
    cfg = load_desktop_config(CONFIG)
    # due 1 working day after Friday 10-09: the make-up Saturday 10-10 (the desktop used to say Monday 10-12)
    assert Limit(working_days=1).after(at(2026, 10, 9, 16), cfg.calendar) == at(2026, 10, 10, 16)
    assert Limit(working_days=2).after(at(2026, 9, 30, 16), cfg.calendar) == at(2026, 10, 9, 16)


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(CONFIG, tmp_path / "config")
    return tmp_path / "config"


def _append(path: Path, text: str) -> int:
    """Append `text`; the line number its first line lands on."""
    before = path.read_text(encoding="utf-8")
    if not before.endswith("\n"):
        before += "\n"
    path.write_text(before + text, encoding="utf-8")
    return before.count("\n") + 1


def _line_of(path: Path, fragment: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if fragment in line)


def test_check_rejects_a_second_definition_and_unknown_hours(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    config = _copy(tmp_path)
    desk = _append(config / "desktop.yaml", "holidays: [2026-10-01]\n")
    kpi = _append(config / "kpi.yaml", "timezone: Asia/Shanghai\n")
    server = _append(config / "ctiserver.yaml", "timezone: Asia/Shanghai\n")
    out = _append(config / "outbound.yaml", "calendar:\n  workdays: [2026-09-27]\n")
    acd = config / "acd.yaml"
    acd.write_text(acd.read_text(encoding="utf-8").replace("hours: business_hours", "hours: busness_hours"),
                   encoding="utf-8")
    tree = config / "ivr" / "hotline.yaml"
    tree.write_text(tree.read_text(encoding="utf-8").replace("{hours: business_hours, state: holiday}",
                                                             "{hours: holidays, state: holiday}"), encoding="utf-8")
    camp = config / "campaigns" / "outage-feeder12.yaml"
    camp.write_text(camp.read_text(encoding="utf-8").replace('windows: ["08:00-21:00"]\ndays: any\n',
                                                             "hours: daytime\n"), encoding="utf-8")
    assert main(["check", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    expected = [
        f"{config / 'desktop.yaml'}:{desk}: holidays: holidays and make-up workdays are defined once, in calendar.yaml",
        f"{config / 'kpi.yaml'}:{kpi}: timezone: the time zone is set once, in calendar.yaml",
        f"{config / 'ctiserver.yaml'}:{server}: timezone: the time zone is set once, in calendar.yaml",
        f"{config / 'outbound.yaml'}:{out}: calendar: ",
        f"{acd}:{_line_of(acd, 'busness_hours')}: unknown hours set 'busness_hours' "
        "(calendar.yaml hours: around_the_clock, business_hours)",
        f"{tree}:{_line_of(tree, 'hours: holidays')}: node 'business_hours_check': unknown hours set 'holidays'",
        f"{camp}:{_line_of(camp, 'hours: daytime')}: unknown hours set 'daytime'",
    ]
    for want in expected:
        assert want in err, (want, err)


@pytest.mark.parametrize(("text", "line", "words"), [
    ("workdays: [2026-09-21]\n", 1, "make-up workdays must be weekend days"),
    ("holidays: [2026-09-20]\nworkdays: [2026-09-20]\n", 1, "both as holiday and as make-up workday"),
    ("timezone: Mars/Olympus\n", 1, "unknown time zone 'Mars/Olympus'"),
    ("hours:\n  late:\n    on_working_days: ['18:00-08:00']\n", 3, "not a valid span"),
    ("hours:\n  Late: {}\n", 2, "hours.Late"),
    ("weekend: [saturday]\n", 1, "weekend.0"),
])
def test_calendar_mistakes_name_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    (tmp_path / "calendar.yaml").write_text(text, encoding="utf-8")
    assert main(["check", "--config", str(tmp_path)]) == 1
    with pytest.raises(ConfigError) as err:
        load_calendar(tmp_path)
    assert f"calendar.yaml:{line}:" in str(err.value) and words in str(err.value)


def test_one_time_zone_setting_read_by_every_feature(tmp_path: Path) -> None:
    config = _copy(tmp_path)
    cal = config / "calendar.yaml"
    cal.write_text(cal.read_text(encoding="utf-8").replace("timezone: Asia/Shanghai", "timezone: Asia/Urumqi"),
                   encoding="utf-8")
    assert load_kpi_config(config).zone() == ZoneInfo("Asia/Urumqi")
    assert load_outbound_config(config).timezone == "Asia/Urumqi"
    assert load_desktop_config(config).timezone == "Asia/Urumqi"
    assert load_ivr_settings(config).timezone == "Asia/Urumqi"
    assert load_acd_config(config).calendar.zone == ZoneInfo("Asia/Urumqi")
    assert main(["check", "--config", str(config)]) == 0


def test_the_zone_name_and_its_check_are_written_once_in_the_package() -> None:
    sources = {p: p.read_text(encoding="utf-8") for p in (REPO / "ctiserver").rglob("*.py")}
    named = [p.relative_to(REPO) for p, text in sources.items() if '"Asia/Shanghai"' in text]
    checked = [p.relative_to(REPO) for p, text in sources.items() if re.search(r"\bZoneInfoNotFoundError\b", text)]
    assert named == [Path("ctiserver/calendar.py")]
    assert checked == [Path("ctiserver/calendar.py")]


def test_an_empty_calendar_is_plain_weekdays() -> None:
    cal = Calendar()
    assert cal.is_working_day(dt.date(2026, 10, 1)) and not cal.is_working_day(dt.date(2026, 10, 3))
    assert cal.hours == {} and cal.zone == SH
