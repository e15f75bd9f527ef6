"""IvrService: start, static prompts rendered per tree version, hot reload, a call, stop."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from ctiserver.customers.data import MemoryDataProvider, read_sample_data
from ctiserver.events import Event, Kind
from ctiserver.ivr.runtime import QueueRequest
from ctiserver.ivr.service import IvrService

from .fakes import ScriptedCaller
from .helpers import SAMPLE_CONFIG

TREE = """\
start: m
nodes:
  m: {kind: menu, prompt: "请按1", options: {"1": bye}}
  bye: {kind: hangup, prompt: "再见{caller}"}
"""


async def test_service_lifecycle(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    (cfg / "ivr").mkdir(parents=True)
    (cfg / "ivr" / "hotline.yaml").write_text(TREE, encoding="utf-8")
    (cfg / "ivr" / "settings.yaml").write_text(
        f"tts: {{cache_dir: {tmp_path / 'cache'}, workers: 1}}\nreload_poll_s: 3600\n", encoding="utf-8")
    events: list[Event] = []

    async def handoff(chan: Any, req: QueueRequest) -> str:
        return ""

    svc = IvrService(cfg, emit=events.append, handoff=handoff,
                     data=MemoryDataProvider(read_sample_data(SAMPLE_CONFIG, 0.0)))
    await svc.start()
    try:
        await svc.wait_prerendered()
        assert svc.tts.cached("请按1", "zh") and svc.tts.cached("请按1", "en")  # `text` prompts: every voice
        assert svc.tts.cached("再见", "zh") is None  # a template: rendered per call
        v1 = svc.registry.get("hotline").version
        await asyncio.to_thread((cfg / "ivr" / "hotline.yaml").write_text, TREE.replace("请按1", "请按一"),
                                "utf-8")
        svc.registry.request_reload()
        for _ in range(200):
            if svc.registry.get("hotline").version != v1:
                break
            await asyncio.sleep(0.01)
        await svc.wait_prerendered()
        assert svc.tts.cached("请按一", "zh") is not None
        caller = ScriptedCaller(["1"])
        await svc.handle(caller)
        assert [e.kind for e in events][-1] == Kind.IVR_END and caller.commands[-1] == "HANGUP"
    finally:
        await svc.stop()


async def test_a_prompt_render_that_fails_is_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The background render of a tree's static prompts raises (the TTS broke): one ERROR line with the
    traceback, not an exception nobody retrieves (before: asyncio's 'Task exception was never retrieved'
    at garbage collection, if ever)."""
    cfg = tmp_path / "config"
    (cfg / "ivr").mkdir(parents=True)
    (cfg / "ivr" / "hotline.yaml").write_text(TREE, encoding="utf-8")
    (cfg / "ivr" / "settings.yaml").write_text(
        f"tts: {{cache_dir: {tmp_path / 'cache'}, workers: 1}}\nreload_poll_s: 3600\n", encoding="utf-8")

    async def handoff(chan: Any, req: QueueRequest) -> str:
        return ""

    svc = IvrService(cfg, emit=lambda e: None, handoff=handoff,
                     data=MemoryDataProvider(read_sample_data(SAMPLE_CONFIG, 0.0)))

    async def broken(*_: Any, **__: Any) -> Any:
        raise OSError("espeak vanished")

    monkeypatch.setattr(svc.tts, "render_all", broken)
    with caplog.at_level(logging.ERROR):
        await svc.start()
        try:
            await svc.wait_prerendered()
        finally:
            await svc.stop()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "ivr-prerender-hotline" in errors[0].getMessage(), [r.getMessage() for r in errors]
    assert "espeak vanished" in errors[0].getMessage() and errors[0].exc_info is not None
