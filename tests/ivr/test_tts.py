"""TTS: real espeak-ng renders converted to 8 kHz mono 16-bit, the cache, the empty-first-save quirk."""

from __future__ import annotations

import array
import asyncio
import math
import wave
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ctiserver.ivr import tts as tts_mod
from ctiserver.ivr.tts import Tts, TtsError, TtsSettings, synthesize, wav_ok


def wav_facts(path: Path) -> tuple[int, int, int, float, float]:
    """(rate, channels, sample width, seconds, RMS of samples in 0..1)."""
    with wave.open(str(path), "rb") as w:
        frames = w.readframes(w.getnframes())
        samples = array.array("h", frames)
        rms = math.sqrt(sum(s * s for s in samples) / max(1, len(samples))) / 32768
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes() / w.getframerate(), rms


@pytest.fixture
async def tts(tmp_path: Path) -> Any:
    t = Tts(TtsSettings(workers=1), tmp_path / "cti")
    yield t
    await t.close()


async def test_mandarin_and_english_render_to_8k_mono_16bit(tts: Tts) -> None:
    zh, en = await asyncio.gather(tts.sound("您的欠费金额为86.50元", "zh"), tts.sound("Press 0 for an agent", "en"))
    for name in (zh, en):
        assert name.startswith("cti/")
        rate, channels, width, seconds, rms = wav_facts(tts.cache_dir / f"{name[4:]}.wav")
        assert (rate, channels, width) == (8000, 1, 2)
        assert 0.5 < seconds < 15
        assert rms > 0.02  # speech, not silence
    assert zh != en and tts.stats.renders == 2


async def test_cache_hit_and_shared_inflight_render(tts: Tts) -> None:
    names = await asyncio.gather(*(tts.sound("请稍候", "zh") for _ in range(5)))
    assert len(set(names)) == 1 and tts.stats.renders == 1
    assert await tts.sound("  请稍候 ", "zh") == names[0]
    assert tts.stats.hits == 1
    assert tts.cached("请稍候", "zh") == names[0] and tts.cached("别的", "zh") is None
    # the key covers voice and rate: another rate is another file
    other = Tts(TtsSettings(rate=120, executor="thread"), tts.cache_dir)
    assert other.key("请稍候", "zh") != tts.key("请稍候", "zh")
    assert tts.key("请稍候", "zh") != tts.key("请稍候", "en")


async def test_errors_are_clear(tmp_path: Path) -> None:
    t = Tts(TtsSettings(voices={"zh": "no/such-voice"}, executor="thread"), tmp_path)
    try:
        with pytest.raises(TtsError, match="espeak-ng has no voice 'no/such-voice'"):
            await t.sound("你好", "zh")
        with pytest.raises(TtsError, match="no TTS voice configured for language 'fr'"):
            await t.sound("bonjour", "fr")
        with pytest.raises(TtsError, match="empty text"):
            await t.sound("  ", "zh")
        assert t.stats.failures == 1 and not await asyncio.to_thread(lambda: list(tmp_path.glob("*.wav")))
    finally:
        await t.close()


class FlakyEngine:
    """Writes nothing for the first `empty` saves (the fresh-process quirk), then a real tone."""

    def __init__(self, empty: int) -> None:
        self.empty = empty
        self.saves = 0
        self._target = ""

    def getProperty(self, name: str) -> Any:
        return [SimpleNamespace(id="sit/cmn")]

    def setProperty(self, name: str, value: Any) -> None:
        pass

    def save_to_file(self, text: str, path: str) -> None:
        self._target = path

    def runAndWait(self) -> None:
        self.saves += 1
        if self.saves <= self.empty:
            return
        with wave.open(self._target, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(22050)
            w.writeframes(array.array("h", (int(8000 * math.sin(i / 10)) for i in range(22050))).tobytes())


def test_first_empty_save_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FlakyEngine(empty=1)
    monkeypatch.setattr(tts_mod, "_engine", engine)
    out = tmp_path / "p.wav"
    synthesize("你好", "sit/cmn", 165, 1.0, str(out), attempts=3, settle_s=0.05)
    assert engine.saves == 2
    rate, channels, width, seconds, rms = wav_facts(out)
    assert (rate, channels, width) == (8000, 1, 2) and seconds == pytest.approx(1.0, abs=0.01) and rms > 0.1


class LateEngine(FlakyEngine):
    """runAndWait returns before the file is written (written a moment later, from another thread)."""

    def runAndWait(self) -> None:
        import threading

        self.saves += 1
        target = self._target
        threading.Timer(0.1, lambda: FlakyEngine.runAndWait(_Writer(target))).start()


class _Writer(FlakyEngine):
    def __init__(self, target: str) -> None:
        super().__init__(empty=0)
        self._target = target
        self.saves = 0


def test_late_write_is_waited_for_not_rendered_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = LateEngine(empty=0)
    monkeypatch.setattr(tts_mod, "_engine", engine)
    synthesize("你好", "sit/cmn", 165, 1.0, str(tmp_path / "p.wav"), attempts=3, settle_s=2.0)
    assert engine.saves == 1 and wav_facts(tmp_path / "p.wav")[0] == 8000


def test_engine_that_never_writes_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tts_mod, "_engine", FlakyEngine(empty=99))
    with pytest.raises(TtsError, match="wrote no audio for '你好' after 2 attempts"):
        synthesize("你好", "sit/cmn", 165, 1.0, str(tmp_path / "p.wav"), attempts=2, settle_s=0.05)
    assert not (tmp_path / "p.wav").exists()


def test_wav_ok(tmp_path: Path) -> None:
    empty = tmp_path / "e.wav"
    empty.write_bytes(b"")
    assert not wav_ok(empty) and not wav_ok(tmp_path / "missing.wav")
    with wave.open(str(tmp_path / "z.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
    assert not wav_ok(tmp_path / "z.wav")
