"""QC on the production app: `ctiserver qc sample` makes the month's tasks from recorded calls; a QC reviewer
scores one (with a comment at a second), the agent appeals once, a supervisor decides; the figures follow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import insert

from ctiserver.calendar import load_calendar
from ctiserver.events import Kind
from ctiserver.qc.cli import month_range, sample_month
from ctiserver.qc.sheet import load_qc_sheet
from ctiserver.web.tables import dispositions
from tests.production import Running, edit_yaml, production_server
from tests.recording.test_playback import add_recording


def archive(cfg: Path) -> None:
    edit_yaml(cfg / "recording.yaml", lambda d: d.update(root=str(cfg.parent / "archive")))


def full_marks(sheet: dict[str, Any]) -> dict[str, float]:
    return {i["id"]: i["points"] for s in sheet["sections"] for i in s["items"]}


async def month_of_recordings(running: Running, month: str) -> float:
    cfg_dir = running.server.config_dir
    start, _ = month_range(month, load_calendar(cfg_dir))
    for n in range(8):  # agent 1001: 8 calls over the month, one a complaint
        rec = await add_recording(running, "1001", start + 86400 * (1 + 3 * n) + n)
        if n == 2:
            async with running.server.store.engine.begin() as conn:
                await conn.execute(insert(dispositions).values(ts=start, agent_no="1001",
                                                               call_id=f"{int(start + 86400 * 7 + 2)}.1",
                                                               category="complaint", note="", resolved=False))
        assert rec
    return start


async def post(http: aiohttp.ClientSession, url: str, token: str, path: str, body: Any = None) -> Any:
    async with http.post(url + path, json=body, headers={"Authorization": f"Bearer {token}", "Origin": url}) as r:
        return r.status, await r.json()


async def test_sample_score_appeal_decide_and_figures(tmp_path: Path) -> None:
    async with production_server(tmp_path, archive) as running:
        await month_of_recordings(running, "2026-11")
        await running.server.store.flush()
        cfg_dir = running.server.config_dir
        start, end = month_range("2026-11", load_calendar(cfg_dir))
        engine, now = running.server.store.engine, running.server.clock.now()
        picked, made, _ = await sample_month(engine, load_qc_sheet(cfg_dir), "2026-11", start, end, 202611, now)
        assert picked == made == 6
        assert (await sample_month(engine, load_qc_sheet(cfg_dir), "2026-11", start, end, 202611, now))[1] == 0
        for user, role in (("3001", "qc"), ("1001", "agent"), ("2001", "supervisor")):
            await running.add_user(user, role)
        url = running.url
        async with aiohttp.ClientSession() as http:
            qc, agent, sup = [await running.login(http, u) for u in ("3001", "1001", "2001")]
            async with http.get(f"{url}/api/qc/tasks?month=2026-11", headers={"Authorization": f"Bearer {qc}"}) as r:
                tasks = await r.json()
            assert len(tasks) == 6 and sorted(t["reason"] for t in tasks).count("complaint") == 1  # 5 random + 1
            async with http.get(f"{url}/api/qc/sheet", headers={"Authorization": f"Bearer {qc}"}) as r:
                sheet = await r.json()
            task = tasks[0]["id"]
            status, body = await post(http, url, qc, f"/api/qc/tasks/{task}/score",
                                      {"marks": full_marks(sheet), "deductions": {"forbidden_phrase": 1},
                                       "comments": [{"at_s": 12.5, "text": "说了“不清楚”"}]})
            assert status == 200 and body["score"] == 98 and body["passed"] and body["comments"][0]["at_s"] == 12.5
            status, body = await post(http, url, qc, f"/api/qc/tasks/{task}/score", {"marks": {"accurate": 99}})
            assert status == 422 and body["error"]["id"] == "bad-score"
            status, body = await post(http, url, agent, f"/api/qc/tasks/{task}/appeal", {"text": "客户先挂断"})
            assert status == 200 and body["status"] == "appealed"
            status, body = await post(http, url, agent, f"/api/qc/tasks/{task}/appeal", {"text": "again"})
            assert status == 409  # once
            status, body = await post(http, url, sup, f"/api/qc/tasks/{task}/decide",
                                      {"decision": "revised", "note": "录音可证", "score": 100})
            assert status == 200 and body["status"] == "decided" and body["score"] == 100
            status, body = await post(http, url, agent, f"/api/qc/tasks/{task}/acknowledge")
            assert status == 200 and body["ack_ts"] is not None
            async with http.get(f"{url}/api/qc/figures?month=2026-11", headers={"Authorization": f"Bearer {sup}"}) as r:
                figs = await r.json()
            assert figs["agents"]["1001"] == {"inspected": 1, "avg_score": 100.0, "pass_rate": 1.0, "fatal": 0}
            assert figs["teams"]["A"]["inspected"] == 1  # wfm.yaml's team of 1001
        await running.server.store.flush()
        from ctiserver.store.query import fetch_events

        actions = [e.data["action"] for e in await fetch_events(running.server.store.engine, kinds=[Kind.QC])]
        assert actions == ["scored", "appealed", "decided", "acknowledged"]
