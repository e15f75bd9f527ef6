"""The HTTP server as production builds it (ctiserver.app.wiring.build_server), over a real socket.

One error shape everywhere, `{"error": {"id", "message", "details"}}`: aiohttp's own 404/405,
the desktop API, the outbound and callback APIs, the reports API; one login check for all of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.production import Running, production_server


@pytest.fixture
async def prod(tmp_path: Path) -> AsyncIterator[Running]:
    async with production_server(tmp_path) as running:
        await running.add_user("1001", "agent")
        await running.add_user("2001", "supervisor")
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:  # keeps 127.0.0.1's cookie
        yield s


async def error_shape(resp: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    """The response is `status` with the one error shape; returns the inner object."""
    assert resp.status == status, (resp.status, await resp.text())
    assert resp.content_type == "application/json", resp.content_type
    body = await resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"id", "message", "details"}, err
    assert isinstance(err["id"], str) and err["id"] and isinstance(err["message"], str) and err["message"]
    return dict(err)


async def test_unknown_paths_and_methods_answer_json_in_the_production_app(
        prod: Running, http: aiohttp.ClientSession) -> None:
    await prod.login(http, "2001")
    for path in ("/api/nothing", "/api/outbound/nothing", "/nothing", "/api/workorders/1/nothing"):
        async with http.get(prod.url + path) as r:
            assert (await error_shape(r, 404))["id"] == "not-found", path
    for method, path in (("DELETE", "/api/me"), ("PUT", "/api/outbound/campaigns"), ("POST", "/healthz"),
                         ("PATCH", "/api/reports")):
        async with http.request(method, prod.url + path) as r:
            err = await error_shape(r, 405)
            assert err["id"] == "method-not-allowed" and r.headers["Allow"], (method, path)


async def test_every_api_answers_errors_in_one_shape(prod: Running, http: aiohttp.ClientSession) -> None:
    async with http.get(prod.url + "/api/outbound/campaigns") as r:  # the ops guard: not logged in
        assert (await error_shape(r, 401))["id"] == "unauthenticated"
    async with http.get(prod.url + "/api/me") as r:
        assert (await error_shape(r, 401))["id"] == "unauthenticated"
    await prod.login(http, "1001")
    async with http.get(prod.url + "/api/reports") as r:  # an agent: supervisors only
        assert (await error_shape(r, 403))["id"] == "forbidden"
    await prod.login(http, "2001")
    async with http.get(prod.url + "/api/reports", params={"by": "nonsense"}) as r:
        await error_shape(r, 400)
    async with http.get(prod.url + "/api/outbound/campaigns/nope/results") as r:
        await error_shape(r, 404)
    async with http.get(prod.url + "/api/outbound/callbacks", params={"limit": "0"}) as r:
        await error_shape(r, 400)
    async with http.post(prod.url + "/api/outbound/callbacks/999/cancel") as r:
        await error_shape(r, 404)
    async with http.post(prod.url + "/api/outbound/campaigns/nope/explode") as r:
        await error_shape(r, 404)
    async with http.post(prod.url + "/api/workorders", json={"category": 5}) as r:
        err = await error_shape(r, 422)
        assert isinstance(err["details"], list) and err["details"]


async def test_a_flood_of_malformed_requests_is_one_log_line_and_a_count(
        prod: Running, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp answers what it cannot parse with 400 before any middleware: a scanner must not write a
    traceback per connection (web/badrequests.py), and the server keeps serving."""
    import asyncio
    import logging
    from urllib.parse import urlsplit

    host, port = urlsplit(prod.url).hostname, urlsplit(prod.url).port
    junk = [b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 70000 + b"\r\n\r\n",  # header too long
            b"GET /\x00 HTTP/1.1\r\n\r\n", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
            b"POST /api/login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]
    caplog.set_level(logging.DEBUG, logger="ctiserver.http")
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    answered = 0
    for i in range(60):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(junk[i % len(junk)])
        await writer.drain()
        status = await reader.readline()
        answered += status.startswith(b"HTTP/1.1 400") or status.startswith(b"HTTP/1.0 400")
        writer.close()
        await writer.wait_closed()
    assert answered >= 45, answered  # (a bad method is dropped without a status line by aiohttp itself)
    lines = [r for r in caplog.records if r.name in ("ctiserver.http", "aiohttp.server") and r.levelno > logging.DEBUG]
    assert len(lines) <= 2, [r.getMessage()[:120] for r in lines]
    assert not any(r.exc_info for r in lines)
    assert lines and "malformed HTTP requests answered 400" in lines[0].getMessage()
    async with http.get(prod.url + "/healthz") as r:  # still serving
        assert r.status in (200, 503)
