"""The campaigns HTTP API over a real aiohttp server and the SQLite/PostgreSQL store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.clock import FakeClock
from ctiserver.outbound.http import add_routes
from ctiserver.outbound.model import CampaignSpec, ContactIn, OutboundConfig
from ctiserver.outbound.service import OutboundService
from ctiserver.web.guard import new_app


class NoAmi:
    async def action(self, name: str, fields: Mapping[str, Any] | None = None, /) -> Any:
        raise ConnectionError("no Asterisk in this test")


async def test_status_actions_results_and_export(engine: AsyncEngine) -> None:
    svc = OutboundService(OutboundConfig(), engine, NoAmi(), "pbx1", FakeClock(0.0), lambda e: None)
    await svc.store.create_campaign(CampaignSpec(name="s1", kind="survey", title="回访"), 0.0)
    await svc.store.add_contacts("s1", [ContactIn("13800000001", name="张三")], 0.0)
    ready: dict[str, OutboundService] = {}
    app = new_app()
    add_routes(app, lambda: ready.get("svc"))
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/api/outbound/campaigns")
        assert resp.status == 503 and (await resp.json())["error"]["id"] == "outbound_not_ready"
        ready["svc"] = svc
        [status] = await (await client.get("/api/outbound/campaigns")).json()
        assert (status["campaign"], status["state"], status["contacts"]) == ("s1", "draft", 1)
        resp = await client.post("/api/outbound/campaigns/s1/start")
        assert resp.status == 200 and (await resp.json())["state"] == "running"
        resp = await client.post("/api/outbound/campaigns/s1/start")
        assert resp.status == 409 and (await resp.json())["error"]["id"] == "campaign_state"
        resp = await client.post("/api/outbound/campaigns/s1/explode")
        assert resp.status == 404 and (await resp.json())["error"]["id"] == "unknown_action"
        resp = await client.post("/api/outbound/campaigns/nope/pause")
        assert resp.status == 404 and (await resp.json())["error"]["id"] == "unknown_campaign"
        r = await (await client.get("/api/outbound/campaigns/s1/results")).json()
        assert (r["contacts"], r["pending"]) == (1, 1)
        resp = await client.get("/api/outbound/campaigns/s1/not-reached.csv")
        assert resp.status == 200 and resp.content_type == "text/csv"
        assert (await resp.text()).startswith("\ufeffnumber,name")
        assert (await client.get("/api/outbound/campaigns/nope/results")).status == 404
