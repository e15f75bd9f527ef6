"""Secrets and what the server shows: no literal AMI secret shipped, a warning for one outside the sandbox,
private (0600) event store files, and a /healthz that tells anonymous callers nothing internal."""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml

from ctiserver.app.cli import main
from ctiserver.config import load_server_config
from ctiserver.events import Event
from ctiserver.store.engine import make_engine, migrate
from ctiserver.store.journal import Journal, Pending
from tests.production import Running, production_server

REPO = Path(__file__).resolve().parents[1]
LITERAL = "asterisk:\n  - name: pbx1\n    host: 127.0.0.1\n    username: ctiserver\n    secret: hunter2\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_shipped_config_and_image_carry_no_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipped = yaml.safe_load((REPO / "config" / "ctiserver.yaml").read_text(encoding="utf-8"))
    for srv in shipped["asterisk"]:
        assert "secret" not in srv and srv["secret_env"] == "CTISERVER_AMI_SECRET"
    sandbox_secret = "ctisandbox"
    assert sandbox_secret not in (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert sandbox_secret not in (REPO / "config" / "ctiserver.yaml").read_text(encoding="utf-8")
    shutil.copytree(REPO / "config", tmp_path / "config")
    assert main(["check", "--config", str(tmp_path / "config")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_check_warns_about_a_literal_secret_outside_the_sandbox(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "config"
    shutil.copytree(REPO / "config", cfg)
    (cfg / "ctiserver.yaml").write_text(LITERAL, encoding="utf-8")
    assert main(["check", "--config", str(cfg)]) == 0  # a warning, not a failure
    err = capsys.readouterr().err
    assert f"{cfg / 'ctiserver.yaml'}:5: warning: asterisk.0.secret is written in the file" in err
    assert "secret_env" in err and "hunter2" not in err
    assert main(["check", "--config", str(cfg), "--sandbox"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_the_sandbox_is_reached_with_its_own_address_and_secret(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(REPO / "config", tmp_path / "config")
    monkeypatch.delenv("CTISERVER_AMI_SECRET", raising=False)
    cfg = load_server_config(tmp_path / "config")
    with pytest.raises(ValueError, match="CTISERVER_AMI_SECRET"):
        cfg.asterisk[0].resolved_secret()
    sandboxed = cfg.for_sandbox("127.0.0.1", 5111, "ctiserver", "sandbox-secret").asterisk[0]
    assert (sandboxed.port, sandboxed.resolved_secret()) == (5111, "sandbox-secret")
    monkeypatch.setenv("CTISERVER_AMI_SECRET", "production")  # the sandbox does not know it
    assert cfg.for_sandbox("127.0.0.1", 5111, "ctiserver", "sandbox-secret").asterisk[0].resolved_secret() \
        == "sandbox-secret"


async def test_the_sqlite_store_and_its_wal_are_private(tmp_path: Path) -> None:
    db = tmp_path / "cti.db"
    url = f"sqlite+aiosqlite:///{db}"
    await migrate(url)
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            await conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        wal = tmp_path / "cti.db-wal"
        assert wal.exists()
        assert mode(db) == 0o600 and mode(wal) == 0o600
    finally:
        await engine.dispose()


def test_the_journal_files_are_private(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "var" / "journal.jsonl")
    journal.open()
    try:
        journal.append([Pending(key="k1", at=1.0, event=Event(ts=1.0, kind="call.new", call_id="c1"))])
        journal.reject([("bad", {"x": 1})])
    finally:
        journal.close()
    assert mode(tmp_path / "var") == 0o700
    for path in (journal.path, journal.lock_path, journal.rejected_path):
        assert mode(path) == 0o600, path


@pytest.fixture
async def prod(tmp_path: Path) -> AsyncIterator[Running]:
    async with production_server(tmp_path) as running:
        await running.add_user("2001", "supervisor")
        await running.add_user("1001", "agent")
        yield running


async def test_healthz_shows_no_internals_to_anonymous_callers(prod: Running, tmp_path: Path) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(prod.url + "/healthz") as r:
            anonymous = await r.text()
        body = json.loads(anonymous)
        assert set(body["db"]) == {"db_ok", "pending", "journaled", "lag_s"}
        assert set(body["ami"]["pbx1"]) == {"connected", "since", "reconnects"}
        assert str(tmp_path) not in anonymous, anonymous
        assert "last_error" not in anonymous
        await prod.login(http, "1001")  # an agent is not an operator
        async with http.get(prod.url + "/healthz") as r:
            assert str(tmp_path) not in await r.text()
        await prod.login(http, "2001")
        async with http.get(prod.url + "/healthz") as r:
            full = await r.json()
        assert full["db"]["journal"] == str(tmp_path / "journal.jsonl")
        assert "last_error" in full["ami"]["pbx1"]
