"""The production server pushes today's KPI figures to supervisors as events change them (no polling), and
they are the report's figures for the same events."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from ctiserver.events import Event, Kind
from ctiserver.kpi.config import load_kpi_config
from ctiserver.kpi.report import build_report
from tests.production import production_server


async def until_kpi(ws: Any, answered: int) -> dict[str, Any]:
    while True:  # a message per change; the last one has the call's answer
        msg = await ws.receive_json(timeout=30)
        if msg["type"] == "kpi" and msg["data"]["today"]["total"]["answered"] == answered:
            return dict(msg["data"])


async def test_supervisors_get_the_live_figures_and_they_equal_the_report(tmp_path: Path) -> None:
    async with production_server(tmp_path) as run:
        await run.add_user("2001", "supervisor")
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            await run.login(http, "2001")
            ws = await http.ws_connect(f"{run.url}/ws", headers={"Origin": run.origin})
            await ws.send_json({"type": "hello", "epoch": None, "last": {}})
            assert (await ws.receive_json(timeout=10))["type"] == "hello"
            server = run.server
            now = server.clock.now()
            for ev in (Event(Kind.CALL_NEW, now - 30, "live-1", data={"caller_num": "13800000001"}),
                       Event(Kind.ACD_ENQUEUE, now - 25, "live-1", queue="billing", tier="vip", data={}),
                       Event(Kind.ACD_ANSWER, now - 10, "live-1", "1001", "billing", "vip", data={"ring_s": 2}),
                       Event(Kind.CALL_NEW, now - 20, "live-2", data={"caller_num": "13800000002"}),
                       Event(Kind.ACD_ENQUEUE, now - 19, "live-2", queue="fault", tier="normal", data={})):
                server.emit(ev)
            figs = await until_kpi(ws, 1)
            await ws.close()
        total = figs["today"]["total"]
        assert total["calls_offered"] == 2 and total["in_queue"] == 1
        assert figs["waiting"] == 1 and figs["longest_wait_s"] >= 19
        assert figs["today"]["tiers"]["vip"]["service_level"] == 1.0
        assert figs["today"]["queues"]["billing"]["asa_s"] == 15.0
        await server.store.flush(timeout=30)
        kpi = load_kpi_config(tmp_path / "config")
        start, end = kpi.calendar.at(kpi.calendar.today(now)), now + 1
        report = await build_report(server.store.engine, kpi, start, end, ["tier"], now=now)
        for k in ("calls_offered", "answered", "service_level", "asa_s", "abandon_rate", "in_queue"):
            assert report["total"][k] == total[k], k


async def test_nothing_is_computed_while_no_supervisor_listens() -> None:
    """With no supervisor page open the pusher computes nothing (twice a second under load, for nobody); the
    wallboard's snapshot computes the figures when it asks, with every event so far; once someone listens,
    changes are pushed again."""
    import asyncio

    from ctiserver.clock import FakeClock
    from ctiserver.kpi.config import KpiConfig
    from ctiserver.kpi.livefeed import LiveKpiFeed

    clock = FakeClock(1_796_000_000.0)
    listening, asked, pushed = [False], asyncio.Event(), asyncio.Event()
    published: list[dict[str, Any]] = []

    def listens() -> bool:
        asked.set()
        return listening[0]

    def publish(figures: dict[str, Any]) -> None:
        published.append(figures)
        pushed.set()

    feed = LiveKpiFeed(KpiConfig(), clock, engine=lambda: None, publish=publish, settle_s=0.01, listening=listens)
    computed = 0
    figures = feed.live.figures

    def counted(now: float) -> dict[str, Any]:
        nonlocal computed
        computed += 1
        return figures(now)

    feed.live.figures = counted  # type: ignore[method-assign]
    async with feed.running():
        await asyncio.wait_for(asked.wait(), 10)  # the start's own wake-up, with nobody listening
        asked.clear()
        now = clock.now()
        for ev in (Event(Kind.CALL_NEW, now - 20, "q-1", data={"caller_num": "13800000001"}),
                   Event(Kind.ACD_ENQUEUE, now - 19, "q-1", queue="billing", tier="normal", data={})):
            feed.on_event(ev)
        await asyncio.wait_for(asked.wait(), 10)
        assert computed == 0 and published == []
        assert feed()["offered_today"] == 1 and computed == 1  # the wallboard asks: computed then
        listening[0] = True
        feed.on_event(Event(Kind.CALL_NEW, now - 5, "q-2", data={"caller_num": "13800000002"}))
        await asyncio.wait_for(pushed.wait(), 10)
        assert published[-1]["today"]["total"]["calls_offered"] == 2
