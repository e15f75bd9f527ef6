"""The QC page in headless Chromium: a QC reviewer plays a real Opus recording, seeks into it (HTTP Range,
logged), comments at that second and scores the call by the sheet."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright, expect

from ctiserver.qc import store as qc_store
from ctiserver.qc.sampling import CallFacts, Pick
from ctiserver.recording import store
from tests.production import PASSWORD, Running, edit_yaml, production_server

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            await b.close()


def make_opus(wav: Path, target: Path) -> None:
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "2", "-b", "16", str(wav), "synth", "10", "sine", "1000",
                    "remix", "0", "1"], check=True)
    subprocess.run(["opusenc", "--quiet", "--bitrate", "32", "--speech", str(wav), str(target)], check=True)


async def a_recorded_call(running: Running, tmp: Path) -> int:
    """A 10 s stereo Opus file as the recorder makes them (caller silent left, agent's tone right), indexed,
    with its QC task."""
    recorder = running.server.features.extra["recorder"]
    rel = Path("2026/11/20/call.opus")
    target = recorder.root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(make_opus, tmp / "call.wav", target)
    data = target.read_bytes()
    now = running.server.clock.now()
    rec_id = await store.insert_recording(running.server.store.engine, {
        "spool": "browser-test", "call_id": "1790000000.1", "uniqueid": "1790000000.2", "agent_id": "1001",
        "queue": "billing", "number": "13800000001", "customer": "9100000001", "start_ts": now - 600,
        "duration_s": 10.0, "codec": "opus", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
        "path": str(rel), "created_ts": now})
    assert rec_id is not None
    call = CallFacts("1790000000.1", "1001", now - 600, 10.0, "billing", rec_id)
    await qc_store.create_tasks(running.server.store.engine, "2026-11", [Pick(call, "random", now + 86400)], now)
    return rec_id


async def test_a_reviewer_plays_seeks_comments_and_scores(tmp_path: Path, browser: Browser) -> None:
    def edit(cfg: Path) -> None:
        edit_yaml(cfg / "recording.yaml", lambda d: d.update(root=str(cfg.parent / "archive")))

    async with production_server(tmp_path, edit) as running:
        rec_id = await a_recorded_call(running, tmp_path)
        await running.add_user("3001", "qc")
        page = await (await browser.new_context()).new_page()
        await page.goto(running.url + "/qc")
        await page.fill("#agent_no", "3001")
        await page.fill("#password", PASSWORD)
        await page.click("#login-form button[type=submit]")
        await page.click("tr.task-row")
        await expect(page.locator("#record")).to_contain_text("13800000001")
        player = page.locator("#player")
        duration = await player.evaluate(
            "a => a.readyState >= 1 ? a.duration : new Promise(r => a.addEventListener('loadedmetadata', "
            "() => r(a.duration), {once: true}))")
        assert 9.5 < duration < 10.5
        at = await player.evaluate(
            "a => new Promise(r => { a.addEventListener('seeked', () => r(a.currentTime), {once: true}); "
            "a.currentTime = 6.5; })")
        assert at == pytest.approx(6.5, abs=0.1)
        played = await player.evaluate(  # it plays on from where it was sought to
            "a => new Promise(r => { const f = () => { if (a.currentTime > 6.7) { a.removeEventListener("
            "'timeupdate', f); a.pause(); r(a.currentTime); } }; a.addEventListener('timeupdate', f); a.play(); })")
        assert 6.7 < played < 10.1
        await page.fill("#comment-text", "语速偏快")
        await page.click("#comment-add")
        await expect(page.locator("#comments li")).to_contain_text("语速偏快")
        await page.fill("#mark-pace", "1")
        await page.click("#submit-score")
        await expect(page.locator("#result")).to_have_attribute("data-score", "98")
        [task] = await qc_store.tasks(running.server.store.engine, month="2026-11")
        assert task["status"] == "scored" and task["reviewer"] == "3001" and task["score"] == 98
        assert task["comments"][0]["text"] == "语速偏快" and task["comments"][0]["at_s"] >= 6.5
        access = await store.access_log(running.server.store.engine, rec_id)
        assert access and all(a["user"] == "3001" and a["action"] == "play" for a in access)
        assert any((a["range"] or "").startswith("bytes=") for a in access)  # the browser asked for ranges
