"""Encoding a recording: stereo Opus told the band the call holds, the caller's side kept on its side."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ctiserver.recording.encode import EncodeError, encode, max_bandwidth, opusenc_args


def test_the_encoder_is_told_the_band_an_8_khz_recording_holds() -> None:
    assert max_bandwidth(8000) == 1101  # narrowband: Asterisk's .wav
    assert max_bandwidth(16000) == 1103 and max_bandwidth(48000) is None
    assert opusenc_args(8000, 32, 5) == ["--quiet", "--bitrate", "32", "--speech", "--comp", "5", "--framesize",
                                         "60", "--set-ctl-int", "4004=1101"]
    assert "--set-ctl-int" not in opusenc_args(48000, 32, 5)


def _run(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True).stderr


def _rms(path: Path, channel: str) -> float:
    out = _run("sox", str(path), "-n", "remix", channel, "stat")
    return float(next(x for x in out.splitlines() if x.startswith("RMS     amplitude")).split(":")[1])


async def test_a_caller_only_recording_stays_on_the_callers_side(tmp_path: Path) -> None:
    caller, agent = tmp_path / "c.wav", tmp_path / "a.wav"
    mono = ("-r", "8000", "-c", "1", "-b", "16")
    _run("sox", "-n", *mono, str(caller), "synth", "2.5", "sine", "300-900", "vol", "0.5")
    _run("sox", "-n", *mono, str(agent), "trim", "0", "2.5")
    done = await encode(caller, agent, tmp_path / "out" / "r.opus", 32, 5)
    assert done.duration_s == 2.5 and done.size > 0
    wav = tmp_path / "d.wav"
    _run("opusdec", "--quiet", "--rate", "8000", str(done.path), str(wav))
    assert _rms(wav, "1") > 0.2 and _rms(wav, "2") < 0.001  # the agent's side silent: > 46 dB apart
    assert not list((tmp_path / "out").glob("*.tmp*"))


async def test_a_leg_that_is_not_audio_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "c.wav").write_bytes(b"RIFF" + b"\0" * 100)
    (tmp_path / "a.wav").write_bytes(b"RIFF" + b"\0" * 100)
    with pytest.raises(EncodeError, match="sox"):
        await encode(tmp_path / "c.wav", tmp_path / "a.wav", tmp_path / "r.opus", 32, 5)


async def test_a_header_pythons_wave_does_not_read_is_asked_of_sox(tmp_path: Path) -> None:
    from ctiserver.recording.encode import _rate_and_duration

    float_wav = tmp_path / "f.wav"  # 32-bit float: WAVE_FORMAT_IEEE_FLOAT, which the wave module refuses
    _run("sox", "-n", "-r", "16000", "-c", "2", "-e", "floating-point", "-b", "32", str(float_wav), "trim", "0", "1.5")
    assert await _rate_and_duration(float_wav) == (16000, 1.5)
