"""`ctiserver campaign ...` handlers against a real SQLite file, the way an operator runs them."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
from pathlib import Path

import pytest

from ctiserver.outbound.cli import add_campaign_commands, progress_bar
from ctiserver.outbound.export import not_reached_csv
from ctiserver.outbound.model import Dial, Outcome
from ctiserver.outbound.store import OutboundStore
from ctiserver.store.engine import make_engine, migrate

REPO = Path(__file__).resolve().parents[2]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctiserver")
    add_campaign_commands(p.add_subparsers(dest="command", required=True))
    return p


@pytest.fixture
def site(tmp_path: Path) -> Path:
    cfg = tmp_path / "config"
    (cfg / "campaigns").mkdir(parents=True)
    shutil.copy(REPO / "config" / "outbound.yaml", cfg / "outbound.yaml")
    shutil.copy(REPO / "config" / "campaigns" / "outage-feeder12.yaml", cfg / "campaigns")
    (cfg / "ctiserver.yaml").write_text(f"database:\n  url: sqlite+aiosqlite:///{tmp_path / 'cti.db'}\n")

    asyncio.run(migrate(f"sqlite+aiosqlite:///{tmp_path / 'cti.db'}"))  # the schema, as `db upgrade` makes it
    return cfg


def run(site: Path, *argv: str) -> int:
    args = parser().parse_args(["campaign", *argv, "--config", str(site)])
    return int(args.func(args))


def test_progress_bar() -> None:
    assert progress_bar(12, 40, width=10) == "[###-------] 12/40  30%"
    assert progress_bar(0, 0, width=4) == "[----] 0/0   0%"
    assert progress_bar(5, 5, width=4) == "[####] 5/5 100%"


def test_import_start_pause_status_results(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = site / "bad.csv"
    bad.write_text("number,name,important\n13800000001,张三,是\n12345,李四,否\n13800000001,王五,否\n",
                   encoding="utf-8")
    assert run(site, "import", "outage-feeder12", str(bad)) == 1
    err = capsys.readouterr().err
    assert "row 3:" in err and "row 4: duplicate of row 2" in err and "nothing imported" in err
    # nothing half-imported: not even an empty draft campaign that someone could start
    assert run(site, "status", "outage-feeder12", "--json") == 1
    assert "no campaign named 'outage-feeder12'" in capsys.readouterr().err
    assert run(site, "start", "outage-feeder12") == 1

    assert run(site, "dnc", "138-0000-0003", "--reason", "asked") == 0
    good = site / "good.csv"
    good.write_text("number,name,important\n13800000001,张三,是\n13800000002,李四,否\n13800000003,王五,否\n",
                    encoding="utf-8")
    capsys.readouterr()
    assert run(site, "import", "outage-feeder12", str(good)) == 0
    out = capsys.readouterr().out
    assert "imported 2 contact(s)" in out and "13800000003 is on the do-not-call list" in out

    assert run(site, "start", "outage-feeder12") == 0
    assert run(site, "pause", "outage-feeder12") == 0
    assert run(site, "pause", "outage-feeder12") == 1
    assert "cannot pause campaign 'outage-feeder12': it is paused" in capsys.readouterr().err
    assert run(site, "resume", "outage-feeder12") == 0
    capsys.readouterr()
    assert run(site, "status") == 0
    line = capsys.readouterr().out
    assert "outage-feeder12" in line and "running" in line and "0/2" in line

    async def finish_one() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{site.parent / 'cti.db'}")
        store = OutboundStore(engine)
        snap = await store.snapshot(10**10)
        for c in snap.contacts:
            camp = await store.campaign("outage-feeder12")
            for n in (1, 2, 3):
                cid = f"ob-{camp.uid}-{c.id}-{n}"
                await store.begin_attempt(Dial(camp.name, c.id, c.number, n, cid), 10.0 * n)
                outcome = Outcome.BUSY if c.priority else Outcome.CONFIRMED
                await store.finish_attempt(cid, outcome, "", 10.0 * n)
                if not c.priority:
                    break
        await engine.dispose()

    asyncio.run(finish_one())
    export = site / "missed.csv"
    assert run(site, "results", "outage-feeder12", "--not-reached-csv", str(export)) == 0
    out = capsys.readouterr().out
    assert "IMPORTANT not reached: 张三 13800000001" in out
    text = export.read_text(encoding="utf-8")
    assert text.startswith("\ufeffnumber,name,account") and "13800000001,张三" in text and "busy" in text
    assert run(site, "results", "outage-feeder12", "--json") == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["reached"], r["confirmed"], r["not_reached"], r["busy"]) == (1, 1, 1, 3)
    assert r["attempts_per_contact"] == {"1": 1, "3": 1}


def test_errors_are_plain_messages(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(site, "start", "nope") == 1
    assert "no campaign named 'nope'" in capsys.readouterr().err
    assert run(site, "import", "outage-feeder12", str(site / "missing.csv")) == 1
    assert "cannot read" in capsys.readouterr().err
    assert run(site, "import", "no-such-campaign", str(site / "ctiserver.yaml")) == 1
    assert "file not found" in capsys.readouterr().err
    assert run(site, "dnc", "95598") == 1


def test_not_reached_csv_defuses_spreadsheet_formulas() -> None:
    text = not_reached_csv([{"number": "13800000001", "name": "=HYPERLINK(\"x\")", "var_note": "+1"}])
    assert "'=HYPERLINK" in text and ",'+1" in text


def test_not_reached_csv_never_writes_control_characters_raw() -> None:
    """Rows stored before imports refused them must not carry terminal escapes or line breaks out."""
    text = not_reached_csv([{"number": "13800000001", "name": "张三\r\n\x1b[2J", "area": "城东\u009b"}])
    body = text.split("\r\n", 1)[1]
    assert "\x1b" not in text and "\u009b" not in text and body.count("\r\n") == 1
    assert "张三\\x0d\\x0a\\x1b[2J" in body and "城东\\x9b" in body


@pytest.mark.parametrize("bad", [
    "number,name\n13800000001,张三\n13800000002,李四\x1b[31m\n",  # a terminal escape in a name
    'number,name\n13800000001,张三\n13800000002,"李四\n13800000003,王五\n',  # an unclosed quote
    "number,name\n13800000001,张三\n١٣٨٠٠٠٠٠٠٠٢,李四\n",  # Arabic-Indic digits
])
def test_a_rejected_import_creates_no_campaign(site: Path, capsys: pytest.CaptureFixture[str], bad: str) -> None:
    """Issue 12 item 10: the campaign was created before validation and stayed, empty, startable."""
    path = site / "bad.csv"
    path.write_text(bad, encoding="utf-8")
    assert run(site, "import", "outage-feeder12", str(path)) == 1
    assert "row 3:" in capsys.readouterr().err
    assert run(site, "start", "outage-feeder12") == 1
    assert "no campaign named 'outage-feeder12'" in capsys.readouterr().err
    assert run(site, "import", "outage-feeder12", str(path), "--skip-bad") == 0
    out = capsys.readouterr().out
    assert "created campaign outage-feeder12" in out and "imported 1 contact(s)" in out


def test_an_import_with_nothing_to_import_creates_no_campaign(site: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run(site, "dnc", "13800000001") == 0
    path = site / "all-dnc.csv"
    path.write_text("number\n13800000001\n", encoding="utf-8")
    assert run(site, "import", "outage-feeder12", str(path)) == 1
    assert "no contact to import; campaign outage-feeder12 was not created" in capsys.readouterr().err
    assert run(site, "status", "outage-feeder12") == 1


def test_import_from_customer_tables(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sqlalchemy import Boolean, Column, Float, Integer, MetaData, Numeric, String, Table, insert

    md = MetaData()  # the columns of the IVR's customer tables that outbound reads
    customers = Table("customers", md, Column("account", String(20), primary_key=True),
                      Column("name", String(100)), Column("tier", String(20)), Column("area", String(60)),
                      Column("category", String(30)), Column("arrears", Numeric(12, 2)),
                      Column("due_date", String(10)), Column("important", Boolean),
                      Column("updated_ts", Float))
    phones = Table("customer_phones", md, Column("id", Integer, primary_key=True),
                   Column("phone", String(20)), Column("account", String(20)))

    async def fill() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{site.parent / 'cti.db'}")
        async with engine.begin() as conn:
            await conn.run_sync(md.create_all)
            await conn.execute(insert(customers), [
                {"account": "A1", "name": "张三", "tier": "vip", "area": "城东街道", "category": "residential",
                 "arrears": 0, "important": True, "updated_ts": 0.0},
                {"account": "A2", "name": "李四", "tier": "normal", "area": "城西", "category": "residential",
                 "arrears": 0, "important": False, "updated_ts": 0.0}])
            await conn.execute(insert(phones), [{"phone": "13800000001", "account": "A1"},
                                                {"phone": "13800000002", "account": "A2"}])
        await engine.dispose()

    asyncio.run(fill())
    assert run(site, "import", "outage-feeder12") == 2
    assert run(site, "import", "outage-feeder12", "--from-customers") == 0
    assert "imported 1 contact(s)" in capsys.readouterr().out
    shutil.copy(REPO / "config" / "campaigns" / "survey-workorders.yaml", site / "campaigns")
    assert run(site, "import", "survey-workorders", "--from-customers") == 1
    assert "cannot take its targets from the customer tables" in capsys.readouterr().err
