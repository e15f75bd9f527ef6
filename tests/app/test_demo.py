"""`ctiserver demo` on the real sandbox Asterisk: callers reach agents, the store and the reports see them."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ctiserver.app.demo import Demo, DemoOptions, banner, load_customers
from ctiserver.events import Event, Kind
from ctiserver.sandbox import chroot as sandbox
from ctiserver.store.engine import make_engine
from ctiserver.store.query import fetch_events

pytestmark = pytest.mark.asterisk

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str, token: str = "", body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json",
                                                          **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, None


def test_sample_customers_are_callers() -> None:
    customers = load_customers(ROOT / "config")
    assert len(customers) >= 20
    assert all(p.isdigit() and len(p) == 11 for p, _ in customers)
    assert ("13800000001", "张建国") in customers


def test_the_demo_config_dials_the_sandboxs_scripted_customers(tmp_path: Path) -> None:
    import yaml

    from ctiserver.app.demo import prepare_config
    from ctiserver.app.settings import check_all
    from ctiserver.outbound.model import load_outbound_config

    prepare_config(ROOT / "config", tmp_path / "config", DemoOptions(ROOT / "config", agent_prefix="d7"))
    assert load_outbound_config(tmp_path / "config").dial.channel == "Local/{number}@outbound-dest"
    acd = yaml.safe_load((tmp_path / "config" / "acd.yaml").read_text(encoding="utf-8"))
    assert acd["dial_template"] == "Local/d7{id}@sim-agents"
    assert check_all(tmp_path / "config", 1_795_399_200.0) == []


async def test_the_demo_counts_what_the_fallback_queue_did_apart() -> None:
    """Any caller on the Asterisk whose CTI was out of reach is served by Queue(fallback), and the server
    records that queue's outcomes too (acd.* with fallback: true): the demo's ACD figures leave them out."""
    demo = Demo(DemoOptions(ROOT / "config"))
    demo._count(Event(Kind.ACD_COMPLETE, ts=1.0, call_id="f1", agent_id="1008", queue="fallback",
                      data={"fallback": True}))
    assert not await demo.wait_for(Kind.ACD_COMPLETE, 1, timeout=0)
    demo._count(Event(Kind.ACD_COMPLETE, ts=1.0, call_id="c1", agent_id="71001", queue="billing", data={"talk_s": 3.0}))
    assert await demo.wait_for(Kind.ACD_COMPLETE, 1, timeout=0)
    assert demo.counters.events == {Kind.ACD_COMPLETE: 1, f"{Kind.ACD_COMPLETE}.fallback": 1}


async def test_demo_places_callers_that_reach_agents(asterisk_sandbox: sandbox.SandboxInfo, tmp_path: Path) -> None:
    # The shared sandbox keeps its sounds folder (no restart under other tests): our TTS cache is that folder.
    opts = DemoOptions(config_dir=ROOT / "config", callers_per_minute=40, seed=3, http_port=free_port(),
                       agi_port=free_port(), work_dir=tmp_path / "demo", agent_prefix="7",
                       sounds_dir=Path(str(asterisk_sandbox.sounds_dir)), noanswer_share=0.0,
                       talk_s=(3.0, 6.0), patience_s=(60.0, 90.0))
    demo = Demo(opts)
    try:
        info = await demo.start()
        text = banner(info)
        for path in ("/wallboard", "/agent", "/reports", "/metrics"):
            assert path in text
        assert await demo.wait_for(Kind.ACD_COMPLETE, 3, timeout=120), demo.counters
        await asyncio.sleep(1.0)  # the store's flush interval
        base = info.urls["metrics"].rsplit("/", 1)[0]
        assert info.password in text and info.supervisor in text
        status, login = await asyncio.to_thread(get_json, f"{base}/api/auth/login", "",
                                                {"agent_no": info.supervisor, "password": info.password})
        assert status == 200, login
        token = login["token"]
        status, report = await asyncio.to_thread(get_json, f"{base}/api/reports?by=queue", token)
        assert status == 200
        assert report["total"]["calls_offered"] >= 3 and report["total"]["answered"] >= 3
        assert {r["key"]["queue"] for r in report["rows"]} & {"billing", "fault", "english", "complaint"}
        status, wall = await asyncio.to_thread(get_json, f"{base}/api/wallboard", token)
        assert status == 200 and wall, (status, wall)
    finally:
        await demo.stop()
    assert demo.server is None
    engine = make_engine(info.db_url)
    try:
        rows = await fetch_events(engine, kinds=[Kind.CALL_NEW, Kind.ACD_ANSWER, Kind.IVR_START, Kind.CALL_END])
    finally:
        await engine.dispose()
    ours = [e for e in rows if (e.call_id or "").startswith(info.tag + "-")]
    kinds = {e.kind for e in ours}
    assert {Kind.CALL_NEW, Kind.IVR_START, Kind.ACD_ANSWER} <= kinds, kinds
    answered_by = {e.agent_id for e in ours if e.kind == Kind.ACD_ANSWER}
    assert answered_by and answered_by <= {f"10{n:02d}" for n in range(1, 11)}
    assert demo.counters.placed >= 3 and demo.counters.failed == 0
