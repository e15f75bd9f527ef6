"""The `ha:` block: validated, PostgreSQL only, the node's name from the environment for containers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ctiserver.config import load_server_config
from ctiserver.configfile import ConfigError

CONFIG = Path(__file__).resolve().parents[2] / "config"
PG = "postgresql+asyncpg://cti@db.example/cti"


def folder(tmp_path: Path, extra: str, url: str = PG) -> Path:
    shutil.copy(CONFIG / "ctiserver.yaml", tmp_path / "ctiserver.yaml")
    text = (tmp_path / "ctiserver.yaml").read_text(encoding="utf-8")
    text = text.replace("url: sqlite+aiosqlite:///var/ctiserver.db", f"url: {url}")
    (tmp_path / "ctiserver.yaml").write_text(text + extra, encoding="utf-8")
    return tmp_path


def test_without_the_block_a_node_runs_alone(tmp_path: Path) -> None:
    assert load_server_config(CONFIG).ha is None


def test_the_block_with_its_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_server_config(folder(tmp_path, "ha:\n  node: cti-a\n")).ha
    assert cfg is not None and (cfg.node, cfg.lease_ttl_s, cfg.renew_s, cfg.address) == ("cti-a", 3.0, 1.0, "")
    monkeypatch.setenv("CTISERVER_HA_NODE", "cti-b")
    assert load_server_config(tmp_path).ha.node == "cti-b"  # type: ignore[union-attr]


def test_the_node_name_alone_does_not_turn_ha_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTISERVER_HA_NODE", "cti-b")
    assert load_server_config(CONFIG).ha is None


@pytest.mark.parametrize(("extra", "url", "at", "message"), [
    ("ha:\n  node: a\n", "sqlite+aiosqlite:///var/ctiserver.db", 0, "high availability requires PostgreSQL"),
    ("ha:\n  node: a\n  renew_s: 2.5\n", PG, 0, "renew_s (2.5) must be shorter than lease_ttl_s minus its guard"),
    ("ha:\n  node: a\n  lease_ttl_s: 0.5\n", PG, 2, "ha.lease_ttl_s: Input should be greater than or equal to 1"),
    ("ha:\n  node: a b\n", PG, 1, "ha.node: String should match pattern"),
    ("ha:\n  lease_ttl_s: 3\n", PG, 0, "missing required key 'ha.node'"),
])
def test_mistakes_are_named_at_their_line(tmp_path: Path, extra: str, url: str, at: int, message: str) -> None:
    path = folder(tmp_path, extra, url)
    with pytest.raises(ConfigError) as err:
        load_server_config(path)
    line = len((path / "ctiserver.yaml").read_text(encoding="utf-8").splitlines()) - extra.count("\n") + 1 + at
    assert str(err.value).startswith(f"{path / 'ctiserver.yaml'}:{line}")
    assert message in str(err.value)
