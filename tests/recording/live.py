"""The whole server on the sandbox Asterisk with recording on (spool in the chroot, archive in tmp)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ctiserver.app.server import CtiServer
from ctiserver.app.wiring import build_server
from ctiserver.config import load_server_config
from tests.asterisk_fixture import AmiRecorder
from tests.live_config import sandbox_config
from tests.production import edit_yaml


def recording_config(tmp: Path, info: Any, **recording: Any) -> Path:
    cfg = sandbox_config(tmp, info)

    edit_yaml(cfg / "recording.yaml", lambda data: data.update(enabled=True, **recording))
    return cfg


@asynccontextmanager
async def live_server(tmp: Path, info: Any, ami: AmiRecorder, **recording: Any) -> AsyncIterator[CtiServer]:
    """The server on `tmp` (its config made on first use: a second server on the same `tmp` is the same site
    restarted, with the same database and archive)."""
    cfg_dir = tmp / "config" if (tmp / "config").exists() else recording_config(tmp, info, **recording)
    server = await build_server(cfg_dir, load_server_config(cfg_dir), base_dir=tmp)
    await server.start()
    await ami.setvar("CTI_AGI", f"127.0.0.1:{server.cfg.agi.port}")
    try:
        await asyncio.wait_for(server.ami["pbx1"].wait_connected(), 20)
        await server.features.extra["recorder"].wait_armed("pbx1", 20)  # the dialplan knows where to record
        yield server
    finally:
        await ami.setvar("CTI_AGI", "127.0.0.1:4573")
        await server.stop()


async def indexed_row(recorder: Any, number: str, timeout: float = 180.0) -> dict[str, Any]:
    """The recording row of the call from `number`, as the recorder indexes it. An earlier test's call
    left in the shared spool (its server stopped mid-call) is indexed too, and skipped here: after the demo
    test (a server stopped with its callers' recordings spooled) that is several encodes first, which take
    a minute or more on a busy machine (`timeout` only stops a hung test)."""
    return (await indexed_rows(recorder, number, 1, timeout))[0]


async def indexed_rows(recorder: Any, number: str, count: int, timeout: float = 180.0) -> list[dict[str, Any]]:
    """The first `count` recording rows of calls with `number` (one call's legs: a transfer's two agents)."""
    from ctiserver.recording import store

    async def find() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        while len(rows) < count:
            row = await store.get(recorder.engine(), await recorder.indexed.get())
            if row is not None and row["number"] == number:
                rows.append(dict(row))
        return rows

    return await asyncio.wait_for(find(), timeout)


def channel_rms(opus: Path, tmp: Path) -> tuple[float, float]:
    """RMS amplitude of the left (caller) and right (agent) channels, by sox `stat`."""
    wav = tmp / (opus.stem + ".wav")
    subprocess.run(["opusdec", "--quiet", "--rate", "8000", str(opus), str(wav)], check=True)
    out = []
    for ch in ("1", "2"):
        res = subprocess.run(["sox", str(wav), "-n", "remix", ch, "stat"], capture_output=True, text=True,
                             check=True)
        line = next(x for x in res.stderr.splitlines() if x.startswith("RMS     amplitude"))
        out.append(float(line.split(":")[1]))
    return out[0], out[1]


def wav_seconds(path: Path) -> float:
    res = subprocess.run(["sox", "--i", "-D", str(path)], capture_output=True, text=True, check=True)
    return float(res.stdout.strip())
