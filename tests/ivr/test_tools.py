"""Ops tools: check_ivr, ivr try in a terminal, the graph, tts build; hot reload of tree files."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import shutil
import wave
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ctiserver.configfile import ConfigError
from ctiserver.ivr.cli import add_commands
from ctiserver.ivr.reload import TreeRegistry, UnknownTree
from ctiserver.ivr.tools import check_ivr, ivr_graph, ivr_try, static_prompts, to_dot, tts_build
from ctiserver.ivr.tree import load_tree
from ctiserver.ivr.walker import Digits, IvrWalker, Say

from .helpers import SAMPLE_CONFIG, of

NOW = dt.datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()  # a Monday, in hours


@pytest.fixture
def config(tmp_path: Path) -> Path:
    cfg = tmp_path / "config"
    shutil.copytree(SAMPLE_CONFIG / "ivr", cfg / "ivr")
    shutil.copytree(SAMPLE_CONFIG / "data", cfg / "data")
    shutil.copy(SAMPLE_CONFIG / "acd.yaml", cfg / "acd.yaml")
    shutil.copy(SAMPLE_CONFIG / "calendar.yaml", cfg / "calendar.yaml")  # acd.yaml names its hours sets
    return cfg


def test_sample_config_checks_clean() -> None:
    assert check_ivr(SAMPLE_CONFIG, NOW) == []


def test_check_reports_every_file(config: Path) -> None:
    hotline = config / "ivr" / "hotline.yaml"
    hotline.write_text(hotline.read_text(encoding="utf-8").replace("skill: business", "skill: businesss"),
                       encoding="utf-8")
    (config / "ivr" / "broken.yaml").write_text("name: hotline2\nstart: a\nnodes:\n  a: {kind: goto, next: b}\n",
                                                 encoding="utf-8")
    (config / "ivr" / "settings.yaml").write_text("default_tree: hotline\ntts: {rate: 5}\n", encoding="utf-8")
    found = [str(p) for p in check_ivr(config, NOW)]
    assert any(p.startswith(f"{config}/ivr/hotline.yaml:") and "skill 'businesss' is not an ACD skill" in p
               for p in found)
    assert f"{config}/ivr/broken.yaml:4: node 'a' refers to unknown node 'b'" in found
    assert any(p.startswith(f"{config}/ivr/settings.yaml:2: tts.rate") for p in found)


def test_ivr_try_walks_with_sample_data(config: Path) -> None:
    out = io.StringIO()
    keys = io.StringIO("1\n1\n0\n1002\n4\n")
    assert ivr_try(config, "13800000002", keys, out, now=NOW) == 0
    text = out.getvalue()
    assert "城东区因10千伏线路故障停电" in text
    assert "当前欠费金额为86.50元" in text
    assert "→ to the ACD: skill=billing tier=normal" in text
    assert text.rstrip().endswith("☎  hang up (agent)")


def test_ivr_try_hang_up_and_no_input(config: Path) -> None:
    out = io.StringIO()
    assert ivr_try(config, "", io.StringIO("\nq\n"), out, now=NOW) == 0
    text = out.getvalue()
    assert text.count("欢迎致电95598") == 2  # no input: asked again (retries: 1)
    assert text.rstrip().endswith("☎  caller hung up at language")


def test_graph_svg_and_dot(config: Path, tmp_path: Path) -> None:
    svg = ivr_graph(config, tmp_path / "h.svg")
    body = svg.read_text(encoding="utf-8")
    assert body.lstrip().startswith("<?xml") and "<svg" in body and "bill_query" in body
    dot = ivr_graph(config, tmp_path / "h.dot").read_text(encoding="utf-8")
    assert '"main" -> "bill_identity" [label="1"];' in dot
    assert '"business_hours_check" -> "to_business" [label="case 1"];' in dot
    assert '"who" -> "language" [label="on_not_found" style=dashed];' in dot
    tricky = load_tree(Path("q.yaml"), 'start: a\nnodes:\n  a: {kind: hangup, prompt: "say \\"hi\\" \\\\ bye"}\n')
    assert '\\"hi\\" \\\\' in to_dot(tricky)


async def test_tts_build_renders_static_prompts_once(config: Path, tmp_path: Path) -> None:
    (config / "ivr" / "settings.yaml").write_text(
        f"tts: {{cache_dir: {tmp_path / 'cache'}, workers: 2}}\n", encoding="utf-8")
    (config / "ivr" / "hotline.yaml").write_text(
        "start: m\nnodes:\n  m: {kind: menu, prompt: {zh: 请按1, en: Press 1}, options: {'1': z}, "
        "no_match: 错误}\n  z: {kind: hangup, prompt: '再见{caller}'}\n", encoding="utf-8")
    lt = load_tree(config / "ivr" / "hotline.yaml")
    assert sorted(static_prompts(lt, ["zh", "en"])) == [("Press 1", "en"), ("请按1", "zh"), ("错误", "en"),
                                                        ("错误", "zh")]
    rendered, cached, errors = await tts_build(config)
    assert (rendered, cached, errors) == (4, 0, [])
    files = await asyncio.to_thread(lambda: sorted((tmp_path / "cache").glob("*.wav")))
    assert len(files) == 4
    with wave.open(str(files[0]), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
    assert await tts_build(config) == (0, 4, [])


def test_cli_registration() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["ivr", "try", "--caller", "13800000001"])
    assert args.caller == "13800000001" and callable(args.func)
    assert parser.parse_args(["ivr", "graph", "-o", "x.svg"]).output == "x.svg"
    assert callable(parser.parse_args(["tts", "build"]).func)


# --- hot reload -------------------------------------------------------------------------------------------
def _bump(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_reload_good_edit_new_calls_only(config: Path) -> None:
    reports: list[list[object]] = []
    reg = TreeRegistry(config, sound_dirs=[], on_report=reports.append)
    reg.load()
    v1 = reg.get("hotline")
    in_progress = IvrWalker(v1, {"call_id": "a", "caller": ""}, 0.0)
    in_progress.start()
    hotline = config / "ivr" / "hotline.yaml"
    _bump(hotline, "输入有误。", "按键无效。")
    result = reg.check_files()
    assert result.loaded == ["hotline"] and not result.problems
    v2 = reg.get("hotline")
    assert v2.version != v1.version
    # the call under way keeps its version; a new call gets the edit
    out = in_progress.on_input(Digits("7"))
    assert of(out, Say)[0].text == "输入有误。"
    fresh = IvrWalker(v2, {"call_id": "b", "caller": ""}, 0.0)
    fresh.start()
    assert of(fresh.on_input(Digits("7")), Say)[0].text == "按键无效。"
    assert reg.check_files().loaded == []  # nothing changed: nothing reloaded
    assert reports == []


def test_reload_bad_edit_keeps_old_tree_and_reports(config: Path) -> None:
    reports: list[list[object]] = []
    reg = TreeRegistry(config, sound_dirs=[], on_report=reports.append)
    reg.load()
    v1 = reg.get("hotline")
    hotline = config / "ivr" / "hotline.yaml"
    _bump(hotline, '"1": bill_identity', '"1": bill_identty')
    result = reg.check_files()
    assert result.loaded == []
    [problem] = result.problems
    assert str(problem).startswith(f"{hotline}:") and "unknown node 'bill_identty'" in str(problem)
    assert reg.get("hotline") is v1 and reports == [result.problems] and reg.problems == result.problems
    _bump(hotline, "nodes:", "nodes: [")  # a YAML syntax error
    assert "YAML syntax error" in str(reg.check_files().problems[0])
    assert reg.get("hotline") is v1
    _bump(hotline, "nodes: [", "nodes:")
    _bump(hotline, '"1": bill_identty', '"1": bill_identity')
    assert reg.check_files().loaded == [] and reg.get("hotline").version == v1.version  # same text again
    with pytest.raises(UnknownTree, match="no IVR tree named 'nope' \\(have: hotline\\)"):
        reg.get("nope")


def test_first_load_must_be_good(config: Path) -> None:
    _bump(config / "ivr" / "hotline.yaml", "start: who", "start: whom")
    with pytest.raises(ConfigError, match="start: unknown node 'whom'"):
        TreeRegistry(config, sound_dirs=[]).load()


async def test_sighup_and_polling_pick_up_edits(config: Path) -> None:
    reg = TreeRegistry(config, sound_dirs=[])
    reg.load()
    v1 = reg.get("hotline").version
    task = asyncio.create_task(reg.run(poll_s=3600))
    try:
        assert reg.install_sighup()
        await asyncio.to_thread(_bump, config / "ivr" / "hotline.yaml", "输入有误。", "按错了。")
        import os
        import signal

        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(100):
            if reg.get("hotline").version != v1:
                break
            await asyncio.sleep(0.02)
        assert reg.get("hotline").version != v1
    finally:
        task.cancel()
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
