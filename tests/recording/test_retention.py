"""Retention on the production server's recorder: exactly the expired files (and rows) go, each logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from ctiserver.recording import store
from ctiserver.web.tables import dispositions
from tests.production import edit_yaml, production_server
from tests.recording.test_playback import add_recording

DAY = 86400.0


async def test_retention_deletes_exactly_the_expired_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def edit(cfg: Path) -> None:
        edit_yaml(cfg / "recording.yaml", lambda d: d.update(root=str(cfg.parent / "archive")))

    async with production_server(tmp_path, edit) as running:
        recorder = running.server.features.extra["recorder"]
        now = running.server.clock.now()
        old = await add_recording(running, "1001", now - 200 * DAY)  # default kind: 183 days
        young = await add_recording(running, "1002", now - 100 * DAY)
        complaint = await add_recording(running, "1003", now - 400 * DAY)  # a complaint: 730 days
        old_complaint = await add_recording(running, "1004", now - 800 * DAY)
        engine = running.server.store.engine
        async with engine.begin() as conn:
            for rec_id in (complaint, old_complaint):
                row = await store.get(engine, rec_id)
                assert row is not None
                await conn.execute(insert(dispositions).values(ts=now, agent_no=row["agent_id"], call_id=row["call_id"],
                                                               category="complaint", note="", resolved=False))
        ids = (old, young, complaint, old_complaint)
        paths = {i: recorder.root / (await store.get(engine, i))["path"] for i in ids}
        with caplog.at_level(logging.INFO, logger="ctiserver.recording.service"):
            deleted = await recorder.retention_once()
        assert sorted(deleted) == sorted([old, old_complaint])
        assert {i: p.exists() for i, p in paths.items()} == {old: False, young: True, complaint: True,
                                                             old_complaint: False}
        async with engine.connect() as conn:
            left = {r[0] for r in await conn.execute(select(store.recordings.c.id))}
        assert left == {young, complaint}
        logged = [r.getMessage() for r in caplog.records if "retention: deleted" in r.getMessage()]
        assert len(logged) == 2 and any(f"recording {old} (default, kept 183 days)" in m for m in logged)
        assert any(f"recording {old_complaint} (complaint, kept 730 days)" in m for m in logged)
        assert await recorder.retention_once() == []  # nothing more on a second run
