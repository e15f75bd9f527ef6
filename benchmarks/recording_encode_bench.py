"""Recording encoder: CPU per minute of call, size and quality, ours against opusenc's defaults, same input.

The input is a conversation of natural speech: Asterisk's own prompts (the Allison voice, in the sandbox
chroot that scripts/setup.sh builds), taking turns on the two channels (caller left, agent right) with
pauses, 8 kHz as MixMonitor writes it. Both encodings get the same stereo file:

* baseline: `opusenc --bitrate 32 --speech` (libopus's default complexity 10, full band), what the recorder
  ran before,
* ours: `ctiserver.recording.encode.opusenc_args` (complexity 5, 60 ms frames and the narrowband limit an
  8 kHz call holds).

It prints the encoders' CPU per minute of call (their own user + system time, from the reaped children's
rusage; median of `--rounds`), the ratio, the size per agent-hour, PESQ narrowband (ITU-T P.862) per channel
against the input, in turns and with both sides speaking at once (the first minute: P.862 is made for short
samples; when the `pesq` package is installed, `pip install pesq`, not a dependency), and the agent's side's
level while only the caller speaks (the channels must stay apart). Not a test: nothing here asserts a time.

    .venv/bin/python benchmarks/recording_encode_bench.py [--minutes 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctiserver.recording.encode import opusenc_args
from ctiserver.sandbox import chroot as sandbox

BASELINE = ["--quiet", "--bitrate", "32", "--speech"]
VOICE = "usr/share/asterisk/sounds/en_US_f_Allison"


def run(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True).stderr


def conversation(work: Path, minutes: float) -> Path:
    """Prompts in turns, one side silent while the other speaks (0.4 s pauses), `minutes` long, stereo."""
    prompts = sorted((sandbox.root_dir(None) / VOICE).glob("*.gsm"))
    if not prompts:
        raise SystemExit(f"no prompts in {sandbox.root_dir(None) / VOICE}: run scripts/setup.sh first")
    left: list[Path] = []
    right: list[Path] = []
    total, i = 0.0, 0
    while total < minutes * 60:
        speech = work / f"p{i}.wav"
        run("sox", str(prompts[i % len(prompts)]), "-r", "8000", "-c", "1", "-b", "16", str(speech), "pad", "0", "0.4")
        quiet = work / f"q{i}.wav"
        run("sox", str(speech), str(quiet), "vol", "0")
        (left if i % 2 == 0 else right).append(speech)
        (right if i % 2 == 0 else left).append(quiet)
        with wave.open(str(speech)) as w:
            total += w.getnframes() / w.getframerate()
        i += 1
    sides = work / "caller.wav", work / "agent.wav"
    for side, parts in zip(sides, (left, right), strict=True):
        run("sox", *map(str, parts), str(side))
    stereo = work / "call.wav"
    run("sox", "-M", *map(str, sides), "-c", "2", str(stereo))
    spoken = [p for p in sorted(work.glob("p*.wav"), key=lambda p: int(p.stem[1:]))]
    run("sox", *map(str, spoken), str(work / "speech.wav"))  # every prompt, one after the other
    for p in [*left, *right]:
        p.unlink(missing_ok=True)
    return stereo


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def encode_cpu(args: list[str], stereo: Path, out: Path) -> float:
    before = children_cpu()
    run("opusenc", *args, str(stereo), str(out))
    return children_cpu() - before


def levels(decoded: Path) -> tuple[float, float]:
    out = []
    for ch in ("1", "2"):
        text = run("sox", str(decoded), "-n", "remix", ch, "stat")
        out.append(float(next(x for x in text.splitlines() if x.startswith("RMS     amplitude")).split(":")[1]))
    return out[0], out[1]


def read_wav(path: Path) -> list[object]:
    import numpy as np

    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).reshape(-1, w.getnchannels())
    return [data[:, c].astype(np.float64) for c in range(data.shape[1])]


def pesq_nb(ref: Path, decoded: Path) -> str:
    try:
        from pesq import pesq
    except ImportError:
        return "not measured (pip install pesq)"
    a, b = read_wav(ref), read_wav(decoded)
    n = min(len(a[0]), len(b[0]), 60 * 8000)  # type: ignore[arg-type]  # P.862 is for short samples: the first minute
    caller, agent = (pesq(8000, a[c][:n], b[c][:n], "nb") for c in (0, 1))  # type: ignore[index]
    return f"caller {caller:.2f}, agent {agent:.2f}"


def roundtrip(opts: list[str], stereo: Path, work: Path, name: str) -> tuple[Path, Path]:
    """`stereo` encoded with `opts` and decoded again (8 kHz): the .opus and the .wav."""
    out, decoded = work / f"{name}.opus", work / f"{name}.wav"
    run("opusenc", *opts, str(stereo), str(out))
    run("opusdec", "--quiet", "--rate", "8000", str(out), str(decoded))
    return out, decoded


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the conversation (default 10)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory(prefix="ctiserver-encode-") as tmp:
        work = Path(tmp)
        stereo = conversation(work, args.minutes)
        with wave.open(str(stereo)) as w:
            rate, seconds = w.getframerate(), w.getnframes() / w.getframerate()
        minutes = seconds / 60
        ours = opusenc_args(rate, 32, 5)
        print(f"input: {seconds:.1f} s of speech in turns, {rate} Hz stereo; ours: opusenc {' '.join(ours)}")
        # the hard cases: both sides speaking at once for a minute, and the caller alone (the agent's side silent)
        both, alone, speech, late = (work / f"{n}.wav" for n in ("both", "alone", "speech", "late"))
        run("sox", str(speech), str(late), "trim", "7")  # the same voice, other words: talking over each other
        run("sox", "-M", str(speech), str(late), "-c", "2", str(both), "trim", "0", "60")
        run("sox", str(speech), "-c", "2", str(alone), "remix", "1", "0", "trim", "0", "60")
        results: dict[str, float] = {}
        for name, opts in (("baseline", BASELINE), ("ours", ours)):
            cpu = statistics.median(encode_cpu(opts, stereo, work / f"{name}.opus") for _ in range(args.rounds))
            results[name] = cpu
            out, decoded = roundtrip(opts, stereo, work, name)
            _, both_decoded = roundtrip(opts, both, work, f"{name}-both")
            _, alone_decoded = roundtrip(opts, alone, work, f"{name}-alone")
            speaking, silent = levels(alone_decoded)
            size = out.stat().st_size
            print(f"{name:8s}: {cpu / minutes:.3f} CPU s per minute of call ({cpu:.2f} s for {minutes:.1f} min), "
                  f"{size / seconds * 3600 / 1e6:.1f} MB per agent-hour; PESQ-NB in turns: "
                  f"{pesq_nb(stereo, decoded)}; both speaking at once: {pesq_nb(both, both_decoded)}; "
                  f"the agent's side while only the caller speaks: "
                  f"{20 * math.log10(max(silent, 1e-9) / speaking):.0f} dB")
        ratio = results["baseline"] / max(results["ours"], 1e-9)
        print(f"ratio: ours uses {ratio:.2f}x less encoder CPU than the baseline; a core encodes "
              f"{minutes * 60 / max(results['ours'], 1e-9):.0f} s of call per CPU second "
              f"(baseline {minutes * 60 / max(results['baseline'], 1e-9):.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
