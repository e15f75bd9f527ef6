"""The production server's recorder with a backlog in its spool (recordings of calls that ended while it was
away): a call whose hang-up it watches is indexed before the rest of the backlog, not after all of it; with
several encoders, that many recordings are finalized at a time."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ctiserver.recording import service, store
from ctiserver.recording.core import AGENT, CALLER, DONE
from tests.production import edit_yaml, production_server

BACKLOG = 6


def spool_recording(spool: Path, base: str) -> None:
    """Two short legs and the done marker, as Asterisk leaves a finished recording."""
    for suffix in (CALLER, AGENT):
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(spool / f"{base}{suffix}"),
                        "synth", "0.3", "sine", "440"], check=True)
    (spool / f"{base}{DONE}").touch()


async def test_a_watched_hangup_is_indexed_before_the_rest_of_a_backlog(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    backlog = [f"1700000000.{i}-1700000000.{i}-1001-{1700000000000 + i * 1000}" for i in range(1, BACKLOG + 1)]
    for base in backlog:
        spool_recording(spool, base)

    def edit(cfg: Path) -> None:
        edit_yaml(cfg / "recording.yaml", lambda d: d.update(enabled=True, spool_dir=str(spool), encoders=1,
                                                             root=str(tmp_path / "archive")))

    async with production_server(tmp_path, edit) as running:
        recorder = running.server.features.extra["recorder"]
        engine = running.server.store.engine
        first = await asyncio.wait_for(recorder.indexed.get(), 60)  # the sweep is working through the backlog
        # meanwhile an agent's call is recorded and hangs up, as Asterisk tells it
        watched = "1800000000.1-1800000000.2-1002-1800000001000"
        spool_recording(spool, watched)
        recorder.on_ami("pbx1", {"Event": "UserEvent", "UserEvent": "CtiRecording", "Uniqueid": "1800000000.2",
                                 "Channel": "PJSIP/agent1002-00000001", "Spool": watched})
        recorder.on_ami("pbx1", {"Event": "Hangup", "Uniqueid": "1800000000.2"})

        async def spool_of(rec_id: int) -> str:
            row = await store.get(engine, rec_id)
            assert row is not None
            return str(row["spool"])

        order = [await spool_of(first)]
        for _ in range(BACKLOG):
            order.append(await spool_of(await asyncio.wait_for(recorder.indexed.get(), 60)))
    assert sorted(order) == sorted([*backlog, watched])  # every recording indexed once
    # the one in hand when the hang-up came may finish first; the watched call goes before the others
    assert order.index(watched) <= 2, order
    assert [b for b in order if b != watched] == backlog  # the backlog oldest first
    assert not list(spool.iterdir())


async def test_several_encoders_finalize_that_many_recordings_at_a_time(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    backlog = [f"1700000000.{i}-1700000000.{i}-1001-{1700000000000 + i * 1000}" for i in range(1, BACKLOG + 1)]
    for base in backlog:
        spool_recording(spool, base)
    running_now, most = 0, 0
    real_encode = service.encode
    both = asyncio.Event()  # two encodes at once were seen (the first waits for the second, not for luck)

    async def counted(*args: Any) -> Any:
        nonlocal running_now, most
        running_now += 1
        most = max(most, running_now)
        if running_now == 2:
            both.set()
        try:
            await asyncio.wait_for(both.wait(), 30)
            return await real_encode(*args)
        finally:
            running_now -= 1

    monkeypatch.setattr(service, "encode", counted)

    def edit(cfg: Path) -> None:
        edit_yaml(cfg / "recording.yaml", lambda d: d.update(enabled=True, spool_dir=str(spool), encoders=2,
                                                             root=str(tmp_path / "archive")))

    async with production_server(tmp_path, edit) as running:
        recorder = running.server.features.extra["recorder"]
        ids = [await asyncio.wait_for(recorder.indexed.get(), 60) for _ in backlog]
        rows = [await store.get(running.server.store.engine, i) for i in ids]
    assert sorted(str(r["spool"]) for r in rows if r is not None) == backlog  # each once
    assert most == 2  # two at a time, never more
    assert not list(spool.iterdir())
