"""High availability in the wiring (docs/ha.md): how the election reaches the server's features.

    no `ha:` block ─▶ SoloLeadership: the leader group is a plain feature of the server, always on, nothing claimed
    `ha:` block    ─▶ Leadership (ctiserver/ha/node.py) runs the leader group while this node holds the lease:
        the ACD's rings, the dialer's attempts, the callbacks' agent legs ─▶ claimed under the epoch (fencing)
        the call trackers' events ─▶ recorded by the leader only (every node's tracker follows the same Asterisk)
        the IVR route ─▶ the takeover gate (ctiserver/ha/takeover.py): standbys refuse new callers, keep
                         resuming ones; a new term resumes the waiting callers in their order
        writes the ACD or the dialer must make ─▶ 503 `not-leader` on a standby, with the leader's address

The wiring builds the `election()` before anything else, so that its leadership and claims are constructor
arguments of the server and the features; `install_takeover` adds what needs the built ACD.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..agi.channel import AgiHandler
from ..config import ServerConfig
from ..fencing import NO_CLAIMS, Claims
from ..ha.claims import LeaderClaims
from ..ha.node import Leader, Leadership, SoloLeadership
from ..ha.pg import PgLease
from ..ha.prune import ClaimsPruner
from ..ha.takeover import Takeover
from ..ha.wallboard import Board, WallboardMirror
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


@dataclass(frozen=True)
class Election:
    """This node's part in the election, built before the features that take its claims.

    `leadership` goes to the server (/healthz, what its call trackers record), `claims` to the ACD, the
    dialer and the callbacks (their constructor arguments), `release_on_stop` to the ACD; `feature` runs
    the leader group (a single node: the group itself; HA: the election that starts and stops it)."""

    leadership: Leader
    claims: Claims
    feature: Feature
    release_on_stop: bool  # a node that stops leading hands its waiting callers on (CTI_RESUME)
    takeover_park_s: float = 0.0  # HA: how long a resuming caller waits on a standby for a new term


def election(cfg: ServerConfig, db_url: str, leader: FeatureGroup, address: Callable[[], str]) -> Election:
    """The election for this node's configuration: none without an `ha:` block (`SoloLeadership`, nothing
    claimed). `address()` is this node's HTTP address once it listens (the leader's address standbys name)."""
    ha = cfg.ha
    if ha is None:
        return Election(SoloLeadership(), NO_CLAIMS, leader, release_on_stop=False)
    # its own small pool with short timeouts: a renewal must not queue behind the event store's batches.
    # Two of its connections stay open (the lease session and a standby's wait for the leader's epoch lock,
    # ctiserver/ha/pg.py); the rest serve the claims.
    engine = make_engine(db_url, connect_timeout_s=min(2.0, ha.lease_ttl_s / 2),
                         statement_timeout_s=ha.lease_ttl_s, pool_size=4)
    leadership = Leadership(ha, PgLease(engine, ha.node, lambda: ha.address or address(), ha.lease_ttl_s), leader)
    prune_engine = make_engine(db_url, pool_size=1)  # its batches never hold up a renewal
    leader.add("ha-claims-prune", ClaimsPruner(prune_engine, ha.claims_keep_days * 86400).run)

    @asynccontextmanager
    async def running() -> AsyncIterator[Leadership]:
        try:
            async with leadership():
                yield leadership
        finally:
            await engine.dispose()
            await prune_engine.dispose()

    return Election(leadership, LeaderClaims(leadership, engine), running, release_on_stop=True,
                    takeover_park_s=2 * ha.lease_ttl_s + 2.0)


def install_takeover(server: CtiServer, vote: Election, leader: FeatureGroup, acd: Any, ivr: AgiHandler) -> AgiHandler:
    """With HA: the takeover as the leader group's last feature, the standby guard on the HTTP API, and the
    IVR's AGI route behind the takeover gate (returned). A single node: the IVR route as it is."""
    leadership = vote.leadership
    if not isinstance(leadership, Leadership):
        return ivr
    takeover = Takeover(leadership, lambda: leader.running, acd, lambda: server.store.engine, server.clock.now,
                        server.emit, live_calls=lambda: _live_calls(server), resynced=server.resync_afresh,
                        park_s=vote.takeover_park_s)
    leader.add("takeover", takeover.term)
    server.http_app.middlewares.append(standby_guard(leadership))
    return takeover.gate(ivr, resumable=True)


def mirrored_wallboard(server: CtiServer, vote: Election, board: Board) -> Board:
    """With HA: the wallboard every node shows, the leader's (ctiserver/ha/wallboard.py), its mirror a feature
    of the server; a single node: `board` as it is."""
    if not isinstance(vote.leadership, Leadership):
        return board
    mirror = WallboardMirror(board, vote.leadership, lambda: server.store.engine if server.store else None,
                             server.clock.now)
    server.add_feature("wallboard mirror", mirror.running)
    return mirror


def _live_calls(server: CtiServer) -> set[str]:
    return {call_id for tracker in server.trackers.values() for call_id in tracker.calls}

