"""`ctiserver check` on hostile config files: one `file:line: message` each and exit 1, never a traceback;
and a check whose time grows linearly with the file's size."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctiserver.app.cli import main
from ctiserver.app.settings import check_all

REPO = Path(__file__).resolve().parents[1]
NOW = 1_795_399_200.0  # 2026-11-23 10:00 in Shanghai: when the sample data's offsets count from


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "config", tmp_path / "config")
    return tmp_path / "config"


def check(cfg: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["check", "--config", str(cfg)])
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text
    return rc, text


@pytest.mark.parametrize("name", ["ctiserver.yaml", "acd.yaml", "calendar.yaml", "desktop.yaml", "kpi.yaml",
                                  "outbound.yaml", "ivr/settings.yaml", "ivr/hotline.yaml",
                                  "campaigns/outage-feeder12.yaml"])
def test_a_config_file_that_is_a_folder(name: str, cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cfg / name).unlink()
    (cfg / name).mkdir()
    rc, text = check(cfg, capsys)
    assert rc == 1
    assert f"{cfg / name}:0: is a folder, not a file" in text


def test_a_python_tag_is_refused_with_its_line(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (cfg / "acd.yaml").read_text(encoding="utf-8")
    text += "extra: !!python/object/apply:os.system ['touch /tmp/pwned-by-config']\n"
    (cfg / "acd.yaml").write_text(text, encoding="utf-8")
    line = text.count("\n")
    rc, out = check(cfg, capsys)
    assert rc == 1
    assert f"{cfg / 'acd.yaml'}:{line}: tag !!python/object/apply:os.system is not allowed" in out


def test_a_local_tag_is_refused_too(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cfg / "ctiserver.yaml").write_text("timezone: !secret Asia/Shanghai\n", encoding="utf-8")
    rc, out = check(cfg, capsys)
    assert rc == 1 and f"{cfg / 'ctiserver.yaml'}:1: tag !secret is not allowed" in out


@pytest.mark.parametrize("style", ["flow", "block"])
@pytest.mark.parametrize("depth", [100, 5000, 100_000])
def test_very_deep_nesting(style: str, depth: int, cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if style == "flow":
        text = "timezone: Asia/Shanghai\nhttp: " + "[" * depth + "]" * depth + "\n"
    else:
        depth = min(depth, 5000)  # the indentation alone grows as depth squared
        text = "timezone: Asia/Shanghai\n" + "".join(" " * i + "k:\n" for i in range(depth)) + " " * depth + "v\n"
    (cfg / "ctiserver.yaml").write_text(text, encoding="utf-8")
    rc, out = check(cfg, capsys)
    assert rc == 1
    assert f"{cfg / 'ctiserver.yaml'}:" in out
    assert "nested deeper than 64 levels" in out or "maximum nesting depth" in out, out


def test_duplicate_keys_are_errors_with_both_lines(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (cfg / "ctiserver.yaml").write_text("timezone: Asia/Shanghai\nhttp:\n  port: 8080\n  host: 127.0.0.1\n"
                                        "  port: 9090\ntimezone: UTC\n", encoding="utf-8")
    rc, out = check(cfg, capsys)
    assert rc == 1
    assert f"{cfg / 'ctiserver.yaml'}:5: duplicate key 'port' (first on line 3)" in out
    assert f"{cfg / 'ctiserver.yaml'}:6: duplicate key 'timezone' (first on line 1)" in out


def test_duplicate_node_ids_in_an_ivr_tree(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = cfg / "ivr" / "hotline.yaml"
    text = path.read_text(encoding="utf-8")
    text += "  who:\n    kind: hangup\n    prompt: bye\n"
    path.write_text(text, encoding="utf-8")
    rc, out = check(cfg, capsys)
    assert rc == 1 and f"{path}:{text.count(chr(10)) - 2}: duplicate key 'who'" in out


def test_aliases_that_multiply_the_data(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["a0: &a0 [" + ", ".join(["x"] * 2000) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    (cfg / "kpi.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    t0 = time.process_time()
    rc, out = check(cfg, capsys)
    assert rc == 1 and "aliases expand to too many values" in out
    assert time.process_time() - t0 < 60  # 2e11 values expanded would never finish


def test_the_subprocess_exit_code_for_a_tag(cfg: Path) -> None:
    (cfg / "ctiserver.yaml").write_text("asterisk: !!python/name:os.system\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "ctiserver", "check", "--config", str(cfg)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{cfg / 'ctiserver.yaml'}:1: tag !!python/name:os.system is not allowed" in proc.stderr


# ---------------------------------------------------------------------------------------- size

def _servers(n_bytes: int) -> str:
    out, i, size = ["timezone: Asia/Shanghai", "asterisk:"], 0, 0
    while size < n_bytes:
        block = f"  - name: pbx{i}\n    host: 127.0.0.1\n    port: 5038\n    username: cti\n    secret_env: S{i}"
        out.append(block)
        size, i = size + len(block) + 1, i + 1
    return "\n".join(out) + "\n"


def _unknown_keys(n_bytes: int) -> str:
    out, i, size = ["timezone: Asia/Shanghai", "http:"], 0, 0
    while size < n_bytes:
        out.append(f"  badkey{i}: {i}")
        size, i = size + len(out[-1]) + 1, i + 1
    return "\n".join(out) + "\n"


def _ivr_chain(n_bytes: int) -> str:
    out, i, size = ["name: hotline", "start: n0", "nodes:"], 0, 0
    while size < n_bytes:
        block = (f"  n{i}:\n    kind: play\n    prompt: {{zh: 你好{i}, en: hello {i}}}\n    next: n{i + 1}\n"
                 f"    bad{i}: x")
        out.append(block)
        size, i = size + len(block) + 1, i + 1
    out.append(f"  n{i}:\n    kind: hangup\n    prompt: bye")
    return "\n".join(out) + "\n"


def _cpu_seconds_to_check(cfg: Path) -> float:
    t0 = time.process_time()  # CPU time of this process: other load on the machine does not count
    check_all(cfg, NOW)
    return time.process_time() - t0


def _least_interleaved(cfgs: dict[float, Path], rounds: int) -> dict[float, float]:
    """Each config's least CPU time to check over `rounds` rounds of small, big, small, big..."""
    best = dict.fromkeys(cfgs, float("inf"))
    for _ in range(rounds):
        for mb, cfg in cfgs.items():
            best[mb] = min(best[mb], _cpu_seconds_to_check(cfg))
    return best


