"""The published contract (/api/openapi.json) against the server exactly as production builds it, live.

* The document names every route the production router serves, and nothing else.
* schemathesis (every check, every phase) generates requests from the document as an agent, a
  supervisor and an admin and finds no disagreement between document and server. The run is
  seeded and bounded (`MAX_EXAMPLES`), so it is reproducible and takes about a minute.
* The replies of real requests (work orders, campaigns, callbacks, reports, ...) match their schemas.
* A bodiless POST as the document has it (no body, no Content-Type) works: logging out ends the session.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema

from ctiserver.outbound.model import CampaignSpec, ContactIn
from ctiserver.web.app import WS_HANDSHAKE
from ctiserver.web.openapi import UndocumentedRoute, documented, openapi, served
from tests.production import PASSWORD, Running, edit_yaml, production_server

USERS = {"agent": "1001", "supervisor": "2001", "admin": "9001"}
MAX_EXAMPLES = 3
SEED = 19
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
          "positive_data_acceptance", "missing_required_header", "unsupported_method", "allow_header_conformance",
          "use_after_free", "ensure_resource_availability", "ignored_auth", "object_level_authorization")


def _generous_login_limits(cfg: Path) -> None:
    """schemathesis guesses many passwords from one address; the limits have their own tests."""
    def change(data: dict[str, Any]) -> None:
        for key in ("login_per_user", "login_per_ip", "login_per_user_all_addresses"):
            data[key] = {"max_failures": 1_000_000, "window_s": 1}
    edit_yaml(cfg / "desktop.yaml", change)


@pytest.fixture
async def prod(tmp_path: Path) -> AsyncIterator[Running]:
    async with production_server(tmp_path, _generous_login_limits) as running:
        for role, agent_no in USERS.items():
            await running.add_user(agent_no, role)
        yield running


async def _document(prod: Running) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(prod.url + "/api/openapi.json") as r:
        assert r.status == 200 and r.content_type == "application/json"
        doc: dict[str, Any] = await r.json()
        return doc


async def test_the_document_names_every_route_the_production_server_serves(prod: Running) -> None:
    doc = await _document(prod)
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    routes = {(method, path) for method, path, _ in served(prod.server.http_app.router)}
    assert documented == routes
    openapi(prod.server.http_app.router, strict=True)  # every route has its Operation: none is x-undocumented
    # the ones the issue found missing, and every answer has its content type and schema
    assert {("GET", "/api/reports"), ("GET", "/ws"), ("POST", "/api/outbound/campaigns/{name}/{action}"),
            ("GET", "/api/outbound/campaigns/{name}/not-reached.csv"), ("GET", "/healthz")} <= routes
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, reply in op["responses"].items():
                if status == "101":
                    continue
                assert reply.get("content"), (method, path, status)
                for media in reply["content"].values():
                    assert media.get("schema"), (method, path, status)
            if method != "get" and op.get("security") != []:
                assert {"403", "415"} <= set(op["responses"]), (method, path)  # guard.py: cross-site, non-JSON
    hangup = doc["paths"]["/api/calls/{call_id}/hangup"]["post"]
    assert "503" in hangup["responses"] and "requestBody" not in hangup
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert doc["paths"]["/api/me"]["get"]["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}


async def test_the_document_states_the_rules_the_server_enforces(prod: Running) -> None:
    doc = await _document(prod)
    schemas = doc["components"]["schemas"]
    state = schemas["AgentStateIn"]
    assert set(state["properties"]["reason"]["enum"]) == {"break", "lunch", "training", "meeting", "after_call", None}
    assert {"action": {"const": "not_ready"}, "reason": {"type": "string"}} == state["oneOf"][0]["properties"]
    assert "inquiry" in schemas["DispositionIn"]["properties"]["category"]["enum"]
    assert "city_station" in schemas["WorkOrderIn"]["properties"]["unit"]["enum"]
    assert schemas["CustomerQuery"]["maxProperties"] == schemas["CustomerQuery"]["minProperties"] == 1
    assert {"required": ["account"]} in schemas["WorkOrderQuery"]["anyOf"]
    note = schemas["DispositionIn"]["properties"]["note"]["pattern"]
    assert re.fullmatch(note, "ok\tfine\n") and not re.fullmatch(note, "bad\x00")
    name = schemas["WorkOrderIn"]["properties"]["customer_name"]["pattern"]
    assert not re.fullmatch(name, " \u3000 ") and re.fullmatch(name, " 张三 ")
    wo = doc["paths"]["/api/workorders/{wo_id}"]["get"]["parameters"][0]
    assert wo["schema"]["pattern"] == "^[0-9]{1,15}$"


def _run(url: str, role: str) -> tuple[int, list[str]]:
    """schemathesis over the live server as `role` (logging in through the API, again after a logout):
    (requests sent, failures)."""
    operations: list[dict[str, Any]] = [
        # The WebSocket: after a 101 the connection is no longer HTTP and the fuzzer's next request on it
        # fails; test_websocket_handshake_is_as_documented checks this operation against the document.
        {"include-operation-id": "websocket", "enabled": False},
        # 503 is the health endpoint's answer while an Asterisk link is down (always, here): documented.
        {"include-operation-id": "health",
         "checks": {"not_a_server_error": {"expected-statuses": ["2xx", "4xx", "503"]}}},
        # Rules across fields that JSON Schema cannot state, refused as the document says:
        # `to` after `from` and at most 93 days later (400) ...
        {"include-operation-id": "get_report",
         "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "403"]}}},
        # ... and a work order's call_time not in the future by the server's clock (422)
        {"include-operation-id": "create_workorder",
         "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "422"]}}},
        # ... an outage names at least one area, feeder, transformer or account, and is restored after it
        # starts (422); a repair order goes to an area some crew serves (422 no-crew)
        *({"include-operation-id": op,
           "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "422"]}}}
          for op in ("add_outage", "update_outage", "dispatch_repair")),
    ]
    config = SchemathesisConfig.from_dict({
        "seed": SEED, "max-failures": 50,
        "generation": {"max-examples": MAX_EXAMPLES if role == "supervisor" else 2 * MAX_EXAMPLES,
                       "deterministic": True, "database": "none"},
        "checks": {"enabled": True, **{name: {"enabled": True} for name in CHECKS}},
        "workers": 1, "request-timeout": 30,
        # the coverage phase (every boundary of every schema) once, as the supervisor; the other roles get
        # random and stateful requests: their differences are who may call what, and what they see
        "phases": {"coverage": {"enabled": role == "supervisor"}},
        "auth": {"dynamic": {"openapi": {"bearer": {
            "path": "/api/auth/login", "payload": {"agent_no": USERS[role], "password": PASSWORD},
            "extract_selector": "/token", "retry_on": [401]}}}},
        "operations": operations,
    })
    schema = schemathesis.openapi.from_url(url + "/api/openapi.json", config=config)
    sent = 0
    failures: dict[str, None] = {}
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            sent += len(event.recorder.interactions)
            if event.status == Status.FAILURE:
                for nodes in event.recorder.checks.values():
                    for node in nodes:
                        if node.failure_info is not None:
                            f = node.failure_info.failure
                            failures[f"{event.recorder.label}: {f.title}: {f.message[:400]}\n"
                                     f"{node.failure_info.code_sample}"] = None
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures[f"error: {getattr(event, 'label', '')}: {event.info.message}"] = None  # type: ignore[union-attr]
    return sent, list(failures)


@pytest.mark.parametrize("role", list(USERS))
async def test_schemathesis_finds_no_disagreement(prod: Running, role: str) -> None:
    sent, failures = await asyncio.to_thread(_run, prod.url, role)
    assert not failures, f"{len(failures)} disagreements as {role}:\n\n" + "\n\n".join(failures)
    assert sent > 200, sent  # it really ran


def _check_replies(url: str, token: str, calls: list[tuple[str, str, int, dict[str, Any]]]) -> list[str]:
    """Send each (method, path, expected status, requests kwargs); check the status and validate the
    response against the document. Returns the problems."""
    schema = schemathesis.openapi.from_url(url + "/api/openapi.json")
    problems = []
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {token}"
        for method, path, status, kwargs in calls:
            template = kwargs.pop("template", path)
            r = s.request(method, url + path, timeout=30, **kwargs)
            if r.status_code != status:
                problems.append(f"{method} {path}: {r.status_code} {r.text[:200]}")
            if template is None:  # a method the document does not list: 405 in the one error shape, with Allow
                if set(r.json()) != {"error"} or "Allow" not in r.headers:
                    problems.append(f"{method} {path}: {r.headers} {r.text[:200]}")
                continue
            try:
                schema[template][method].validate_response(r)
            except AssertionError as exc:  # schemathesis' failure groups
                problems.append(f"{method} {path}: {exc}")
    return problems


async def test_real_replies_match_the_document(prod: Running) -> None:
    now = prod.server.clock.now()
    outbound = prod.server.features.outbound
    assert outbound.service is not None and outbound.callbacks is not None  # started with the server
    await outbound.service.store.create_campaign(CampaignSpec(name="s1", kind="survey", title="回访"), now)
    await outbound.service.store.add_contacts("s1", [ContactIn("13800000001", name="张三")], now)
    cb = await outbound.callbacks.store.add(origin_call="in-1", number="13900000001", skill="billing",
                                            tier="normal", reason="abandon", customer=None, status="pending",
                                            now=now, due_ts=now + 3600, place_ts=now)
    async with aiohttp.ClientSession() as http:
        token = await prod.login(http, "2001")
        async with http.post(prod.url + "/api/workorders", headers={"Authorization": f"Bearer {token}"}, json={
                "incoming_number": "13800138000", "category": "fault_repair", "customer_name": "王小明",
                "content": "停电", "unit": "marketing"}) as r:
            assert r.status == 201, await r.text()
            wo = (await r.json())["id"]
    calls: list[tuple[str, str, int, dict[str, Any]]] = [
        ("GET", "/api/me", 200, {}), ("GET", "/api/agents", 200, {}),
        ("POST", "/api/agents/1001/state", 200, {"json": {"action": "login"},
                                                 "template": "/api/agents/{agent_no}/state"}),
        ("GET", "/api/agents/1001", 200, {"template": "/api/agents/{agent_no}"}),
        ("GET", "/api/calls", 200, {}), ("GET", "/api/wallboard", 200, {}),
        ("GET", "/api/workorders", 200, {"params": {"status": "open"}}),
        ("GET", f"/api/workorders/{wo}", 200, {"template": "/api/workorders/{wo_id}"}),
        ("POST", f"/api/workorders/{wo}/status", 200, {"json": {"status": "dispatched"},
                                                       "template": "/api/workorders/{wo_id}/status"}),
        ("POST", "/api/dispositions", 201, {"json": {"category": "inquiry", "resolved": True, "note": "ok"}}),
        ("GET", "/api/dispositions", 200, {}),
        ("GET", "/api/customers", 404, {"params": {"phone": "13800000000"}}),
        ("GET", "/api/outbound/campaigns", 200, {}),
        ("GET", "/api/outbound/campaigns/s1/results", 200, {"template": "/api/outbound/campaigns/{name}/results"}),
        ("GET", "/api/outbound/campaigns/s1/not-reached.csv", 200,
         {"template": "/api/outbound/campaigns/{name}/not-reached.csv"}),
        ("POST", "/api/outbound/campaigns/s1/start", 200, {"template": "/api/outbound/campaigns/{name}/{action}"}),
        ("POST", "/api/outbound/campaigns/s1/results", 405, {"template": None}),
        ("GET", "/api/outbound/callbacks", 200, {}),
        ("POST", f"/api/outbound/callbacks/{cb}/cancel", 200, {"template": "/api/outbound/callbacks/{id}/cancel"}),
        ("GET", "/api/reports", 200, {"params": {"from": "2026-11-23", "to": "", "by": "day,queue"}}),
        ("GET", "/api/reports", 200, {"params": {"format": "csv"}}),
        ("GET", "/healthz", 503, {}),  # no Asterisk here
        ("GET", "/metrics", 200, {}), ("GET", "/agent", 200, {}), ("GET", "/wallboard", 200, {}),
        ("GET", "/static/agent.js", 200, {"template": "/static/{name}"}),
        ("GET", "/static/desk.css", 200, {"template": "/static/{name}"}),
        ("GET", "/reports", 200, {}), ("GET", "/reports.js", 200, {}), ("GET", "/reports.css", 200, {}),
        ("GET", "/api/openapi.json", 200, {}),
        ("POST", "/api/auth/logout", 200, {}),
        ("GET", "/api/me", 401, {}),
    ]
    problems = await asyncio.to_thread(_check_replies, prod.url, token, calls)
    assert not problems, "\n".join(problems)


async def test_websocket_handshake_is_as_documented(prod: Running) -> None:
    doc = await _document(prod)
    params = {p["name"]: p["schema"]["pattern"] for p in doc["paths"]["/ws"]["get"]["parameters"]}
    assert params == WS_HANDSHAKE
    async with aiohttp.ClientSession() as http:
        token = await prod.login(http, "1001")
        auth = {"Authorization": f"Bearer {token}"}
        async with http.ws_connect(prod.url + "/ws", headers=auth) as ws:  # aiohttp's handshake matches
            await ws.send_json({"type": "hello", "last": {}})
            assert (await ws.receive_json(timeout=10))["type"] == "hello"
        good = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
        for name, bad in (("Upgrade", "h2c"), ("Connection", "keep-alive"), ("Sec-WebSocket-Version", "8"),
                          ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ== !!")):
            async with http.get(prod.url + "/ws", headers={**auth, **good, name: bad}) as r:
                assert r.status == 400 and (await r.json())["error"]["id"] == "bad-handshake", (name, r.status)
        async with http.get(prod.url + "/ws", headers=good) as r:
            assert r.status == 401


async def test_a_spec_following_logout_ends_the_session(prod: Running) -> None:
    """POST /api/auth/logout has no requestBody: sent with no body and no Content-Type, it works."""
    doc = await _document(prod)
    assert "requestBody" not in doc["paths"]["/api/auth/logout"]["post"]
    async with aiohttp.ClientSession() as http:
        token = await prod.login(http, "1001")
    reader, writer = await asyncio.open_connection("127.0.0.1", int(prod.url.rsplit(":", 1)[1]))
    writer.write(f"POST /api/auth/logout HTTP/1.1\r\nHost: {prod.url.removeprefix('http://')}\r\n"
                 f"Authorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    answer = (await reader.read()).decode()
    writer.close()
    assert answer.startswith("HTTP/1.1 200"), answer
    async with aiohttp.ClientSession() as http, http.get(prod.url + "/api/me",
                                                         headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 401


def test_a_route_without_an_operation_is_found() -> None:
    from aiohttp import web

    from ctiserver.web.openapi import Operation, Reply

    @documented(Operation(summary="documented", roles=None, replies={200: Reply("text", content_type="text/plain",
                                                                               schema={"type": "string"})}))
    async def known(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def forgotten(request: web.Request) -> web.Response:
        return web.Response(text="?")

    app = web.Application()
    app.router.add_get("/known", known)
    app.router.add_post("/forgotten", forgotten)
    with pytest.raises(UndocumentedRoute, match="POST /forgotten"):
        openapi(app.router, strict=True)
    doc = openapi(app.router)  # the running server still answers, the gap marked
    assert doc["paths"]["/forgotten"]["post"]["x-undocumented"] is True
    known_ok = doc["paths"]["/known"]["get"]["responses"]["200"]
    assert known_ok["content"] == {"text/plain": {"schema": {"type": "string"}}}


def test_text_patterns_are_what_the_validators_check() -> None:
    """The free-text rules: no C0 control but tab/newline/CR; names and contents not only spaces, where a
    space is whatever str.strip() removes (the pattern is written out, so ECMA and Python read it alike)."""
    from pydantic import ValidationError

    from ctiserver.web.schemas import CONTROLS, SPACES, Text, WorkOrderIn

    every = "".join(map(chr, range(0x110000)))
    control = set(re.findall(f"[{CONTROLS}]", every))
    assert control == {c for c in every[:32] if c not in "\t\n\r"}
    assert set(re.findall(f"[{SPACES}]", every)) - control == {c for c in every if c.isspace()} - control
    fields = {"incoming_number": "110", "category": "inquiry", "customer_name": "张三", "content": "停电"}
    for name, bad in (("customer_name", " \u3000\t"), ("content", "\n"), ("customer_name", "a\x00")):
        with pytest.raises(ValidationError):
            WorkOrderIn.model_validate({**fields, name: bad})
    assert re.fullmatch(Text(blank=False).pattern, " 张三 ") and not re.fullmatch(Text().pattern, "\x1b")
