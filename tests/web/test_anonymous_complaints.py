"""Anonymous complaints stay anonymous: the server as production builds it, over real sockets.

An agent who did not take an anonymous complaint must not find it by searching work orders
(by account, number or status), by opening it by id, in the customer record, or in the screen-pop
history when the complainant calls again. The agent who took it and supervisors still see it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import insert

from ctiserver.customers.data import customer_phones, customers
from ctiserver.events import Event, Kind
from ctiserver.web.app import BRIDGE_KEY, DESKTOP_KEY
from tests.production import Running, production_server

ACCOUNT, PHONE = "9100000009", "13800000009"
COMPLAINT = {"call_id": "call-anon", "incoming_number": PHONE, "category": "complaint", "customer_name": "赵敏",
             "content": "抄表员态度恶劣 the meter reader was rude", "customer_account": ACCOUNT, "anonymous": True}
FAULT = {"call_id": "call-fault", "incoming_number": PHONE, "category": "fault_repair", "customer_name": "赵敏",
         "content": "家里停电 no power at home", "customer_account": ACCOUNT}


def session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def get(http: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, Any]:
    async with http.get(url, params=params) as r:
        return r.status, await r.json()


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
    async with http.post(url, json=body) as r:
        assert r.status in (200, 201), await r.text()
        return await r.json()


async def pop_for(prod: Running, http: aiohttp.ClientSession, agent_no: str) -> dict[str, Any]:
    """The complainant calls again and the call is offered to `agent_no`: the pop their desktop gets."""
    now = prod.server.clock.now()
    prod.server.emit(Event(kind=Kind.ACD_ENQUEUE, ts=now, call_id="call-again", queue="billing",
                           data={"caller": PHONE, "customer": ACCOUNT}))
    prod.server.emit(Event(kind=Kind.ACD_OFFER, ts=now, call_id="call-again", agent_id=agent_no, queue="billing"))
    await prod.server.http_app[BRIDGE_KEY].drain()
    async with http.ws_connect(prod.url.replace("http", "ws") + "/ws") as ws:
        await ws.send_str(json.dumps({"type": "hello", "epoch": None, "last": {}}))
        async for msg in ws:
            body = json.loads(msg.data)
            if body.get("type") == "snapshot":
                return dict(body["data"]["pop"])
    raise AssertionError("no snapshot")


def history_text(record: dict[str, Any]) -> str:
    """The record's history as text, a work order as `#<id>` (the page shows it so)."""
    return json.dumps([{**h, "workorder": f"#{h['workorder']}"} if "workorder" in h else h
                       for h in record["history"]], ensure_ascii=False)


async def test_an_anonymous_complaint_is_found_by_nobody_but_its_agent_and_supervisors(tmp_path: Path) -> None:
    async with production_server(tmp_path) as prod:
        for agent_no, role in (("1001", "agent"), ("1002", "agent"), ("2001", "supervisor")):
            await prod.add_user(agent_no, role)
        async with prod.server.http_app[DESKTOP_KEY].engine.begin() as conn:
            await conn.execute(insert(customers).values(account=ACCOUNT, name="赵敏", tier="normal", area="城东区",
                                                        category="residential", arrears=0, important=False))
            await conn.execute(insert(customer_phones).values(phone=PHONE, account=ACCOUNT))
        api = prod.url + "/api"
        async with session() as taker, session() as other, session() as boss:
            await prod.login(taker, "1001")
            await prod.login(other, "1002")
            await prod.login(boss, "2001")
            anon = await post(taker, api + "/workorders", COMPLAINT)
            await post(taker, api + "/dispositions", {"call_id": "call-anon", "category": "complaint",
                                                      "note": "匿名投诉抄表员 anonymous complaint", "resolved": False,
                                                      "customer_account": ACCOUNT, "caller_number": PHONE})
            fault = await post(taker, api + "/workorders", FAULT)
            await post(taker, api + "/dispositions", {"call_id": "call-fault", "category": "fault_repair",
                                                      "note": "报修 fault reported", "resolved": False,
                                                      "customer_account": ACCOUNT, "caller_number": PHONE})

            # another agent: every search finds the fault order, none the complaint
            for params in ({"account": ACCOUNT}, {"number": PHONE}, {"status": "open"}):
                status, rows = await get(other, api + "/workorders", **params)
                assert status == 200 and [r["id"] for r in rows] == [fault["id"]], params
            assert (await get(other, f"{api}/workorders/{anon['id']}"))[0] == 404
            async with other.post(f"{api}/workorders/{anon['id']}/status", json={"status": "resolved"}) as r:
                assert r.status == 404
            for params in ({"account": ACCOUNT}, {"phone": PHONE}):
                status, record = await get(other, api + "/customers", **params)
                assert status == 200 and f"#{fault['id']}" in history_text(record)
                assert f"#{anon['id']}" not in history_text(record) and "匿名投诉" not in history_text(record)
            pop = await pop_for(prod, other, "1002")
            assert pop["customer"]["account"] == ACCOUNT and f"#{fault['id']}" in history_text(pop["customer"])
            assert f"#{anon['id']}" not in history_text(pop["customer"])
            assert "匿名投诉" not in history_text(pop["customer"])

            # the agent who took it finds it (masked), a supervisor finds it with the identity
            status, rows = await get(taker, api + "/workorders", account=ACCOUNT)
            assert {r["id"] for r in rows} == {anon["id"], fault["id"]}
            assert next(r for r in rows if r["id"] == anon["id"])["incoming_number"] == "***"
            status, rows = await get(boss, api + "/workorders", number=PHONE)
            assert next(r for r in rows if r["id"] == anon["id"])["customer_name"] == "赵敏"
            assert (await get(boss, f"{api}/workorders/{anon['id']}"))[0] == 200
