"""Text to speech for IVR prompts: pyttsx3 on espeak-ng, 8 kHz mono 16-bit WAV, content-addressed cache.

Asterisk plays `.wav` (8 kHz, mono, signed 16-bit) without transcoding, so every
prompt is rendered once to `<cache_dir>/<key>.wav` where key = sha256(text, voice,
rate, volume). The Asterisk sandbox bind-mounts cache_dir as `sounds/cti/`, so a
prompt is played as `cti/<key>`. A file that exists is a cache hit and costs one
stat(); renders of the same text at the same moment share one job.

Synthesis runs in worker *processes* (pyttsx3's espeak driver is a process-wide C
library with callbacks: not safe to share between threads, and it would hold the
GIL), never on the event loop. espeak-ng writes 22.05 kHz; `sox` converts to
8 kHz mono 16-bit and normalises loudness to -3 dBFS (sox's resampler is far better
than naive decimation, and it is installed wherever Asterisk is). Files are written
to a temporary name and renamed, so Asterisk never plays half a file.

Quirk handled: in a fresh process pyttsx3's first `save_to_file` can write nothing.
Every output is checked (exists, RIFF header, has samples) and the job retried;
after `attempts` failures `TtsError` says so clearly.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import io
import logging
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Iterable
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from ..configfile import Strict

SAMPLE_RATE = 8000

log = logging.getLogger(__name__)


class TtsError(RuntimeError):
    """A prompt could not be rendered (engine wrote nothing, sox failed, no such voice...)."""


class TtsSettings(Strict):
    cache_dir: str = "var/sounds/cti"  # relative to the project folder (the config folder's parent)
    sound_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")] = "cti"  # as Asterisk sees cache_dir
    voices: dict[str, str] = Field(default_factory=lambda: {"zh": "sit/cmn", "en": "gmw/en-us"})
    rate: Annotated[int, Field(ge=80, le=400)] = 165  # words per minute
    volume: Annotated[float, Field(ge=0.1, le=1.0)] = 1.0
    workers: Annotated[int, Field(ge=1, le=16)] = 2
    executor: Annotated[str, Field(pattern=r"^(process|thread)$")] = "process"
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 60.0
    attempts: Annotated[int, Field(ge=1, le=10)] = 3


# --- the worker side (runs in a worker process) ---------------------------------------------------
_engine: Any = None
PR_SET_PDEATHSIG = 1  # linux/prctl.h
WATCH_PARENT_S = 1.0


def worker_init(parent_pid: int) -> None:
    """Initializer of every TTS worker: the worker ends when the server does, even on `kill -9`.

    Linux: the kernel sends SIGKILL when the parent dies (prctl PR_SET_PDEATHSIG). Everywhere, and
    in case the signal was tied to a thread that is gone: a daemon thread checks every second
    that the parent is still ours. Without these a killed server left its workers running.

    Ctrl-C in a terminal (or `timeout`) signals the whole process group: the server shuts its pool
    down in order, so the workers ignore SIGINT and SIGTERM rather than die mid-render and break
    the pool under the server (a BrokenProcessPool traceback in its log).
    """
    import ctypes
    import ctypes.util
    import threading

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # died before the line above took effect
        os._exit(0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(WATCH_PARENT_S)
        os._exit(0)

    threading.Thread(target=watch, name="tts-parent-watch", daemon=True).start()


def _get_engine() -> Any:
    global _engine
    if _engine is None:
        import pyttsx3

        if multiprocessing.current_process().name != "MainProcess":
            # a worker of ours: pyttsx3 prints "Audio saved to" from espeak's callback thread,
            # sometimes after runAndWait returned; keep the server's stdout clean
            sys.stdout = open(os.devnull, "w", encoding="utf-8")
        _engine = pyttsx3.init("espeak")
        atexit.register(_drop_engine)  # let pyttsx3 clean up while modules still exist (noisy otherwise)
    return _engine


def _drop_engine() -> None:
    global _engine
    _engine = None
    import gc

    gc.collect()


def wav_ok(path: Path) -> bool:
    """A readable WAV with at least some samples."""
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() > 0
    except (OSError, EOFError, wave.Error):
        return False


def convert_to_8k(src: Path, dst: Path) -> None:
    """sox: any WAV -> 8 kHz mono signed 16-bit, normalised to -3 dBFS."""
    sox = shutil.which("sox")
    if sox is None:
        raise TtsError("sox is not installed (apt-get install sox): needed to convert prompts to 8 kHz")
    proc = subprocess.run([sox, "-q", str(src), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer",
                           str(dst), "gain", "-n", "-3"], capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0 or not wav_ok(dst):
        raise TtsError(f"sox could not convert {src.name}: {proc.stderr.strip() or 'no output'}")


def synthesize(text: str, voice: str, rate: int, volume: float, out_path: str, attempts: int = 3,
               settle_s: float = 1.0) -> float:
    """Render `text` to `out_path` (8 kHz mono 16-bit WAV). Returns seconds spent. Worker-side."""
    start = time.perf_counter()
    out = Path(out_path)
    engine = _get_engine()
    known = {v.id for v in engine.getProperty("voices")}
    if voice not in known:
        raise TtsError(f"espeak-ng has no voice {voice!r} (try sit/cmn for Mandarin, gmw/en-us for English)")
    with tempfile.TemporaryDirectory(prefix="cti-tts-", dir=out.parent) as tmp:
        tries: list[Path] = []
        done: Path | None = None
        for n in range(attempts):
            raw = Path(tmp) / f"raw{n}.wav"  # one name per attempt: a late write never lands in the next
            tries.append(raw)
            engine.setProperty("voice", voice)
            engine.setProperty("rate", rate)
            engine.setProperty("volume", volume)
            with contextlib.redirect_stdout(io.StringIO()):  # pyttsx3 prints "Audio saved to ..."
                engine.save_to_file(text, str(raw))
                engine.runAndWait()
            # runAndWait can return before espeak's last callback wrote the file: give it a moment
            deadline = time.monotonic() + settle_s
            while done is None:
                done = next((p for p in tries if wav_ok(p)), None)
                if done is not None or time.monotonic() >= deadline:
                    break
                time.sleep(0.02)
            if done is not None:
                break
        if done is None:
            raise TtsError(f"pyttsx3/espeak-ng wrote no audio for {text[:40]!r} after {attempts} attempts")
        raw = done
        converted = Path(tmp) / "out.wav"
        convert_to_8k(raw, converted)
        os.replace(converted, out)  # atomic: Asterisk sees the whole file or none
    return time.perf_counter() - start


# --- the event-loop side ------------------------------------------------------------------------------
@dataclass
class TtsStats:
    hits: int = 0
    renders: int = 0
    failures: int = 0
    render_s: float = 0.0


@dataclass
class Tts:
    """Async front of the cache: `await tts.sound(text, lang)` -> `cti/<key>` ready to play."""

    settings: TtsSettings
    cache_dir: Path
    stats: TtsStats = field(default_factory=TtsStats)

    def __post_init__(self) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._executor: Executor | None = None
        self._inflight: dict[str, asyncio.Future[str]] = {}

    @classmethod
    def from_settings(cls, settings: TtsSettings, project_dir: Path) -> Tts:
        cache = Path(settings.cache_dir)
        return cls(settings, cache if cache.is_absolute() else project_dir / cache)

    def voice(self, lang: str) -> str:
        try:
            return self.settings.voices[lang]
        except KeyError:
            raise TtsError(f"no TTS voice configured for language {lang!r}") from None

    def key(self, text: str, lang: str) -> str:
        s = self.settings
        blob = "\x1f".join([text, self.voice(lang), str(s.rate), f"{s.volume:.2f}", str(SAMPLE_RATE)])
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]

    def path(self, key: str) -> Path:
        return self.cache_dir / f"{key}.wav"

    def sound_name(self, key: str) -> str:
        return f"{self.settings.sound_prefix}/{key}"

    def cached(self, text: str, lang: str) -> str | None:
        """The sound name if the prompt is already rendered (no worker involved)."""
        key = self.key(text, lang)
        return self.sound_name(key) if self.path(key).is_file() else None

    def _pool(self) -> Executor:
        if self._executor is None:
            if self.settings.executor == "process":
                self._executor = ProcessPoolExecutor(self.settings.workers,
                                                     mp_context=multiprocessing.get_context("spawn"),
                                                     initializer=worker_init, initargs=(os.getpid(),))
            else:  # one thread: the espeak library is not thread-safe
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="tts")
        return self._executor

    async def sound(self, text: str, lang: str) -> str:
        """Render (or find) `text` in `lang`; return the name Asterisk plays. Raises TtsError."""
        text = text.strip()
        if not text:
            raise TtsError("nothing to say (empty text)")
        key = self.key(text, lang)
        if self.path(key).is_file():
            self.stats.hits += 1
            return self.sound_name(key)
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            loop = asyncio.get_running_loop()
            try:
                job = loop.run_in_executor(self._pool(), synthesize, text, self.voice(lang), self.settings.rate,
                                           self.settings.volume, str(self.path(key)), self.settings.attempts)
                spent = await asyncio.wait_for(job, self.settings.timeout_s)
            except TimeoutError:
                raise TtsError(f"TTS took longer than {self.settings.timeout_s:g}s for {text[:40]!r}") from None
            except TtsError:
                raise
            except BrokenExecutor as exc:  # a worker was killed: the next prompt gets a new pool
                self._drop_broken_pool()
                raise TtsError(f"TTS failed for {text[:40]!r}: a TTS worker died ({exc})") from None
            except Exception as exc:  # an engine error
                raise TtsError(f"TTS failed for {text[:40]!r}: {type(exc).__name__}: {exc}") from exc
            self.stats.renders += 1
            self.stats.render_s += spent
            fut.set_result(self.sound_name(key))
            return self.sound_name(key)
        except BaseException as exc:
            self.stats.failures += 1
            if not fut.done():
                fut.set_exception(exc if isinstance(exc, Exception) else TtsError("cancelled"))
                fut.exception()  # consumed here; waiters get it from await
            raise
        finally:
            self._inflight.pop(key, None)

    def _drop_broken_pool(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            log.warning("a TTS worker died; starting a new pool for the next prompt")
            executor.shutdown(wait=False, cancel_futures=True)

    async def render_all(self, prompts: Iterable[tuple[str, str]]) -> tuple[int, int, list[str]]:
        """Render many (text, lang) pairs; returns (rendered, already cached, errors)."""
        unique = list(dict.fromkeys((t.strip(), lang) for t, lang in prompts if t.strip()))
        before = self.stats.hits
        results = await asyncio.gather(*(self.sound(t, lang) for t, lang in unique), return_exceptions=True)
        errors = [f"{t[:40]!r} ({lang}): {r}" for (t, lang), r in zip(unique, results, strict=True)
                  if isinstance(r, BaseException)]
        cached = self.stats.hits - before
        return len(unique) - cached - len(errors), cached, errors

    async def close(self) -> None:
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.to_thread(executor.shutdown, True, cancel_futures=True)
