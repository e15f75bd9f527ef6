"""Password guessing against the server as production builds it, over real sockets from several addresses.

The whole 127.0.0.0/8 block is this machine, so a client bound to 127.0.0.2 is "another address".
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from ctiserver.web.auth import LoginThrottle
from ctiserver.web.config import RateLimit
from tests.production import PASSWORD, edit_yaml, production_server


def from_address(address: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0), force_close=True))


async def try_login(http: aiohttp.ClientSession, url: str, password: str, agent_no: str = "1001") -> int:
    async with http.post(f"{url}/api/auth/login", json={"agent_no": agent_no, "password": password}) as r:
        await r.read()
        return r.status


async def test_forty_parallel_guesses_for_one_agent_check_only_five(tmp_path: Path) -> None:
    async with production_server(tmp_path) as prod:
        await prod.add_user("1001")
        async with from_address("127.0.0.2") as http:
            statuses = await asyncio.gather(*(try_login(http, prod.url, f"guess-{i}") for i in range(40)))
        assert Counter(statuses) == {401: 5, 429: 35}  # counted before the check: the limit held


async def test_guesses_from_elsewhere_do_not_lock_the_agent_out_at_their_desk(tmp_path: Path) -> None:
    def small_ceiling(cfg: Path) -> None:
        def change(d: dict[str, Any]) -> None:
            d["login_per_user_all_addresses"] = {"max_failures": 12, "window_s": 3600}
        edit_yaml(cfg / "desktop.yaml", change)

    async with production_server(tmp_path, small_ceiling) as prod:
        await prod.add_user("1001")
        async with from_address("127.0.0.1") as desk:
            assert await try_login(desk, prod.url, PASSWORD) == 200  # the agent's own desk
            async with from_address("127.0.0.2") as attacker:
                assert [await try_login(attacker, prod.url, "guess") for _ in range(6)] == [401] * 5 + [429]
            assert await try_login(desk, prod.url, PASSWORD) == 200  # 5 guesses elsewhere lock nobody out
            # guessing spread over addresses (5 each) meets the per-agent ceiling (12) ...
            spread = []
            for host in ("127.0.0.3", "127.0.0.4", "127.0.0.5"):
                async with from_address(host) as attacker:
                    spread += [await try_login(attacker, prod.url, "guess") for _ in range(5)]
            assert spread == [401] * 5 + [401] * 2 + [429] * 3 + [429] * 5
            async with from_address("127.0.0.6") as stranger:  # even with the right password, from a new place
                assert await try_login(stranger, prod.url, PASSWORD) == 429
            # ... but the desk the agent logged in from before is exempt from it
            assert await try_login(desk, prod.url, PASSWORD) == 200
            # a typo at the desk counts at the desk only
            assert await try_login(desk, prod.url, "typo") == 401
            assert await try_login(desk, prod.url, PASSWORD) == 200


def test_the_throttle_core_windows_and_trust() -> None:
    t = LoginThrottle(RateLimit(max_failures=2, window_s=60), RateLimit(max_failures=10, window_s=60),
                      RateLimit(max_failures=3, window_s=600), trust_s=3600)
    t.succeeded(t.begin("1001", "desk", 0.0), 0.0)  # logged in at the desk: nothing counted, desk trusted
    assert t.begin("1001", "a", 1.0).wait == 0 and t.begin("1001", "a", 2.0).wait == 0
    assert t.begin("1001", "a", 3.0).wait == 58  # the pair's limit: its failure at 1.0 leaves at 61.0
    assert t.begin("1001", "b", 3.0).wait == 0
    assert t.begin("1001", "c", 4.0).wait == 597  # the agent's ceiling: 3 counted, the first leaves at 601
    assert t.begin("1001", "desk", 4.0).wait == 0  # the desk is exempt from the ceiling
    assert t.begin("1001", "c", 601.5).wait == 0  # the failure at 1.0 left the window
    for address in ("x", "y", "z"):  # the ceiling full again, an hour later
        assert t.begin("1001", address, 3601.0).wait == 0
    assert t.begin("1001", "desk", 3602.0).wait > 0  # the desk's trust lasts trust_s
