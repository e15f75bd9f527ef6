"""`ctiserver ha status`: one line per fact, one line (never a traceback) when it cannot tell."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from ctiserver.app.cli import main
from ctiserver.ha.pg import PgLease
from ctiserver.store.engine import make_engine

from ..production import edit_yaml, production_config


def ha_config(tmp: Path, url: str) -> Path:
    cfg = production_config(tmp, 1)
    edit_yaml(cfg / "ctiserver.yaml", lambda d: d.update(ha={"node": "b"}) or d["database"].update(url=url))
    return cfg


async def test_status_names_the_leader_and_this_nodes_role(tmp_path: Path, ha_db: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    engine = make_engine(ha_db)
    try:
        await PgLease(engine, "a", "http://10.0.0.1:8080", 3.0).attempt(None)
    finally:
        await engine.dispose()
    cfg = ha_config(tmp_path, ha_db)
    code = await asyncio.to_thread(main, ["ha", "status", "--config", str(cfg)])
    out = capsys.readouterr().out
    assert code == 0
    assert [ln.split()[:2] for ln in out.splitlines()][:5] == [
        ["node", "b"], ["role", "standby"], ["epoch", "1"], ["leader", "a"], ["leader_address", "http://10.0.0.1:8080"]]


def test_status_with_the_database_away_or_without_ha_is_one_line(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening: connects are refused
        cfg = ha_config(tmp_path / "away", f"postgresql+asyncpg://postgres@127.0.0.1:{s.getsockname()[1]}/x")
        assert main(["ha", "status", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cannot read the lease: the database is not answering") and err.count("\n") == 1, err
    solo = production_config(tmp_path / "solo", 1)
    assert main(["ha", "status", "--config", str(solo)]) == 1
    err = capsys.readouterr().err
    assert "no `ha:` block" in err and "Traceback" not in err
