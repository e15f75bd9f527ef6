"""SMS through a real Kannel (bearerbox + smsbox) with Kannel's fakesmsc as the SMSC.

A message arrives at the SMSC with the right Chinese text (UCS-2; a long one in concatenated parts),
the delivery report comes back through the dlr-url to our HTTP route and settles the message, and a
Kannel that is down makes messages wait and go once it is back: none lost, none twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from ctiserver.clock import SystemClock
from ctiserver.outbound.model import TimeRange
from ctiserver.sms.engine import SendRules, State
from ctiserver.sms.http import add_sms_routes
from ctiserver.sms.kannel import KannelGateway
from ctiserver.sms.model import load_sms_config
from ctiserver.sms.service import SmsRequest, SmsService
from ctiserver.sms.store import SmsStore
from ctiserver.store.engine import make_engine
from ctiserver.web.errors import json_errors
from tests.sms.kannel_rig import PASSWORD, USER, KannelRig

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.kannel


@dataclass
class Env:
    rig: KannelRig
    svc: SmsService
    store: SmsStore

    async def states(self, ids: list[int]) -> list[str]:
        rows = [await self.store.get(i) for i in ids]
        return [r.msg.state if r else "missing" for r in rows]

    async def wait_states(self, ids: list[int], state: str) -> None:
        async def check() -> bool:
            return all(s == state for s in await self.states(ids))
        await self.svc.wait_for(check)


async def _env(tmp_path: Path, *, start_kannel: bool) -> AsyncIterator[Env]:
    rig = KannelRig(tmp_path / "kannel")
    base = load_sms_config(REPO / "config")
    gateway = base.gateway.model_copy(update={
        "sendsms_url": rig.sendsms_url, "username": USER, "password": PASSWORD, "password_env": None,
        "callback_base": f"http://127.0.0.1:{rig.ports.http}"})
    cfg = base.model_copy(update={"gateway": gateway, "poll_s": 0.5,
                                  "retry": base.retry.model_copy(update={"gateway_down_s": 0.3})})
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'sms.db'}")
    store = SmsStore(engine)
    await store.create_tables()
    rules = SendRules(calendar=cfg.calendar, windows=(TimeRange(0, 1440),), days="any")  # any time of day
    svc = SmsService(cfg, store, KannelGateway(cfg.gateway), SystemClock(), rules)
    app = web.Application(middlewares=[json_errors])

    async def anyone(request: web.Request, roles: frozenset[str]) -> None:
        return None

    add_sms_routes(app, lambda: svc, anyone)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", rig.ports.http)
    await site.start()
    try:
        if start_kannel:
            await rig.start()
        async with svc.running():
            yield Env(rig, svc, store)
    finally:
        await rig.stop()
        await runner.cleanup()
        await engine.dispose()


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async for e in _env(tmp_path, start_kannel=True):
        yield e


@pytest.fixture
async def env_down(tmp_path: Path) -> AsyncIterator[Env]:
    async for e in _env(tmp_path, start_kannel=False):
        yield e


def outage(number: str, name: str = "张先生", reason: str = "线路检修") -> SmsRequest:
    return SmsRequest("outage_notice", number, {"name": name, "area": "城东新村", "start": "12月10日08:00",
                                                "end": "12月10日17:00", "reason": reason},
                      account="3100012345", area="城东", ref="outage:1")


async def test_chinese_message_reaches_the_smsc_and_its_report_settles_it(env: Env) -> None:
    msg_id = await env.svc.send(outage("138-0000-0001"))
    got = await env.rig.wait_received(1)
    row = await env.store.get(msg_id)
    assert row is not None
    assert row.text == ("【国网95598】张先生您好，因线路检修，城东新村将于12月10日08:00至12月10日17:00停电，"
                        "请提前做好准备。")
    assert [(g.sender, g.to, g.text, g.parts) for g in got] == [("95598", "13800000001", row.text, 1)]
    await env.wait_states([msg_id], State.DELIVERED)  # the fake SMSC's report came back through dlr-url
    done = await env.store.get(msg_id)
    assert done is not None and done.msg.attempts == 1 and done.msg.error == ""


async def test_a_long_message_goes_in_concatenated_parts(env: Env) -> None:
    reason = "10千伏城东线12号杆至35号杆导线更换及配套设备检修，施工期间为保障人身安全需对沿线用户停电" * 2
    msg_id = await env.svc.send(outage("13800000002", reason=reason))
    row = await env.store.get(msg_id)
    assert row is not None and row.parts == 3
    got = await env.rig.wait_received(1)
    assert [(g.text, g.parts) for g in got] == [(row.text, 3)]
    await env.wait_states([msg_id], State.DELIVERED)


async def test_kannel_down_messages_wait_and_go_when_it_is_back_none_lost(env_down: Env) -> None:
    env = env_down
    ids = [await env.svc.send(outage(f"1390000000{i}", name=f"客户{i}")) for i in range(3)]
    first = env.svc.rounds

    async def tried_twice() -> bool:
        return env.svc.rounds >= first + 2
    await env.svc.wait_for(tried_twice)
    rows = [await env.store.get(i) for i in ids]
    assert all(r is not None and r.msg.state == State.QUEUED and r.msg.attempts == 0 for r in rows), rows
    assert rows[0] is not None and "Connect" in rows[0].msg.error  # the rest waited behind it
    await env.rig.start()
    got = await env.rig.wait_received(3)
    await env.wait_states(ids, State.DELIVERED)
    texts = {r.text for r in rows if r is not None}
    assert sorted(g.text for g in got) == sorted(texts) and len(got) == 3
    assert all(r is not None and r.msg.attempts == 1 for r in [await env.store.get(i) for i in ids])


async def test_a_forged_or_unknown_report_changes_nothing(env: Env) -> None:
    import aiohttp

    msg_id = await env.svc.send(outage("13800000003"))
    await env.rig.wait_received(1)
    url = f"http://127.0.0.1:{env.rig.ports.http}/api/sms/dlr"
    async with aiohttp.ClientSession() as http:
        async with http.get(url, params={"id": str(msg_id), "t": "0" * 16, "s": "2"}) as resp:
            assert resp.status == 404 and (await resp.json())["error"]["id"] == "unknown_message"
        async with http.get(url, params={"id": "x", "t": "0" * 16, "s": "2"}) as resp:
            assert resp.status == 400 and (await resp.json())["error"]["id"] == "bad-query"
    await env.wait_states([msg_id], State.DELIVERED)
