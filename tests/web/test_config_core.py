"""Desktop config, the work-order core (status table, SLA due times, masking), the login limiter, users."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from ctiserver.calendar import Calendar, load_calendar
from ctiserver.clock import FakeClock
from ctiserver.configfile import ConfigError
from ctiserver.store.engine import make_engine, migrate
from ctiserver.web import auth, cli
from ctiserver.web.config import DesktopConfig, RateLimit, load_desktop_config
from ctiserver.web.errors import ApiError
from ctiserver.web.tables import users
from ctiserver.web.workorders import TRANSITIONS, check_transition, is_overdue, visible
from ctiserver.workorders.deadlines import Limit

TZ = ZoneInfo("Asia/Shanghai")
REPO = Path(__file__).resolve().parents[2]


def at(y: int, m: int, d: int, h: int = 9) -> float:
    return dt.datetime(y, m, d, h, tzinfo=TZ).timestamp()


def test_shipped_config_loads() -> None:
    cfg = load_desktop_config(REPO / "config")
    assert cfg.workorders.categories["fault_repair"].reply.due == Limit(hours=24)
    assert cfg.workorders.categories["inquiry"].reply.due == Limit(working_days=3)
    assert cfg.calendar.is_holiday(dt.date(2026, 10, 1)) and "lunch" in cfg.not_ready_reasons


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    assert load_desktop_config(tmp_path) == DesktopConfig()


@pytest.mark.parametrize("text, line, words", [
    ("session_ttl_s: 60\nsesion_ttl: 5\n", 2, "unknown key 'sesion_ttl'"),
    ("workorder_sla:\n  fault_repair: {hours: 24}\n", 1, "work-order deadlines are defined once, in workorders.yaml"),
    ("timezone: Asia/Shanghai\n", 1, "the time zone is set once, in calendar.yaml"),
    ("login_per_user: {max_failures: 0, window_s: 10}\n", 1, "max_failures"),
    ("holidays: [2026-10-01]\n", 1, "holidays and make-up workdays are defined once, in calendar.yaml"),
    # every name people see exists in both UI languages
    ("not_ready_reasons:\n  break: {zh: 休息}\n", 2, "not_ready_reasons.break.en"),
    ("units:\n  city: 城区供电所 City supply station\n", 2, "units.city"),
    # the ACD's own not-ready reasons are named too, and an agent's reasons do not take their codes
    ("system_reasons:\n  login: {zh: 签入, en: Logged in}\n", 1,
     "name rona, unreachable, busy, cti_restart, server_down, unregistered"),
    ("not_ready_reasons:\n  rona: {zh: 未接, en: Missed}\n", 1, "are the ACD's own"),
])
def test_config_mistakes_name_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    (tmp_path / "desktop.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_desktop_config(tmp_path)
    assert f"desktop.yaml:{line}:" in str(err.value) and words in str(err.value)


def test_due_hours_and_working_days() -> None:
    plain = Calendar()
    assert Limit(hours=24).after(at(2026, 11, 23), plain) == at(2026, 11, 24)
    assert Limit(working_days=2).after(at(2026, 11, 27), plain) == at(2026, 12, 1)  # Fri -> Tue
    assert Limit(working_days=1).after(at(2026, 11, 28), plain) == at(2026, 11, 30)  # Sat -> Mon
    # National Day week off (10-01..10-07), Saturday 10-10 worked in lieu
    site = load_calendar(REPO / "config")
    assert Limit(working_days=2).after(at(2026, 9, 30, 16), site) == at(2026, 10, 9, 16)
    assert Limit(working_days=1).after(at(2026, 10, 9, 16), site) == at(2026, 10, 10, 16)  # the make-up Saturday


def test_status_table() -> None:
    check_transition("open", "dispatched")
    check_transition("closed", "reopened")
    check_transition("reopened", "dispatched")
    for bad in [("open", "closed"), ("closed", "open"), ("resolved", "dispatched"), ("nope", "open")]:
        with pytest.raises(ApiError) as err:
            check_transition(*bad)
        assert err.value.status == 409 and repr(bad[0]) in err.value.message
    # every status can be reached, and every status but none is a dead end (no order is ever lost)
    reachable = {"open"} | {t for targets in TRANSITIONS.values() for t in targets}
    assert reachable == set(TRANSITIONS) and all(TRANSITIONS.values())


def test_overdue_and_masking() -> None:
    row = {"status": "dispatched", "due_ts": 100.0, "anonymous": True, "customer_name": "王",
           "incoming_number": "138", "customer_account": "1"}
    assert not is_overdue(row, 100.0) and is_overdue(row, 100.5)
    assert not is_overdue({**row, "status": "resolved"}, 1e9)
    cfg = DesktopConfig()
    agent_view = visible(row, "agent", cfg, 0)
    assert agent_view["customer_name"] != "王" and agent_view["incoming_number"] == "***"
    assert visible(row, "supervisor", cfg, 0)["customer_name"] == "王"
    assert visible({**row, "anonymous": False}, "agent", cfg, 0)["customer_name"] == "王"


def test_login_limiter_window_and_bounds() -> None:
    lim = auth.LoginLimiter(RateLimit(max_failures=3, window_s=60), max_keys=2)
    for t in (0, 10, 20):
        assert lim.retry_after("a", t) == 0
        lim.failed("a", t)
    assert lim.retry_after("a", 30) == 30  # the failure at t=0 leaves the window at 60
    assert lim.retry_after("a", 60) == 0
    lim.failed("b", 61)
    lim.failed("c", 62)  # over max_keys: the oldest key is forgotten, memory stays bounded
    assert len(lim._failures) <= 2
    lim.succeeded("c")
    assert lim.retry_after("c", 63) == 0


async def test_create_user_and_cli(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'u.db'}"
    await migrate(url)
    engine = make_engine(url)
    try:
        user = await auth.create_user(engine, "3001", "周七", "supervisor", "long-enough-pw", now=FakeClock(5).now())
        assert user.is_supervisor
        with pytest.raises(auth.UserExists):
            await auth.create_user(engine, "3001", "x", "agent", "long-enough-pw", now=6.0)
        for bad in [("30 01", "x", "agent", "long-enough-pw"), ("3002", "x", "root", "long-enough-pw"),
                    ("3003", "x", "agent", "short")]:
            with pytest.raises(ValueError):
                await auth.create_user(engine, *bad, now=7.0)
        assert await auth.check_password(engine, "3001", "long-enough-pw") == user
        assert await auth.check_password(engine, "3001", "wrong") is None
        async with engine.connect() as conn:
            assert len((await conn.execute(select(users))).all()) == 1
    finally:
        await engine.dispose()
    parser = argparse.ArgumentParser()
    cli.add_user_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["user", "add", "3004", "--name", "吴八", "--role", "agent", "--password-stdin",
                              "--url", url])
    assert args.func is cli._cmd_user and args.agent_no == "3004" and args.role == "agent"


def test_user_add_command_stores_a_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio
    import io

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    parser = argparse.ArgumentParser()
    cli.add_user_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["user", "add", "3005", "--name", "郑九", "--role", "admin", "--password-stdin",
                              "--url", url])
    monkeypatch.setattr("sys.stdin", io.StringIO("cli-secret-pw\n"))
    assert args.func(args) == 0
    assert "cli-secret-pw" not in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("cli-secret-pw\n"))
    assert args.func(args) == 1  # the same agent number again: a clear message, no traceback
    assert "already exists" in capsys.readouterr().err

    async def check() -> auth.User | None:
        engine = make_engine(url)
        try:
            return await auth.check_password(engine, "3005", "cli-secret-pw")
        finally:
            await engine.dispose()

    assert asyncio.run(check()) == auth.User("3005", "郑九", "admin")