@pytest.mark.parametrize(("file", "make"), [("ctiserver.yaml", _servers), ("ctiserver.yaml", _unknown_keys),
                                            ("ivr/hotline.yaml", _ivr_chain)],
                         ids=["many-servers", "many-unknown-keys", "long-ivr-tree"])
def test_check_time_is_linear_in_the_file_size(file: str, make, tmp_path: Path) -> None:
    """8x the file: about 8x the check's CPU time when linear, 64x when quadratic. The bound (24) sits
    between the two with room for a busy machine (shared caches slow the big run more than the small one:
    a 2-4x ratio at 4x the size was seen at idle, 9.6x under a full suite); each size is the least of
    two interleaved runs, so one run slowed by a neighbour does not decide."""
    cfgs = {}
    for mb in (0.125, 1.0):
        cfgs[mb] = cfg = tmp_path / f"c{mb}"
        shutil.copytree(REPO / "config", cfg)
        (cfg / file).write_text(make(int(mb * 1024 * 1024)), encoding="utf-8")
    check_all(cfgs[0.125], NOW)  # warm up imports and caches once
    times = _least_interleaved(cfgs, rounds=2)
    ratio = times[1.0] / times[0.125]
    assert ratio < 24, f"8x the file took {ratio:.1f}x the time ({times})"
