"""Merge a recording's two legs to stereo (caller left, agent right) and compress it to Opus.

Tools from Debian: `sox` (merge, duration) and `opusenc` (opus-tools). Run as subprocesses with
no shell; paths are ours (checked spool names)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import wave
from dataclasses import dataclass
from pathlib import Path

TOOLS = ("sox", "opusenc")


class EncodeError(RuntimeError):
    """A tool failed or is missing; the message has its words."""


@dataclass(frozen=True)
class Encoded:
    path: Path
    duration_s: float
    size: int
    sha256: str


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


async def _run(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await proc.communicate()
    except asyncio.CancelledError:  # the server stops mid-encode: no tool left running, no transport to the GC
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await asyncio.shield(proc.wait())
        raise
    if proc.returncode != 0:
        raise EncodeError(f"{args[0]} failed ({proc.returncode}): {err.decode(errors='replace').strip()[-300:]}")
    return out.decode(errors="replace")


def _usable(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 44  # more than a WAV header


# libopus's OPUS_SET_MAX_BANDWIDTH request and its values, by the highest sample rate each covers
MAX_BANDWIDTH_CTL = 4004
_BANDWIDTHS = ((8000, 1101), (12000, 1102), (16000, 1103), (24000, 1104))  # narrow, medium, wide, super-wide


def max_bandwidth(rate: int) -> int | None:
    """The Opus bandwidth that holds everything a recording sampled at `rate` can carry (None: full band).
    Asterisk's .wav is 8 kHz: narrowband. Told so, libopus spends no bits and no CPU on the empty band above
    4 kHz; with complexity 5 and 60 ms frames that is 2.8x less CPU than opusenc's defaults, with a PESQ as
    good or better (benchmarks/recording_encode_bench.py, docs/qc.md)."""
    return next((bw for top, bw in _BANDWIDTHS if rate <= top), None)


def opusenc_args(rate: int, bitrate_kbps: int, complexity: int) -> list[str]:
    """60 ms frames: a file has no latency to keep low, and fewer frames cost fewer bytes (5%) and less CPU."""
    args = ["--quiet", "--bitrate", str(bitrate_kbps), "--speech", "--comp", str(complexity), "--framesize", "60"]
    bandwidth = max_bandwidth(rate)
    if bandwidth is not None:
        args += ["--set-ctl-int", f"{MAX_BANDWIDTH_CTL}={bandwidth}"]
    return args


async def _rate_and_duration(path: Path) -> tuple[int, float]:
    """The sample rate and the length in seconds of the WAV sox wrote: from its header (exact), read here; a
    header Python's wave module does not read (WAVE_FORMAT_EXTENSIBLE) is asked of `sox --i`."""
    try:
        with wave.open(str(path), "rb") as w:
            return w.getframerate(), w.getnframes() / w.getframerate()
    except (wave.Error, EOFError, ZeroDivisionError):
        rate = int(float((await _run("sox", "--i", "-r", str(path))).strip() or 0))
        return rate, float((await _run("sox", "--i", "-D", str(path))).strip() or 0.0)


async def encode(caller: Path, agent: Path, target: Path, bitrate_kbps: int, complexity: int = 5) -> Encoded:
    """`target` (.opus) from the two legs; a leg that is missing or empty becomes silence."""
    target.parent.mkdir(parents=True, exist_ok=True)
    stereo = target.with_name(target.name + ".tmp.wav")
    tmp = target.with_name(target.name + ".tmp")
    try:
        legs = [p for p in (caller, agent) if _usable(p)]
        if len(legs) == 2:
            await _run("sox", "-M", str(caller), str(agent), "-c", "2", str(stereo))
        elif legs:  # one leg only: the other channel silent, on its side
            remix = "1 0" if legs[0] == caller else "0 1"
            await _run("sox", str(legs[0]), "-c", "2", str(stereo), "remix", *remix.split())
        else:
            await _run("sox", "-n", "-r", "8000", "-c", "2", "-b", "16", str(stereo), "trim", "0", "0.02")
        rate, seconds = await _rate_and_duration(stereo)
        await _run("opusenc", *opusenc_args(rate, bitrate_kbps, complexity), str(stereo), str(tmp))
        os.replace(tmp, target)
    finally:
        stereo.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    digest, size = await asyncio.to_thread(_sha256, target)
    return Encoded(target, seconds, size, digest)


def _sha256(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size
