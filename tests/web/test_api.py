"""Every API endpoint: the happy path, bad input (4xx JSON with a message), and role checks."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from ctiserver.events import Kind
from ctiserver.web.app import DESKTOP_KEY
from ctiserver.web.tables import dispositions, sessions, users, work_orders

from .conftest import PASSWORDS, START, Desk, login, make_desk

Client = TestClient[Any, Any]


async def error_of(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert set(body) == {"error"} and body["error"]["id"] and body["error"]["message"], body
    return dict(body["error"])


async def try_login(client: Client, agent_no: str) -> Any:
    return await client.post("/api/auth/login", json={"agent_no": agent_no, "password": PASSWORDS[agent_no]})


# --- auth -------------------------------------------------------------------------

async def test_login_sets_cookie_and_me_works_by_cookie_and_bearer(client: Client) -> None:
    r = await client.post("/api/auth/login", json={"agent_no": "1001", "password": PASSWORDS["1001"]})
    assert r.status == 200
    body = await r.json()
    assert body["user"] == {"agent_no": "1001", "name": "张三", "role": "agent"}
    assert "password" not in await r.text() and "argon2" not in await r.text()
    cookie = r.cookies["cti_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    me = await (await client.get("/api/me")).json()  # by cookie
    assert me["user"]["agent_no"] == "1001" and "break" in me["not_ready_reasons"]
    client.session.cookie_jar.clear()
    await error_of(await client.get("/api/me"), 401)
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status == 200


async def test_wrong_password_and_unknown_user_look_the_same(client: Client) -> None:
    a = await error_of(await client.post("/api/auth/login", json={"agent_no": "1001", "password": "nope"}), 401)
    b = await error_of(await client.post("/api/auth/login", json={"agent_no": "7777", "password": "nope"}), 401)
    assert a == b == {"id": "bad-credentials", "message": "wrong agent number or password", "details": None}


@pytest.mark.parametrize("payload, status, error_id", [
    ({"agent_no": "1001"}, 422, "invalid"),
    ({"agent_no": 1001, "password": "x"}, 422, "invalid"),
    ({"agent_no": "1001", "password": "x", "role": "admin"}, 422, "invalid"),
    ({"agent_no": "10'; DROP TABLE users;--", "password": "x"}, 422, "invalid"),
    ([1, 2, 3], 422, "invalid"),
])
async def test_login_bad_input(client: Client, desk: Desk, payload: Any, status: int, error_id: str) -> None:
    err = await error_of(await client.post("/api/auth/login", json=payload), status)
    assert err["id"] == error_id
    async with desk.engine.connect() as conn:
        assert len((await conn.execute(select(users))).all()) == 4


async def test_not_json_and_too_large_and_wrong_type(client: Client) -> None:
    r = await client.post("/api/auth/login", data=b"{not json", headers={"Content-Type": "application/json"})
    assert (await error_of(r, 400))["id"] == "bad-json"
    r = await client.post("/api/auth/login", data=b"agent_no=1001", headers={"Content-Type": "text/plain"})
    assert (await error_of(r, 415))["id"] == "unsupported-media-type"
    huge = {"agent_no": "1001", "password": "x" * 200_000}
    assert (await error_of(await client.post("/api/auth/login", json=huge), 413))["id"] == "body-too-large"
    # still serving
    assert (await try_login(client, "1001")).status == 200


async def test_validation_error_does_not_echo_input(client: Client) -> None:
    h = await login(client, "1001")
    hostile = "<script>alert(1)</script>" * 10
    r = await client.post("/api/dispositions", headers=h, json={"category": hostile, "resolved": True})
    assert hostile not in await r.text()
    await error_of(r, 422)


async def test_logout_ends_session(client: Client, desk: Desk) -> None:
    h = await login(client, "1001")
    assert (await client.post("/api/auth/logout", headers=h, json={})).status == 200
    await error_of(await client.get("/api/me", headers=h), 401)


async def test_session_expires(client: Client, desk: Desk) -> None:
    h = await login(client, "1001")
    desk.clock.jump(12 * 3600 + 1)
    assert (await error_of(await client.get("/api/me", headers=h), 401))["id"] == "unauthenticated"


async def test_tokens_stored_hashed(client: Client, desk: Desk) -> None:
    h = await login(client, "1001")
    token = h["Authorization"].split()[1]
    async with desk.engine.connect() as conn:
        stored = [r.token_hash for r in (await conn.execute(select(sessions))).all()]
        hashes = [r.password_hash for r in (await conn.execute(select(users))).all()]
    assert token not in stored and len(stored) == 1
    assert all(h.startswith("$argon2id$") for h in hashes)


async def test_login_rate_limited_per_user(client: Client, desk: Desk) -> None:
    for _ in range(5):
        await error_of(await client.post("/api/auth/login", json={"agent_no": "1002", "password": "bad"}), 401)
    r = await client.post("/api/auth/login", json={"agent_no": "1002", "password": PASSWORDS["1002"]})
    err = await error_of(r, 429)
    assert err["id"] == "rate-limited" and int(r.headers["Retry-After"]) > 0
    # another user from the same address is not locked out by one user's failures
    assert (await try_login(client, "1001")).status == 200
    desk.clock.jump(301)
    assert (await try_login(client, "1002")).status == 200


async def test_login_rate_limited_per_ip(client: Client) -> None:
    for i in range(20):  # spread over many agent numbers: the per-user limit never trips
        await error_of(await client.post("/api/auth/login", json={"agent_no": f"8{i:03d}", "password": "x"}), 401)
    r = await client.post("/api/auth/login", json={"agent_no": "1001", "password": PASSWORDS["1001"]})
    assert (await error_of(r, 429))["id"] == "rate-limited"


async def test_no_password_in_logs(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await client.post("/api/auth/login", json={"agent_no": "1001", "password": "wrong-secret-pw"})
    await login(client, "1001")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "1001" in text
    assert "wrong-secret-pw" not in text and PASSWORDS["1001"] not in text and "argon2" not in text


async def test_add_user_admin_only(client: Client) -> None:
    new = {"agent_no": "1003", "name": "赵六", "role": "agent", "password": "new-agent-pw"}
    h = await login(client, "2001")
    assert (await error_of(await client.post("/api/users", headers=h, json=new), 403))["id"] == "forbidden"
    h = await login(client, "9001")
    r = await client.post("/api/users", headers=h, json=new)
    assert r.status == 201 and (await r.json()) == {"agent_no": "1003", "name": "赵六", "role": "agent"}
    assert (await error_of(await client.post("/api/users", headers=h, json=new), 409))["id"] == "user-exists"
    short = {**new, "agent_no": "1004", "password": "short"}
    await error_of(await client.post("/api/users", headers=h, json=short), 422)
    assert (await client.post("/api/auth/login", json={"agent_no": "1003", "password": "new-agent-pw"})).status == 200


# --- agents -------------------------------------------------------------------------

async def test_agent_state_changes_with_reason(client: Client, desk: Desk) -> None:
    h = await login(client, "1001")
    url = "/api/agents/1001/state"
    assert (await (await client.post(url, headers=h, json={"action": "login"})).json())["state"] == "not_ready"
    assert (await (await client.post(url, headers=h, json={"action": "ready"})).json())["state"] == "available"
    r = await client.post(url, headers=h, json={"action": "not_ready", "reason": "lunch"})
    assert (await r.json()) == {"agent_id": "1001", "state": "not_ready", "reason": "lunch"}
    assert (await error_of(await client.post(url, headers=h, json={"action": "not_ready"}), 422))["id"] \
        == "unknown-reason"
    err = await error_of(await client.post(url, headers=h, json={"action": "not_ready", "reason": "nap"}), 422)
    assert "lunch" in err["message"]
    await error_of(await client.post(url, headers=h, json={"action": "ready", "reason": "lunch"}), 422)
    await error_of(await client.post(url, headers=h, json={"action": "dance"}), 422)
    assert (await error_of(await client.post(url, headers=h, json={"action": "login"}), 409))["id"] \
        == "acd-illegal-transition"
    assert (await (await client.get("/api/agents/1001", headers=h)).json())["state"] == "not_ready"


async def test_agent_cannot_act_for_others_or_as_supervisor(client: Client, desk: Desk) -> None:
    h = await login(client, "1001")
    await error_of(await client.post("/api/agents/1002/state", headers=h, json={"action": "login"}), 403)
    await error_of(await client.get("/api/agents/1002", headers=h), 403)
    await error_of(await client.get("/api/agents", headers=h), 403)
    await error_of(await client.get("/api/wallboard", headers=h), 403)
    assert desk.agents.states["1002"]["state"] == "logged_out"


async def test_supervisor_changes_an_agent(client: Client, desk: Desk) -> None:
    h = await login(client, "2001")
    r = await client.post("/api/agents/1002/state", headers=h, json={"action": "login"})
    assert (await r.json())["state"] == "not_ready"
    assert len(await (await client.get("/api/agents", headers=h)).json()) == 3
    assert (await error_of(await client.get("/api/agents/4242", headers=h), 404))["id"] == "unknown-agent"
    assert (await error_of(await client.get("/api/agents/..%2F..", headers=h), 404))["id"] == "unknown-agent"


# --- calls -------------------------------------------------------------------------------

def add_calls(desk: Desk) -> None:
    desk.calls.calls = {"c1": {"call_id": "c1", "agent_id": "1001", "number": "13800138000"},
                        "c2": {"call_id": "c2", "agent_id": "1002", "number": "13900000000"}}


async def test_calls_list_own_only_for_agents(client: Client, desk: Desk) -> None:
    add_calls(desk)
    h = await login(client, "1001")
    assert [c["call_id"] for c in await (await client.get("/api/calls", headers=h)).json()] == ["c1"]
    h = await login(client, "2001")
    assert len(await (await client.get("/api/calls", headers=h)).json()) == 2


async def test_transfer_hangup_escalate(client: Client, desk: Desk) -> None:
    add_calls(desk)
    h = await login(client, "1001")
    r = await client.post("/api/calls/c1/transfer", headers=h,
                          json={"target_kind": "queue", "target": "billing", "kind": "attended"})
    assert r.status == 200
    assert desk.calls.actions[-1] == ("transfer", "c1", "queue", "billing", "attended", False)
    await error_of(await client.post("/api/calls/c2/transfer", headers=h,
                                     json={"target_kind": "agent", "target": "1001"}), 403)
    await error_of(await client.post("/api/calls/c1/transfer", headers=h,
                                     json={"target_kind": "trunk", "target": "x"}), 422)
    await error_of(await client.post("/api/calls/c1/transfer", headers=h,
                                     json={"target_kind": "queue", "target": "a\r\nAction: Originate"}), 422)
    assert (await error_of(await client.post("/api/calls/nope/hangup", headers=h, json={}), 404))["id"] \
        == "unknown-call"
    r = await client.post("/api/calls/c1/escalate", headers=h, json={"note": "客户情绪激动"})
    assert (await r.json())["escalated"] is True
    assert desk.calls.actions[-1] == ("transfer", "c1", "queue", "supervisor", "attended", True)
    assert desk.hub.missed("supervisor", 0, desk.hub.epoch)[-1]["type"] == "escalation"
    assert (await client.post("/api/calls/c1/hangup", headers=h, json={})).status == 200
    assert "c1" not in desk.calls.calls
    await error_of(await client.post("/api/calls/c2/hangup", headers=h, json={}), 403)


# --- customers -------------------------------------------------------------------------------

async def test_customer_lookup(client: Client) -> None:
    h = await login(client, "1001")
    r = await client.get("/api/customers", headers=h, params={"phone": "13800138000"})
    assert (await r.json())["name"] == "王小明"
    r = await client.get("/api/customers", headers=h, params={"account": "3100012345"})
    assert (await r.json())["tier"] == "vip"
    await error_of(await client.get("/api/customers", headers=h, params={"phone": "13000000000"}), 404)
    await error_of(await client.get("/api/customers", headers=h), 400)
    await error_of(await client.get("/api/customers", headers=h, params={"phone": "1' OR 1=1"}), 400)
    await error_of(await client.get("/api/customers", headers=h, params={"name": "x"}), 400)


# --- dispositions ------------------------------------------------------------------------------

async def test_disposition_stored_and_emitted(client: Client, desk: Desk) -> None:
    h = await login(client, "1001")
    r = await client.post("/api/dispositions", headers=h, json={
        "call_id": "c1", "category": "fault_repair", "note": "停电，已报修", "resolved": False,
        "customer_account": "3100012345", "caller_number": "13800138000"})
    assert r.status == 201
    row = await r.json()
    async with desk.engine.connect() as conn:
        stored = (await conn.execute(select(dispositions))).mappings().one()
    assert stored["note"] == "停电，已报修" and stored["agent_no"] == "1001" and stored["id"] == row["id"]
    ev = desk.events[-1]
    assert ev.kind == Kind.DISPOSITION and ev.agent_id == "1001" and ev.call_id == "c1"
    assert ev.data == {"id": row["id"], "category": "fault_repair", "note": "停电，已报修", "resolved": False}
    # agents list their own only
    h2 = await login(client, "1002")
    assert await (await client.get("/api/dispositions", headers=h2)).json() == []
    assert len(await (await client.get("/api/dispositions", headers=h, params={"call_id": "c1"})).json()) == 1


@pytest.mark.parametrize("payload", [
    {"category": "inquiry"},  # resolved missing
    {"category": "inquiry", "resolved": "yes"},  # wrong type
    {"category": "gossip", "resolved": True},  # unknown category
    {"category": "inquiry", "resolved": True, "note": "x" * 2001},
    {"category": "inquiry", "resolved": True, "note": "bad\x00nul"},
    {"category": "inquiry", "resolved": True, "call_id": "../../etc"},
])
async def test_disposition_bad_input(client: Client, desk: Desk, payload: dict[str, Any]) -> None:
    h = await login(client, "1001")
    await error_of(await client.post("/api/dispositions", headers=h, json=payload), 422)
    assert desk.events == []


# --- work orders -------------------------------------------------------------------------------

WO = {"call_id": "c1", "incoming_number": "13800138000", "category": "fault_repair", "customer_name": "王小明",
      "content": "整栋楼停电", "customer_account": "3100012345"}


async def test_workorder_lifecycle(client: Client, desk: Desk) -> None:
    h = await login(client, "1001")
    r = await client.post("/api/workorders", headers=h, json=WO)
    assert r.status == 201
    wo = await r.json()
    assert wo["status"] == "open" and wo["due_ts"] == START + 24 * 3600 and wo["overdue"] is False
    assert wo["call_time"] == START and wo["created_by"] == "1001"
    url = f"/api/workorders/{wo['id']}/status"
    err = await error_of(await client.post(url, headers=h, json={"status": "closed"}), 409)
    assert "'open'" in err["message"] and "'closed'" in err["message"]
    assert (await error_of(await client.post(url, headers=h, json={"status": "dispatched"}), 422))["id"] \
        == "unit-required"
    await error_of(await client.post(url, headers=h, json={"status": "dispatched", "unit": "火星"}), 422)
    unit = "city_station"
    r = await client.post(url, headers=h, json={"status": "dispatched", "unit": unit, "note": "派单"})
    assert (await r.json())["status"] == "dispatched"
    desk.clock.jump(25 * 3600)
    h = await login(client, "1001")  # the 12 h session ran out meanwhile
    listed = await (await client.get("/api/workorders", headers=h, params={"account": "3100012345"})).json()
    assert listed[0]["overdue"] is True
    overdue = await (await client.get("/api/workorders", headers=h, params={"overdue": "true"})).json()
    assert [w["id"] for w in overdue] == [wo["id"]]
    h2 = await login(client, "2001")
    wall = await (await client.get("/api/wallboard", headers=h2)).json()
    assert wall["overdue_workorders"][0]["id"] == wo["id"] and wall["queues"][0]["queue"] == "billing"
    await client.post(url, headers=h, json={"status": "resolved", "note": "已抢修"})
    r = await client.post(url, headers=h, json={"status": "closed", "satisfaction_callback": True})
    assert (await r.json())["status"] == "closed"
    assert desk.callbacks == [{"workorder_id": wo["id"], "number": "13800138000", "category": "fault_repair",
                               "account": "3100012345", "requested": True, "anonymous": False,
                               "call_id": wo["call_id"], "agent_id": "1001"}]
    # not satisfied: a supervisor reopens it (not lost); its deadlines start again
    assert (await error_of(await client.post(url, headers=h, json={"status": "reopened", "note": "客户不满意"}),
                           403))["id"] == "forbidden"
    h = await login(client, "2001")
    assert (await error_of(await client.post(url, headers=h, json={"status": "reopened"}), 422))["id"] \
        == "note-required"
    r = await client.post(url, headers=h, json={"status": "reopened", "note": "客户不满意"})
    body = await r.json()
    assert body["status"] == "reopened" and body["reopen_count"] == 1 and body["previous_status"] == "closed"
    assert body["due_ts"] == desk.clock.now() + 24 * 3600
    full = await (await client.get(f"/api/workorders/{wo['id']}", headers=h)).json()
    assert [(x["from_status"], x["to_status"]) for x in full["history"]] == [
        (None, "open"), ("open", "dispatched"), ("dispatched", "resolved"), ("resolved", "closed"),
        ("closed", "reopened")]
    assert [e.data["action"] for e in desk.events if e.kind == Kind.WORKORDER
            and e.data["action"] not in ("reminder", "escalation")] == [
        "open", "dispatched", "resolved", "closed", "reopened"]


async def test_every_closure_goes_to_outbound_which_decides_on_the_callback(client: Client, desk: Desk) -> None:
    """Issue 12 item 15: complaints are called back whether or not the agent ticks the box, so the desktop
    tells outbound of every closure and whether it was ticked."""
    h = await login(client, "1001")
    wo = await (await client.post("/api/workorders", headers=h, json={**WO, "category": "complaint"})).json()
    url = f"/api/workorders/{wo['id']}/status"
    await client.post(url, headers=h, json={"status": "resolved"})
    assert desk.callbacks == []  # only a closure counts
    assert (await (await client.post(url, headers=h, json={"status": "closed"})).json())["status"] == "closed"
    [cb] = desk.callbacks
    assert (cb["workorder_id"], cb["category"], cb["requested"], cb["call_id"], cb["agent_id"]) == (
        wo["id"], "complaint", False, "c1", "1001")


async def test_workorder_sla_working_days(client: Client, desk: Desk) -> None:
    h = await login(client, "1001")
    friday = START + 4 * 86400  # Friday 09:00
    r = await client.post("/api/workorders", headers=h, json={**WO, "category": "inquiry", "call_time": friday})
    await error_of(r, 422)  # in the future for the clock
    desk.clock.set(friday + 60)
    h = await login(client, "1001")
    r = await client.post("/api/workorders", headers=h, json={**WO, "category": "inquiry", "call_time": friday})
    body = await r.json()  # an ordinary order: a reminder after 2 working days, due after 2+1
    assert (body["warn_ts"], body["due_ts"]) == (friday + 4 * 86400, friday + 5 * 86400)  # Tue, Wed 09:00
    r = await client.post("/api/workorders", headers=h, json={**WO, "category": "complaint"})
    assert (await r.json())["due_ts"] == desk.clock.now() + 48 * 3600
    r = await client.post("/api/workorders", headers=h, json={**WO, "category": "emergency"})
    assert (await error_of(r, 422))["id"] == "no-sla-for-category"


async def test_anonymous_complaint_identity_masked_for_agents(client: Client, desk: Desk) -> None:
    h = await login(client, "1001")
    r = await client.post("/api/workorders", headers=h, json={**WO, "category": "complaint", "anonymous": True})
    wo = await r.json()
    assert wo["customer_name"] == "匿名 anonymous" and wo["incoming_number"] == "***"
    got = await (await client.get(f"/api/workorders/{wo['id']}", headers=h)).json()
    assert "王小明" not in str(got) and "13800138000" not in str(got)
    by_number = await (await client.get("/api/workorders", headers=h, params={"number": "13800138000"})).json()
    assert [w["incoming_number"] for w in by_number] == ["***"]  # the agent who took it: masked
    h2 = await login(client, "1002")
    by_number = await (await client.get("/api/workorders", headers=h2, params={"number": "13800138000"})).json()
    assert by_number == []  # any other agent: not there at all
    hs = await login(client, "2001")
    got = await (await client.get(f"/api/workorders/{wo['id']}", headers=hs)).json()
    assert got["customer_name"] == "王小明" and got["incoming_number"] == "13800138000"
    async with desk.engine.connect() as conn:  # the five key fields are stored in full
        row = (await conn.execute(select(work_orders))).mappings().one()
    assert (row["incoming_number"], row["category"], row["customer_name"], row["content"]) == (
        "13800138000", "complaint", "王小明", "整栋楼停电") and row["call_time"] == START


@pytest.mark.parametrize("payload", [
    {k: v for k, v in WO.items() if k != "customer_name"},
    {k: v for k, v in WO.items() if k != "content"},
    {**WO, "incoming_number": "call me"},
    {**WO, "call_time": "yesterday"},
    {**WO, "call_time": -5},
    {**WO, "content": ""},
    {**WO, "status": "closed"},
    {**WO, "anonymous": "true"},
])
async def test_workorder_bad_input(client: Client, desk: Desk, payload: dict[str, Any]) -> None:
    h = await login(client, "1001")
    await error_of(await client.post("/api/workorders", headers=h, json=payload), 422)
    async with desk.engine.connect() as conn:
        assert (await conn.execute(select(work_orders))).all() == []


async def test_workorder_unknown_ids_and_queries(client: Client) -> None:
    h = await login(client, "1001")
    assert (await error_of(await client.get("/api/workorders/999", headers=h), 404))["id"] == "unknown-workorder"
    await error_of(await client.get("/api/workorders/abc", headers=h), 404)
    await error_of(await client.get("/api/workorders/99999999999999999999999", headers=h), 404)
    await error_of(await client.post("/api/workorders/999/status", headers=h, json={"status": "closed"}), 404)
    await error_of(await client.get("/api/workorders", headers=h), 400)
    await error_of(await client.get("/api/workorders", headers=h, params={"status": "lost"}), 400)
    await error_of(await client.get("/api/workorders", headers=h, params={"account": "x", "limit": "9999"}), 400)
    r = await client.post("/api/workorders", headers=h, json=WO)
    wo = await r.json()
    await error_of(await client.post(f"/api/workorders/{wo['id']}/status", headers=h,
                                     json={"status": "resolved", "satisfaction_callback": True}), 422)


async def test_callback_unavailable_without_dialer(tmp_path: Any) -> None:
    desk = await make_desk(tmp_path)
    desk.app[DESKTOP_KEY].request_callback = None
    c: Client = TestClient(TestServer(desk.app))
    await c.start_server()
    try:
        h = await login(c, "1001")
        wo = await (await c.post("/api/workorders", headers=h, json={**WO, "category": "inquiry"})).json()
        url = f"/api/workorders/{wo['id']}/status"
        await c.post(url, headers=h, json={"status": "resolved"})
        err = await error_of(await c.post(url, headers=h, json={"status": "closed", "satisfaction_callback": True}),
                             409)
        assert err["id"] == "callbacks-unavailable"
        assert (await (await c.get(f"/api/workorders/{wo['id']}", headers=h)).json())["status"] == "resolved"
    finally:
        await c.close()
        await desk.engine.dispose()


# --- meta ---------------------------------------------------------------------------------------

async def test_openapi_documents_every_route(client: Client, desk: Desk) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = set()
    for res in desk.app.router.resources():  # every route of the app, the pages and /ws too (issue 19)
        info = res.get_info()
        path = info.get("path") or info.get("formatter")
        for route in res:
            if route.method != "HEAD":
                served.add((route.method, path))
    assert {("GET", "/ws"), ("GET", "/api/me")} <= served and documented == served
    assert doc["paths"]["/api/workorders"]["post"]["requestBody"]
    assert "WorkOrderIn" in doc["components"]["schemas"]
    props = doc["components"]["schemas"]["WorkOrderIn"]["properties"]
    assert {"incoming_number", "call_time", "category", "customer_name", "content"} <= set(props)


async def test_unknown_route_and_method_are_json(client: Client) -> None:
    assert (await error_of(await client.get("/api/nothing"), 404))["id"] == "not-found"
    assert (await error_of(await client.delete("/api/me"), 405))["id"] == "method-not-allowed"


async def test_unauthenticated_everywhere(client: Client, desk: Desk) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if op.get("security") == []:
                continue
            url = re.sub(r"\{[^}]+\}", "1", path.replace("{agent_no}", "1001").replace("{call_id}", "c1"))
            r = await client.request(method.upper(), url, json={})
            assert (await error_of(r, 401))["id"] == "unauthenticated", (method, path)


async def test_pages_and_static_files(client: Client) -> None:
    r = await client.get("/agent")
    assert r.status == 200 and "坐席工作台" in await r.text()
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert (await client.get("/wallboard")).status == 200
    assert (await client.get("/static/desk.css")).status == 200
    for bad in ["/static/..%2Fapi.py", "/static/agent.html", "/static/.hidden.js", "/static/nope.js"]:
        assert (await error_of(await client.get(bad), 404))["id"] == "not-found", bad
    text = "".join([await (await client.get(p)).text() for p in
                    ("/agent", "/wallboard", "/static/agent.js", "/static/common.js", "/static/wallboard.js")])
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")  # no CDN, nothing off-site


async def test_a_failing_port_is_a_json_500_and_the_server_keeps_serving(client: Client, desk: Desk,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    add_calls(desk)

    async def broken(call_id: str) -> None:
        raise RuntimeError("AMI link down")

    desk.calls.hangup = broken  # type: ignore[method-assign]
    h = await login(client, "1001")
    err = await error_of(await client.post("/api/calls/c1/hangup", headers=h, json={}), 500)
    assert err["id"] == "internal" and "AMI" not in err["message"]  # details go to the log, not the browser
    assert "AMI link down" in caplog.text
    assert (await client.get("/api/calls", headers=h)).status == 200


async def test_logout_below_minimum_staffing_warns_supervisors(tmp_path: Any) -> None:
    from ctiserver.web.config import DesktopConfig

    desk = await make_desk(tmp_path, config=DesktopConfig(min_logged_in=2))
    c: Client = TestClient(TestServer(desk.app))
    await c.start_server()
    try:
        for agent in ("1001", "1002"):
            h = await login(c, agent)
            await c.post(f"/api/agents/{agent}/state", headers=h, json={"action": "login"})
        r = await c.post("/api/agents/1002/state", headers=h, json={"action": "logout"})
        assert (await r.json())["state"] == "logged_out"
        warnings = [m for m in desk.hub.missed("supervisor", 0, desk.hub.epoch) if m["type"] == "staffing_warning"]
        assert [w["data"] for w in warnings] == [{"agent_id": "1002", "logged_in": 1, "minimum": 2}]
    finally:
        await c.close()
        await desk.engine.dispose()


async def test_me_gives_the_names_people_see_and_whether_they_are_an_acd_agent(client: Client) -> None:
    me = await (await client.get("/api/me", headers=await login(client, "1001"))).json()
    assert me["acd_agent"] is True
    assert me["not_ready_reasons"]["lunch"] == {"zh": "用餐", "en": "Lunch"}
    assert me["reasons"]["rona"] == {"zh": "未接来电", "en": "Missed a call"}  # the ACD's own reasons too
    assert "rona" not in me["not_ready_reasons"]  # ...which nobody picks
    assert me["queues"]["fault"] == {"zh": "故障报修", "en": "Fault reports"} and me["tiers"]["vip"]["en"] == "VIP"
    assert me["units"]["city_station"] == {"zh": "城区供电所", "en": "City supply station"}
    admin = await (await client.get("/api/me", headers=await login(client, "9001"))).json()
    assert admin["acd_agent"] is False  # a login without an ACD seat: the desktop shows no agent controls
