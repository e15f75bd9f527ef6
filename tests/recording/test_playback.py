"""Playback over HTTP on the production app: search, Range (seeking), who may hear what, the access log."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import aiohttp

from ctiserver.recording import store
from tests.production import Running, edit_yaml, production_server


def recording_on(agents_hear_own: bool) -> Any:
    def edit(cfg: Path) -> None:
        edit_yaml(cfg / "recording.yaml", lambda d: d.update(enabled=True, agents_hear_own=agents_hear_own,
                                                            root=str(cfg.parent / "archive")))
    return edit


async def add_recording(running: Running, agent: str, start: float, number: str = "13800000001") -> int:
    root = running.server.features.extra["recorder"].root
    rel = Path("2026/12/03") / f"r{agent}-{int(start)}.opus"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    data = bytes(range(256)) * 40  # 10240 bytes: what is served must be these bytes, range by range
    (root / rel).write_bytes(data)
    rec_id = await store.insert_recording(running.server.store.engine, {
        "spool": f"s-{agent}-{start}", "call_id": f"{int(start)}.1", "uniqueid": f"{int(start)}.2", "agent_id": agent,
        "queue": "billing", "number": number, "customer": None, "start_ts": start, "duration_s": 61.5,
        "codec": "opus", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "path": str(rel),
        "created_ts": start + 70})
    assert rec_id is not None
    return rec_id


async def test_supervisors_and_qc_search_and_seek_and_every_access_is_logged(tmp_path: Path) -> None:
    async with production_server(tmp_path, recording_on(False)) as running:
        now = running.server.clock.now()
        mine = await add_recording(running, "1001", now - 3600)
        await add_recording(running, "1002", now - 7200, number="13900000002")
        for user, role in (("2001", "supervisor"), ("3001", "qc"), ("1001", "agent")):
            await running.add_user(user, role)
        async with aiohttp.ClientSession() as http:
            token = await running.login(http, "3001")
            auth = {"Authorization": f"Bearer {token}"}
            async with http.get(f"{running.url}/api/recordings", params={"agent": "1001"}, headers=auth) as r:
                assert r.status == 200
                rows = await r.json()
            assert [x["id"] for x in rows] == [mine] and rows[0]["audio"] == f"/api/recordings/{mine}/audio"
            async with http.get(f"{running.url}/api/recordings", params={"number": "139"}, headers=auth) as r:
                assert [x["agent_id"] for x in await r.json()] == ["1002"]
            async with http.get(f"{running.url}/api/recordings", params={"min_s": "100"}, headers=auth) as r:
                assert await r.json() == []
            async with http.get(f"{running.url}/api/recordings", params={"bogus": "1"}, headers=auth) as r:
                assert r.status == 400 and (await r.json())["error"]["id"] == "bad-query"
            audio = f"{running.url}/api/recordings/{mine}/audio"
            async with http.get(audio, headers={**auth, "Range": "bytes=1000-1099"}) as r:
                assert r.status == 206 and r.headers["Content-Range"] == "bytes 1000-1099/10240"
                assert r.headers["Content-Type"] == "audio/ogg"
                assert await r.read() == (bytes(range(256)) * 40)[1000:1100]
            async with http.get(audio, params={"download": "1"}, headers=auth) as r:
                assert r.status == 200 and "attachment" in r.headers["Content-Disposition"]
            async with http.get(f"{running.url}/api/recordings/{mine}/access", headers=auth) as r:
                log = await r.json()
            assert [(x["user"], x["action"], x["range"]) for x in log] == [
                ("3001", "play", "bytes=1000-1099"), ("3001", "download", None)]
            # unauthenticated: nothing; an agent while agents_hear_own is off: forbidden
        async with aiohttp.ClientSession() as anon:
            async with anon.get(audio) as r:
                assert r.status == 401 and (await r.json())["error"]["id"] == "unauthenticated"
            agent = {"Authorization": f"Bearer {await running.login(anon, '1001')}"}
            async with anon.get(audio, headers=agent) as r:
                assert r.status == 403


async def test_agents_hear_only_their_own_when_allowed(tmp_path: Path) -> None:
    async with production_server(tmp_path, recording_on(True)) as running:
        now = running.server.clock.now()
        mine = await add_recording(running, "1001", now - 3600)
        other = await add_recording(running, "1002", now - 7200)
        await running.add_user("1001", "agent")
        async with aiohttp.ClientSession() as http:
            auth = {"Authorization": f"Bearer {await running.login(http, '1001')}"}
            async with http.get(f"{running.url}/api/recordings", params={"agent": "1002"}, headers=auth) as r:
                assert [x["id"] for x in await r.json()] == [mine]  # the filter cannot reach another's
            async with http.get(f"{running.url}/api/recordings/{other}/audio", headers=auth) as r:
                assert r.status == 404
            async with http.get(f"{running.url}/api/recordings/{mine}/audio", headers=auth) as r:
                assert r.status == 200 and len(await r.read()) == 10240
