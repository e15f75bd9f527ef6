"""High availability in the wiring (docs/ha.md): how the election reaches the server's features.

    no `ha:` block ─▶ SoloLeadership: the leader group is a plain feature of the server, always on, nothing claimed
    `ha:` block    ─▶ Leadership (ctiserver/ha/node.py) runs the leader group while this node holds the lease:
        the ACD's rings, the dialer's attempts, the callbacks' agent legs ─▶ claimed under the epoch (fencing)
        the call trackers' events ─▶ recorded by the leader only (every node's tracker follows the same Asterisk)
        the IVR route ─▶ the takeover gate (ctiserver/ha/takeover.py): standbys refuse new callers, keep
                         resuming ones; a new term resumes the waiting callers in their order
        writes the ACD or the dialer must make ─▶ 503 `not-leader` on a standby, with the leader's address
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from ..agi.channel import AgiHandler
from ..ha.node import Leadership, SoloLeadership
from ..ha.pg import PgLease
from ..ha.takeover import Takeover
from ..lifecycle import Feature, FeatureGroup
from ..store.engine import make_engine
from ..web.errors import ApiError
from .server import CtiServer

log = logging.getLogger(__name__)

# What only the leader can do (the ACD's agents, queue and calls; campaigns and callbacks): a standby says 503.
LEADER_ONLY = ("/api/agents/", "/api/queue/", "/api/calls/", "/api/outbound/")
READS = frozenset({"GET", "HEAD", "OPTIONS"})


def standby_guard(leadership: Leadership) -> Any:
    """Middleware: a write that must go to the leader is answered 503 `not-leader`, naming the leader."""

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method not in READS and request.path.startswith(LEADER_ONLY) and not leadership.leading():
            st = leadership.status()
            leader, address = st.get("leader"), st.get("leader_address") or ""
            where = (f"send it to the leader, {leader} at {address}" if leader and address else
                     f"send it to the leader, {leader}" if leader else
                     "no node leads at this moment (a takeover takes a few seconds): try again")
            raise ApiError(503, "not-leader", f"this node ({st.get('node')}) is a standby: {where}",
                           details=[{"leader": leader, "address": address, "epoch": st.get("epoch")}],
                           headers={"Retry-After": "1"})
        return await handler(request)

    return guard


def install_ha(server: CtiServer, leader: FeatureGroup, *, acd: Any, outbound: Any,
               ivr: AgiHandler) -> tuple[Feature, AgiHandler]:
    """The feature that runs the leader group, and the IVR's AGI route, for this node's configuration."""
    cfg = server.cfg.ha
    if cfg is None:
        server.ha = SoloLeadership()
        return leader, ivr
    def address() -> str:  # the port the HTTP listener got (port 0: the OS picks it) once it listens
        return cfg.address or f"http://{server.cfg.http.host}:{server.http_port or server.cfg.http.port}"

    # its own small pool with short timeouts: a renewal must not queue behind the event store's batches
    engine = make_engine(server.db_url, connect_timeout_s=min(2.0, cfg.lease_ttl_s / 2),
                         statement_timeout_s=cfg.lease_ttl_s, pool_size=2)
    leadership = Leadership(cfg, PgLease(engine, cfg.node, address, cfg.lease_ttl_s), leader)
    server.ha = leadership
    server.recording = leadership.leading

    async def claim_action(kind: str, key: str) -> None:
        async with engine.begin() as conn:
            await leadership.claim(conn, kind, key)

    def claim_ring(kind: str, key: str) -> Awaitable[None]:  # the ACD counts its rings per process: + the epoch
        return claim_action(kind, f"{key}@{leadership.epoch}")

    acd.claim = claim_ring
    acd.release_on_stop = True  # a node that stops leading hands its waiting callers on (CTI_RESUME)
    outbound.claim_attempt = leadership.claim
    outbound.claim_action = claim_action
    takeover = Takeover(leadership, lambda: leader.running, acd, lambda: server.store.engine, server.clock.now,
                        server.emit, live_calls=lambda: _live_calls(server), resynced=server.resync_afresh,
                        park_s=2 * cfg.lease_ttl_s + 2.0)
    leader.add("takeover", takeover.term)
    server.http_app.middlewares.append(standby_guard(leadership))

    @asynccontextmanager
    async def running() -> AsyncIterator[Leadership]:
        try:
            async with leadership():
                yield leadership
        finally:
            await engine.dispose()

    return running, takeover.gate(ivr, resumable=True)


def _live_calls(server: CtiServer) -> set[str]:
    return {call_id for tracker in server.trackers.values() for call_id in tracker.calls}

