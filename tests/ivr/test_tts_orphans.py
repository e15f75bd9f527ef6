"""`kill -9` of a real `ctiserver serve` takes its TTS worker processes with it (they used to run on for minutes)."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.production import edit_yaml, production_config


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def exits_within(pid: int, timeout: float) -> bool:
    """Wait for `pid` (not our child) to end: a pidfd becomes readable when the process exits."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(fd)


def test_kill_9_of_the_server_ends_its_tts_workers(tmp_path: Path) -> None:
    with socket.socket() as refusing:  # AMI: a port that refuses, as while Asterisk is down
        refusing.bind(("127.0.0.1", 0))
        cfg = production_config(tmp_path, refusing.getsockname()[1])
        # an empty prompt cache: start-up renders every prompt, so the workers are busy when the server dies
        edit_yaml(cfg / "ivr" / "settings.yaml", lambda d: d["tts"].update(cache_dir=str(tmp_path / "sounds")))
        proc = subprocess.Popen([sys.executable, "-m", "ctiserver", "serve", "--config", str(cfg)],
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={**os.environ, "CTISERVER_AMI_SECRET": "x"})
        try:
            deadline = time.monotonic() + 120
            workers: list[int] = []
            while not workers:
                assert proc.poll() is None, "the server exited"
                assert time.monotonic() < deadline, "no TTS worker started"
                workers = [p for p in children(proc.pid) if "multiprocessing" in cmdline(p)
                           and "resource_tracker" not in cmdline(p)]
                if not workers:
                    time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        left = [w for w in workers if not exits_within(w, 20)]
        for w in left:
            os.kill(w, signal.SIGKILL)
        assert not left, f"TTS workers {left} outlived the killed server"
