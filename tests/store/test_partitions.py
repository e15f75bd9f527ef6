"""Month partitions: their arithmetic, the retention setting, migration 0016 down and up (the KPI side, the
reports and the job: tests/kpi/test_kpi_partitions.py)."""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from ctiserver.app.cli import check_config
from ctiserver.config import Retention
from ctiserver.store.partitions import (
    add_months,
    cutoff,
    drop_bound,
    month_of,
    month_start,
    next_daily_run,
    partition_name,
)

SH = ZoneInfo("Asia/Shanghai")
UTC = ZoneInfo("UTC")


def test_months() -> None:
    assert add_months((2026, 11), 1) == (2026, 12)
    assert add_months((2026, 12), 1) == (2027, 1)
    assert add_months((2026, 1), -1) == (2025, 12)
    assert add_months((2026, 3), -27) == (2023, 12)
    assert month_start((2026, 12)) == datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    assert month_of(month_start((2026, 12)) - 0.001) == (2026, 11)
    assert partition_name("events", (2027, 1)) == "events_p2027_01"


def test_cutoff_keeps_whole_local_months_and_drops_whole_utc_months() -> None:
    now = datetime(2026, 12, 1, 0, 30, tzinfo=SH).timestamp()  # still 30 November in UTC
    assert cutoff(now, 1, SH) == datetime(2026, 11, 1, tzinfo=SH).timestamp()
    assert cutoff(now, 12, SH) == datetime(2025, 12, 1, tzinfo=SH).timestamp()
    # local 1 November starts at 16:00 UTC on 31 October: October's UTC partition stays, September's goes
    assert drop_bound(cutoff(now, 1, SH)) == datetime(2026, 10, 1, tzinfo=UTC).timestamp()
    # a zone west of UTC: local 1 November is already November in UTC
    ny = ZoneInfo("America/New_York")
    assert drop_bound(cutoff(datetime(2026, 12, 5, tzinfo=ny).timestamp(), 1, ny)) == \
        datetime(2026, 11, 1, tzinfo=UTC).timestamp()


def test_next_daily_run_is_the_next_local_time_strictly_after_now() -> None:
    at = datetime(2026, 12, 4, 3, 30, tzinfo=SH).timestamp()
    assert next_daily_run(at - 1, SH, 210) == at
    assert next_daily_run(at, SH, 210) == at + 86400
    assert next_daily_run(at + 3600, SH, 210) == at + 86400


def test_retention_setting_is_checked() -> None:
    assert Retention().events_months is None and Retention().facts_months is None
    assert Retention(events_months=13, facts_months=25).run_minute() == 210
    with pytest.raises(ValidationError, match=r"facts_months \(3\) must be at least events_months \(6\)"):
        Retention(events_months=6, facts_months=3)
    with pytest.raises(ValidationError):
        Retention(events_months=0)
    with pytest.raises(ValidationError):
        Retention(run_at="25:00")


def test_ctiserver_check_reports_a_bad_retention(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(Path(__file__).resolve().parents[2] / "config", config)
    path = config / "ctiserver.yaml"
    text = path.read_text()
    assert "  journal: var/journal.jsonl\n" in text
    good = text.replace("  journal: var/journal.jsonl\n", "  journal: var/journal.jsonl\n  retention:\n"
                        "    events_months: 13\n    facts_months: 25\n")
    path.write_text(good)
    assert check_config(config) == []
    path.write_text(good.replace("facts_months: 25", "facts_months: 6"))
    problems = check_config(config)
    assert len(problems) == 1 and "ctiserver.yaml" in str(problems[0]) and "facts_months" in str(problems[0])


async def test_migration_0016_goes_down_and_up_again_keeping_rows_ids_and_keys() -> None:
    from alembic import command
    from sqlalchemy import text
    from sqlalchemy.engine import Connection

    from ctiserver.store.engine import alembic_config, make_engine, migrate
    from tests import pgutil

    name = f"ctitest_part_down_{os.getpid()}"
    url = await pgutil.fresh_database(name)
    engine = make_engine(url)

    def down(conn: Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0015")

    async def keys() -> set[str]:
        async with engine.connect() as conn:
            return {r[0] for r in await conn.execute(text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'events'::regclass"))}

    try:
        await migrate(url)
        async with engine.begin() as conn:
            for i, ts in enumerate((1.0, datetime(2026, 11, 5, tzinfo=UTC).timestamp(), 4.1e9)):
                await conn.execute(text("INSERT INTO events (ts, kind, event_key, data) VALUES (:ts, 'x', :k, '{}')"),
                                   {"ts": ts, "k": f"k{i}"})
        assert await keys() == {"PRIMARY KEY (id, ts)", "UNIQUE (event_key, ts)"}
        async with engine.begin() as conn:
            await conn.run_sync(down)
        assert await keys() == {"PRIMARY KEY (id)", "UNIQUE (event_key)"}
        await migrate(url)
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO events (ts, kind, event_key, data) VALUES (2.0, 'x', 'n', '{}')"))
        async with engine.connect() as conn:
            ids = [r[0] for r in await conn.execute(text("SELECT id FROM events ORDER BY id"))]
            where = dict((await conn.execute(text("SELECT event_key, tableoid::regclass::text FROM events"))).all())
        assert ids == [1, 2, 3, 4]  # the sequence went on
        assert where == {"k0": "events_p1970_01", "k1": "events_p2026_11", "k2": "events_default",
                         "n": "events_p1970_01"}
    finally:
        await engine.dispose()
        await pgutil.drop_database(name)
