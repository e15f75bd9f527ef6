"""Cross-site requests against the server as production builds it, over a real socket.

A page on another site can make a logged-in supervisor's browser send a `text/plain` or form
POST with the session cookie. Every state-changing route the production app serves (enumerated
from its router, so a route added later is covered too) must refuse that: another `Origin` (or
`Sec-Fetch-Site: cross-site`) is 403, a body that is not JSON is 415, and nothing changes.
Bodiless POSTs (log out, hang up, start a campaign) work without a Content-Type from this site.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from ctiserver.outbound.model import CampaignSpec
from tests.production import Running, production_server

from .test_production_http import error_shape

EVIL = "http://evil.example"
PATH_VALUES = {"name": "s1", "action": "start", "agent_no": "2001", "call_id": "c1", "wo_id": "1", "step": "ack",
               "token": "crew-token"}  # any other path parameter: "1" (the origin check comes before the route)
SAFE = {"GET", "HEAD", "OPTIONS"}


@pytest.fixture
async def prod(tmp_path: Path) -> AsyncIterator[Running]:
    async with production_server(tmp_path) as running:
        await running.add_user("2001", "supervisor")
        yield running


def state_changing_urls(prod: Running, callback_id: int) -> list[tuple[str, str]]:
    """(method, url) of every route of the production app that is not GET/HEAD/OPTIONS."""
    out = []
    values = {**PATH_VALUES, "id": str(callback_id)}
    for route in prod.server.http_app.router.routes():
        if route.method in SAFE:
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("formatter") or info.get("path")
        assert template, f"route {route} has no path"
        path = re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "1"), template)
        out.append((route.method, prod.url + path))
    return out


async def test_no_state_changing_route_accepts_a_cross_site_request(prod: Running) -> None:
    outbound = prod.server.features.outbound
    assert outbound.service is not None and outbound.callbacks is not None  # started with the server
    now = prod.server.clock.now()
    await outbound.service.store.create_campaign(CampaignSpec(name="s1", kind="survey", title="回访"), now)
    cb = await outbound.callbacks.store.add(origin_call="in-1", number="13900000001", skill="billing",
                                               tier="normal", reason="abandon", customer=None, status="pending",
                                               now=now, due_ts=now + 3600, place_ts=now)
    assert cb is not None
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        await prod.login(http, "2001")
        routes = state_changing_urls(prod, cb)
        paths = {url.removeprefix(prod.url) for _, url in routes}
        # the ones the issue names, and the desktop's: the enumeration really sees the app's routes
        assert {"/api/outbound/campaigns/s1/start", f"/api/outbound/callbacks/{cb}/cancel", "/api/auth/logout",
                "/api/workorders", "/api/calls/c1/hangup"} <= paths, paths
        hostile: list[tuple[dict[str, str], bytes | None, int, str]] = [
            ({"Origin": EVIL, "Content-Type": "text/plain"}, b'{"status": "closed"}', 403, "bad-origin"),
            ({"Origin": EVIL, "Content-Type": "application/json"}, b"{}", 403, "bad-origin"),
            ({"Origin": EVIL}, None, 403, "bad-origin"),
            ({"Origin": "null", "Content-Type": "text/plain"}, b"x", 403, "bad-origin"),
            ({"Origin": prod.url.replace("127.0.0.1", "127.0.0.1.evil.example")}, None, 403, "bad-origin"),
            ({"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}, b"x", 403, "bad-origin"),
            ({"Origin": prod.url, "Content-Type": "text/plain"}, b'{"action": "ready"}', 415,
             "unsupported-media-type"),
            ({"Origin": prod.url, "Content-Type": "text/plain"}, None, 415, "unsupported-media-type"),
            ({"Content-Type": "application/x-www-form-urlencoded"}, b"a=1", 415, "unsupported-media-type"),
            ({"Content-Type": "multipart/form-data; boundary=x"}, None, 415, "unsupported-media-type"),
            ({}, b'{"action": "ready"}', 415, "unsupported-media-type"),  # a body says what it is
        ]
        for method, url in routes:
            for headers, data, status, error_id in hostile:
                async with http.request(method, url, headers=headers, data=data,
                                        skip_auto_headers=["Content-Type"]) as r:
                    assert (await error_shape(r, status))["id"] == error_id, (method, url, headers)
        # nothing changed: the campaign is a draft, the callback open, the session alive, no work order
        assert (await outbound.service.store.campaign("s1")).state == "draft"
        row = await outbound.callbacks.store.get(cb)
        assert row is not None and row.status in ("pending", "queued")
        async with http.get(prod.url + "/api/me") as r:
            assert r.status == 200
        async with http.get(prod.url + "/api/workorders", params={"status": "open"}) as r:
            assert await r.json() == []

        # this site's page (Origin, or no Origin from a script) works, bodiless POSTs without a type
        same = {"Origin": prod.url, "Sec-Fetch-Site": "same-origin"}
        async with http.post(prod.url + "/api/outbound/campaigns/s1/start", headers=same,
                             skip_auto_headers=["Content-Type"]) as r:
            assert r.status == 200 and (await r.json())["state"] == "running"
        async with http.post(f"{prod.url}/api/outbound/callbacks/{cb}/cancel",
                             skip_auto_headers=["Content-Type"]) as r:
            assert r.status == 200 and (await r.json())["status"] == "cancelled"
        async with http.post(prod.url + "/api/auth/logout", headers=same, skip_auto_headers=["Content-Type"]) as r:
            assert r.status == 200
        async with http.get(prod.url + "/api/me") as r:
            assert r.status == 401
