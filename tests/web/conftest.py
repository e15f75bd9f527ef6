"""A desktop app on a migrated SQLite file, fake ports, a fake clock, and four users."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.clock import FakeClock
from ctiserver.events import Event
from ctiserver.outages.http import add_outage_routes
from ctiserver.outages.model import load_outages_config
from ctiserver.outages.service import OutageService
from ctiserver.outages.store import OutageStore
from ctiserver.store.engine import make_engine, migrate
from ctiserver.web.app import DESKTOP_KEY, create_desktop_app
from ctiserver.web.config import DesktopConfig
from ctiserver.web.tables import users
from ctiserver.web.ws import Hub

from .fakes import FakeAgents, FakeCalls, FakeCustomers, FakeWallboard

# Monday 2026-11-23 09:00 in Shanghai
REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"
START = dt.datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
# display names of the fake ACD's queues and tiers (acd.yaml `names`)
NAMES = {"queues": {"billing": {"zh": "电费查询", "en": "Billing"}, "fault": {"zh": "故障报修", "en": "Fault reports"},
                    "english": {"zh": "英语服务", "en": "English desk"}},
         "tiers": {"vip": {"zh": "VIP大客户", "en": "VIP"}, "normal": {"zh": "普通客户", "en": "Normal"}}}
PASSWORDS = {"1001": "agent-one-pw", "1002": "agent-two-pw", "2001": "super-visor-pw", "9001": "admin-admin-pw"}


@functools.cache
def _hash(password: str) -> str:
    """argon2 is slow on purpose: hash each test password once per run, not once per test."""
    return PasswordHasher().hash(password)


@dataclass
class Desk:
    app: web.Application
    hub: Hub
    engine: AsyncEngine
    url: str
    clock: FakeClock
    agents: FakeAgents
    calls: FakeCalls
    wallboard: FakeWallboard
    customers: FakeCustomers
    events: list[Event] = field(default_factory=list)
    callbacks: list[dict[str, Any]] = field(default_factory=list)


async def make_desk(tmp_path: Path, config: DesktopConfig | None = None, clock: FakeClock | None = None,
                    url: str | None = None) -> Desk:
    url = url or f"sqlite+aiosqlite:///{tmp_path / 'desk.db'}"
    await migrate(url)
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(insert(users), [
            {"agent_no": no, "name": name, "role": role, "password_hash": _hash(PASSWORDS[no]), "active": True,
             "created_ts": START}
            for no, name, role in [("1001", "张三", "agent"), ("1002", "李四", "agent"),
                                   ("2001", "王班长", "supervisor"), ("9001", "Admin", "admin")]])
    clock = clock or FakeClock(START)
    agents = FakeAgents(["1001", "1002", "2001"], names={"1001": "张三", "1002": "李四", "2001": "王班长"})
    calls, wallboard, customers = FakeCalls(), FakeWallboard(), FakeCustomers()
    events: list[Event] = []
    callbacks: list[dict[str, Any]] = []

    async def request_callback(**kw: Any) -> None:  # the outbound side's door (recorded before the answer)
        callbacks.append(kw)

    app, hub = create_desktop_app(engine=engine, agents=agents, calls=calls, wallboard=wallboard,
                                  customers=customers, emit=events.append, config=config or DesktopConfig(),
                                  clock=clock, request_callback=request_callback, names=NAMES)
    # the outage list the desktop's work-order form reads, mounted as the server mounts it (app/loop.py)
    outages = OutageService(OutageStore(engine), load_outages_config(REPO_CONFIG), clock, emit=events.append)
    sessions = app[DESKTOP_KEY].sessions
    add_outage_routes(app, lambda: outages, lambda request, roles: sessions.require(request, roles))
    return Desk(app, hub, engine, url, clock, agents, calls, wallboard, customers, events, callbacks)


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    d = await make_desk(tmp_path)
    yield d
    await d.engine.dispose()


@pytest.fixture
async def client(desk: Desk) -> AsyncIterator[TestClient[Any, Any]]:
    c: TestClient[Any, Any] = TestClient(TestServer(desk.app))
    await c.start_server()
    yield c
    await c.close()


async def login(client: TestClient[Any, Any], agent_no: str) -> dict[str, str]:
    """Log in and return headers with the bearer token."""
    r = await client.post("/api/auth/login", json={"agent_no": agent_no, "password": PASSWORDS[agent_no]})
    assert r.status == 200, await r.text()
    token = (await r.json())["token"]
    return {"Authorization": f"Bearer {token}"}
