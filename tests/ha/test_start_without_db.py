"""A node starts while PostgreSQL is away and waits for it (it used to refuse to start: the dialer's first
check of its attempts raised); with an `ha:` block it starts as a standby and leads once the database is back."""

from __future__ import annotations

import socket
from pathlib import Path

from sqlalchemy.engine import make_url

from ctiserver.app import settings
from ctiserver.app.wiring import build_server
from ctiserver.ha.lease import Role
from ctiserver.store.engine import migrate

from ..production import edit_yaml, production_config
from ..store.tcpproxy import TcpProxy

BOUND_S = 60.0


async def test_a_node_starts_with_the_database_away_and_leads_once_it_is_back(tmp_path: Path, ha_db: str) -> None:
    url = make_url(ha_db)
    await migrate(ha_db)
    async with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        await proxy.cut("refuse")
        with socket.socket() as ami:
            ami.bind(("127.0.0.1", 0))  # no Asterisk either: the AMI link keeps retrying
            cfg = production_config(tmp_path, ami.getsockname()[1])
            proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
            edit_yaml(cfg / "ctiserver.yaml", lambda d: d.update(ha={"node": "a"}) or d["database"].update(url=proxied))
            server = await build_server(cfg, settings.load_server(cfg), base_dir=tmp_path)
            await server.start()  # does not raise, does not wait for the database
            try:
                leadership = server.ha
                assert leadership.status()["role"] == "standby" and not server.features.leader.running
                await proxy.restore()
                await leadership.wait_role(Role.LEADER, BOUND_S)
                assert server.features.outbound.service is not None  # the dialer runs, its check retried
            finally:
                await server.stop()


async def test_a_single_node_starts_with_the_database_away(tmp_path: Path, ha_db: str) -> None:
    url = make_url(ha_db)
    await migrate(ha_db)
    async with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        await proxy.cut("refuse")
        with socket.socket() as ami:
            ami.bind(("127.0.0.1", 0))
            cfg = production_config(tmp_path, ami.getsockname()[1])
            proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
            edit_yaml(cfg / "ctiserver.yaml", lambda d: d["database"].update(url=proxied))
            server = await build_server(cfg, settings.load_server(cfg), base_dir=tmp_path)
            await server.start()  # the leader features start too; what needs the database retries
            try:
                assert server.features.leader.running and server.ha.status()["role"] == "leader"
            finally:
                await server.stop()
