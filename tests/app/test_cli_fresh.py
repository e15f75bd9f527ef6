"""Every `ctiserver` command on a fresh checkout: it creates what it needs or says in one line what to run first.

The commands are read from the argparse tree, so a command added later is run here too
without anyone remembering to list it.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from ctiserver.app.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "a-long-enough-password\n"

# Arguments that make a command do its real work (the generic placeholders would only test "not found").
MEANINGFUL = {
    ("campaign", "import"): ["outage-feeder12", "--from-customers"],
    ("campaign", "dnc"): ["13800000001"],
    ("user", "add"): ["add", "1001", "--name", "张三", "--password-stdin"],
    ("simulate",): ["--scenario", "config/scenarios/erlang-c.yaml"],
    ("ivr", "graph"): ["--output", "tree.dot"],
    ("ivr", "try"): ["--caller", "13800000001"],
}
# More ways to run a command than the one above.
VARIANTS = [("simulate", "--scenario", "config/scenarios/erlang-c.yaml", "--from-db", "var/ctiserver.db"),
            ("report", "--format", "table")]
# These start a server or Asterisk and run until stopped: on a fresh config they are exercised by the
# banner and demo tests (tests/sim/test_banner.py); here they run where they must stop at once.
LONG_RUNNING = {("serve",), ("demo",), ("asterisk", "up"), ("asterisk", "restart"), ("asterisk", "build")}


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                                            argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if subs:
        for name, p in subs[0].choices.items():
            yield from _leaves(p, (*path, name))
        return
    yield path, parser


def commands() -> list[tuple[str, ...]]:
    """Every command as argv: subparsers walked, and each choice of a positional `action` taken."""
    out: list[tuple[str, ...]] = []
    for path, parser in _leaves(build_parser()):
        positionals = [a for a in parser._actions if not a.option_strings and a.nargs not in ("?", "*")]
        choice = next((a for a in positionals if a.choices), None)
        variants = [(str(c),) for c in choice.choices] if choice is not None and choice.choices else [()]
        for variant in variants:
            key = (*path, *variant)
            argv: list[str] = list(path)
            if key in MEANINGFUL or path in MEANINGFUL:
                argv += MEANINGFUL.get(key, MEANINGFUL.get(path, []))
                out.append(tuple(argv))
                continue
            for a in parser._actions:
                if isinstance(a, argparse._HelpAction):
                    continue
                if not a.option_strings and a.nargs not in ("?", "*"):
                    argv.append(variant[0] if a is choice and variant else "x1")
                elif a.option_strings and a.required:
                    argv += [a.option_strings[-1], str(next(iter(a.choices))) if a.choices else "x1"]
            out.append(tuple(argv))
    return out + VARIANTS


def _key(argv: tuple[str, ...]) -> tuple[str, ...]:
    return argv[:2] if argv[0] in ("asterisk", "campaign", "ivr", "tts", "db", "user") else argv[:1]


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD))
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse
            rc = int(exc.code or 0)
    return rc, out.getvalue() + err.getvalue()


def _assert_clear(argv: list[str], rc: int, text: str) -> None:
    assert "Traceback" not in text, f"{argv}: {text}"
    assert not any(line.lstrip().startswith('File "') for line in text.splitlines()), f"{argv}: {text}"
    if rc != 0:
        lines = [line for line in text.splitlines() if line.strip()]
        assert lines, f"{argv} failed (exit {rc}) without a word"
        assert len(lines) <= 3, f"{argv}: not a short message:\n{text}"


ALL = commands()


def test_the_command_list_comes_from_the_parser():
    names = {_key(a) for a in ALL}
    assert {("serve",), ("check",), ("report",), ("user", "add"), ("asterisk", "status"), ("db", "upgrade"),
            ("campaign", "status"), ("tts", "build"), ("demo",), ("simulate",)} <= names
    assert LONG_RUNNING <= names  # a renamed command must not silently drop out of the special cases


@pytest.mark.parametrize("argv", ALL, ids=[" ".join(a) for a in ALL])
def test_every_command_in_an_empty_folder(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not-a-folder").write_text("")
    extra = ["--root", "not-a-folder/root"] if argv[0] == "asterisk" else []  # never the real sandbox
    rc, text = _run([*argv, *extra], monkeypatch)
    _assert_clear([*argv, *extra], rc, text)
    if argv[0] != "asterisk":
        assert rc == 1 and "configuration folder not found" in text, text


@pytest.mark.parametrize("argv", [a for a in ALL if _key(a) not in LONG_RUNNING], ids=lambda a: " ".join(a))
def test_every_command_on_a_fresh_copy_of_the_config(argv, tmp_path, monkeypatch):
    shutil.copytree(REPO / "config", tmp_path / "config")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not-a-folder").write_text("")
    extra = ["--root", "not-a-folder/root"] if argv[0] == "asterisk" else []
    rc, text = _run([*argv, *extra], monkeypatch)
    _assert_clear([*argv, *extra], rc, text)


def test_report_and_user_add_on_a_fresh_checkout(tmp_path):
    """The two commands first reported: a real process, no var/ folder."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    cmd = [sys.executable, "-m", "ctiserver"]
    rep = subprocess.run([*cmd, "report", "--config", "config"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert rep.returncode == 1 and "Traceback" not in rep.stderr
    assert rep.stderr.strip().count("\n") == 0
    assert "ctiserver db upgrade --config config" in rep.stderr
    add = subprocess.run([*cmd, "user", "add", "1001", "--name", "张三", "--password-stdin", "--config", "config"],
                         cwd=tmp_path, input=PASSWORD, capture_output=True, text=True, timeout=120)
    assert add.returncode == 0, add.stderr
    assert "user 1001 added" in add.stdout
    db = tmp_path / "var" / "ctiserver.db"
    assert db.stat().st_mode & 0o777 == 0o600
    rep = subprocess.run([*cmd, "report", "--config", "config", "--format", "table"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stderr


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(tmp_path):
    shutil.copytree(REPO / "config", tmp_path / "config")
    (tmp_path / "var").write_text("a file where the data folder should be")
    cmd = [sys.executable, "-m", "ctiserver"]
    run = subprocess.run([*cmd, "db", "upgrade", "--config", "config"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "--debug" in run.stderr
    run = subprocess.run([*cmd, "--debug", "db", "upgrade", "--config", "config"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" in run.stderr
