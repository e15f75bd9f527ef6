"""Broken config files give `file:line: message` and exit code 1, never a traceback."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ctiserver.app.cli import main
from ctiserver.config import load_server_config

REPO = Path(__file__).resolve().parents[1]

CASES = {
    "syntax": ("asterisk:\n  - name: pbx1\n    port: [5038\n", 3, "YAML syntax error"),
    "unknown_key": ("log_level: INFO\nhttp:\n  host: 127.0.0.1\n  prot: 8080\n", 4, "unknown key 'prot'"),
    "wrong_type": ("database:\n  batch_size: many\n", 2, "database.batch_size"),
    "zone_here": ("log_level: INFO\ntimezone: Asia/Shanghai\n", 2, "the time zone is set once, in calendar.yaml"),
    "out_of_range": ("asterisk:\n  - name: pbx1\n    port: 70000\n", 3, "asterisk.0.port"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_server_config_is_reported_with_file_and_line(case, tmp_path, capsys):
    text, line, words = CASES[case]
    (tmp_path / "ctiserver.yaml").write_text(text, encoding="utf-8")
    assert main(["check", "--config", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'ctiserver.yaml'}:{line}: " in err
    assert words in err
    assert "Traceback" not in err


def test_check_subprocess_exit_code_and_no_traceback(tmp_path):
    (tmp_path / "ctiserver.yaml").write_text("http:\n  port: eighty\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "ctiserver", "check", "--config", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"{tmp_path / 'ctiserver.yaml'}:2: http.port" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sample_config_is_valid(tmp_path):
    shutil.copytree(REPO / "config", tmp_path / "config")
    assert main(["check", "--config", str(tmp_path / "config")]) == 0


def test_environment_overrides_for_containers(tmp_path, monkeypatch):
    (tmp_path / "ctiserver.yaml").write_text("http:\n  host: 127.0.0.1\n", encoding="utf-8")
    monkeypatch.setenv("CTISERVER_HTTP_HOST", "0.0.0.0")
    monkeypatch.setenv("CTISERVER_DB_URL", "postgresql+asyncpg://cti@db/cti")
    cfg = load_server_config(tmp_path)
    assert cfg.http.host == "0.0.0.0"
    assert cfg.database.url == "postgresql+asyncpg://cti@db/cti"


def test_missing_config_folder(tmp_path, capsys):
    assert main(["check", "--config", str(tmp_path / "nope")]) == 1
    assert "configuration folder not found" in capsys.readouterr().err


def test_outbound_skills_and_tiers_must_exist_in_the_acd(tmp_path, capsys):
    cfg = tmp_path / "config"
    shutil.copytree(REPO / "config", cfg)
    text = (cfg / "outbound.yaml").read_text(encoding="utf-8")
    text = text.replace("  skill: outbound\n", "  skill: callbacks\n", 1)
    (cfg / "outbound.yaml").write_text(text, encoding="utf-8")
    line = text.splitlines().index("  skill: callbacks") + 1
    assert main(["check", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert f"{cfg / 'outbound.yaml'}:{line}: callbacks.skill: 'callbacks' is not an ACD skill" in err


def test_callback_sample_keys_must_be_work_order_categories(tmp_path, capsys):
    """Issue 12 item 15: `sample: {fault: 0.05}` while work orders say fault_repair called back 100%."""
    cfg = tmp_path / "config"
    shutil.copytree(REPO / "config", cfg)
    text = (cfg / "outbound.yaml").read_text(encoding="utf-8")
    text = text.replace("    fault_repair: 0.05", "    fault: 0.05", 1)
    text = text.replace("  always: [complaint]", "  always: [complaints]", 1)
    (cfg / "outbound.yaml").write_text(text, encoding="utf-8")
    lines = text.splitlines()
    sample = next(i for i, t in enumerate(lines, 1) if t.startswith("    fault: 0.05"))
    always = next(i for i, t in enumerate(lines, 1) if t.startswith("  always: [complaints]"))
    assert main(["check", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert f"{cfg / 'outbound.yaml'}:{sample}: callbacks.sample: 'fault' is not a work-order category " \
           "(desktop.yaml disposition_categories: inquiry, fault_repair," in err
    assert f"{cfg / 'outbound.yaml'}:{always}: callbacks.always: 'complaints' is not a work-order category" in err
    assert "2 problem(s) found" in err


def test_the_escalation_target_needs_a_transfer_code(tmp_path, capsys):
    cfg = tmp_path / "config"
    shutil.copytree(REPO / "config", cfg)
    text = (cfg / "desktop.yaml").read_text(encoding="utf-8").replace("escalation_target: supervisor",
                                                                      "escalation_target: complaint")
    (cfg / "desktop.yaml").write_text(text, encoding="utf-8")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("escalation_target:"))
    assert main(["check", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert f"{cfg / 'desktop.yaml'}:{line}: escalation_target: 'complaint' has no transfer code" in err
