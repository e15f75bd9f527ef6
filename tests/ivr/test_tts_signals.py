"""A TTS worker is the server's: Ctrl-C to the terminal's process group does not break the pool
under the server, and a worker killed anyway costs one prompt, not every prompt after it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from ctiserver.ivr.tts import Tts, TtsError, TtsSettings
from tests.ivr.test_tts_orphans import children, cmdline, exits_within


def workers() -> list[int]:
    """This process's pool workers (not multiprocessing's resource tracker)."""
    return [pid for pid in children(os.getpid()) if "spawn_main" in cmdline(pid)]


async def test_sigint_to_the_workers_leaves_the_pool_serving(tmp_path: Path) -> None:
    tts = Tts(TtsSettings(workers=1), tmp_path / "cti")
    try:
        await tts.sound("您好", "zh")
        [worker] = workers()
        os.kill(worker, signal.SIGINT)  # what Ctrl-C in the terminal sends to the whole group
        os.kill(worker, signal.SIGTERM)  # and what `timeout` sends
        assert not exits_within(worker, 0.5)
        assert (await tts.sound("再见", "zh")).startswith("cti/")
        assert workers() == [worker]
    finally:
        await tts.close()


async def test_a_killed_worker_costs_one_prompt_and_the_next_gets_a_new_pool(tmp_path: Path) -> None:
    tts = Tts(TtsSettings(workers=1), tmp_path / "cti")
    try:
        await tts.sound("您好", "zh")
        [worker] = workers()
        os.kill(worker, signal.SIGKILL)
        assert exits_within(worker, 10)
        with pytest.raises(TtsError, match="worker died"):
            await tts.sound("第一句", "zh")
        assert (await tts.sound("第二句", "zh")).startswith("cti/")
    finally:
        await tts.close()
