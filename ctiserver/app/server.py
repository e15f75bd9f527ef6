"""The running server: wires AMI, the call tracker, the event store, FastAGI and HTTP.

Everything with a lifetime is a feature (ctiserver/lifecycle.py): `start()` enters
them in order (event store, AMI links, the features `ctiserver.app.wiring` adds with
`add_feature`: IVR, ACD, outbound, desktop, KPIs; then FastAGI and HTTP, so no call
or request arrives before the features are up), `stop()` leaves them in reverse;
a start that fails half-way stops what it started. The AMI reader hands each message to
`_on_ami_event`, which runs synchronously and cheaply (tracker + store append),
so the socket reader never waits on slow work.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from .. import metrics
from ..agi.channel import AgiChannel, AgiHandler
from ..calls.tracker import CallTracker, RecordedCall
from ..clock import Clock, SystemClock
from ..config import AmiServer, ServerConfig, resolve_db_url
from ..events import Event, Kind
from ..ha.node import Leader
from ..lifecycle import Feature, FeatureGroup, TaskOwner
from ..web.badrequests import http_server_logger
from ..web.guard import new_app
from ..web.openapi import Operation, Reply, documented
from .gcpolicy import CollectorPolicy

log = logging.getLogger(__name__)

DB_REACH_S = 30.0  # how long a start waits to reach the database before it migrates in the background
RECORDED_LOOKUP_S = 30.0  # how long a resync waits for the event log to say which calls it already has
# (events meanwhile wait in the AMI client's inbox, the socket is still read: a busy database is waited for)

AmiListener = Callable[[str, Any], None]  # (server name, AmiMessage)

# Who may see /healthz in full (error texts, file paths): set by the desktop to its login check.
# Anonymous callers (load balancers, probes) get the status and counts only.
HEALTH_DETAILS_KEY: web.AppKey[Callable[[web.Request], Awaitable[bool]]] = web.AppKey("health_details")
PUBLIC_AMI = ("connected", "since", "reconnects")
PUBLIC_DB = ("db_ok", "pending", "journaled", "lag_s")
PUBLIC_HA = ("enabled", "role", "node", "epoch", "leader", "leader_address")


class HealthOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["ok", "degraded"]
    ami: dict[str, dict[str, Any]] = Field(description="per Asterisk: connected, since, reconnects (more when "
                                                       "a supervisor asks)")
    db: dict[str, Any] = Field(description="db_ok, pending, journaled, lag_s (more when a supervisor asks)")
    live_calls: int
    uptime_s: float
    ha: dict[str, Any] | None = Field(None, description="high availability (docs/ha.md): enabled, role (leader or "
                                                        "standby), node, epoch, leader, leader_address")


_HEALTH = Reply("the server's health", HealthOut)
HEALTH_OP = Operation(summary="Health: every Asterisk link up and the database writing (200), or not (503)",
                      roles=None, tags=("meta",), replies={200: _HEALTH, 503: _HEALTH}, operation_id="health")
METRICS_OP = Operation(summary="Prometheus metrics (text format 0.0.4)", roles=None, tags=("meta",),
                       replies={200: Reply("metrics", content_type="text/plain", schema={"type": "string"})},
                       operation_id="metrics")


class CtiServer:
    def __init__(self, config_dir: Path, cfg: ServerConfig, *, base_dir: Path | None = None,
                 clock: Clock | None = None, ha: Leader | None = None) -> None:
        self.config_dir = Path(config_dir)
        self.cfg = cfg
        self.base_dir = Path(base_dir) if base_dir else self.config_dir.resolve().parent
        self.clock = clock or SystemClock()
        self.db_url = resolve_db_url(cfg.database.url, self.base_dir)
        self.trackers: dict[str, CallTracker] = {s.name: CallTracker(s.name) for s in cfg.asterisk}
        self.ami: dict[str, Any] = {}  # name -> AmiClient
        self.ami_listeners: list[AmiListener] = []
        self.event_listeners: list[Callable[[Event], None]] = []
        self.agi_routes: dict[str, AgiHandler] = {}
        self.http_app = new_app()  # errors in one JSON shape; the cross-site check of every POST
        self.events_meter = metrics.RateMeter()
        self.ami_meter = metrics.RateMeter()
        self.started_at = self.clock.now()
        self.store: Any = None
        self.agi: Any = None
        self.http_port: int | None = None
        self.features: Any = None  # the wiring's live feature objects (ctiserver.app.wiring.Features)
        # set once every Asterisk has been resynced (the tracker knows the live calls): features that
        # must not act on stale state (restoring agents after a restart) wait for it
        self.resynced = asyncio.Event()
        self._resynced_names: set[str] = set()
        # HA (ctiserver/ha/, built by the wiring before the server): the election's status for /healthz, and
        # whether this node records what its call trackers see (only the leader does: every node's tracker
        # follows the same Asterisk)
        self.ha = ha
        self.recording: Callable[[], bool] = ha.leading if ha is not None else (lambda: True)
        self.http_app.router.add_get("/healthz", self._healthz)
        self.http_app.router.add_get("/metrics", self._metrics)
        # one lifecycle (ctiserver/lifecycle.py): the core around the features the wiring adds
        self._features = FeatureGroup("features")
        self._lifecycle = FeatureGroup("ctiserver", [
            ("event store", self._event_store), ("AMI", self._ami_links), ("features", self._features),
            ("FastAGI", self._fastagi), ("HTTP", self._http)])

    # --- the event path ----------------------------------------------------
    def emit(self, event: Event) -> None:
        """Record one event durably (buffered) and tell in-process listeners."""
        if self.store is not None:
            self.store.append(event)
        self.events_meter.add()
        self._tell(event)

    def _tracked(self, event: Event) -> None:
        """A call tracker's event: recorded by the leader, only told to this process's listeners elsewhere."""
        if self.recording():
            self.emit(event)
        else:
            self._tell(event)

    def _tell(self, event: Event) -> None:
        for listener in self.event_listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", event.kind)

    def _on_ami_event(self, server: str, msg: Any) -> None:
        self.ami_meter.add()
        # the tracker takes each event's own time (Asterisk's Timestamp); the clock is only its fallback
        for event in self.trackers[server].feed(msg, self.clock.now()):
            self._tracked(event)
        for listener in self.ami_listeners:
            try:
                listener(server, msg)
            except Exception:
                log.exception("AMI listener failed")

    async def _on_ami_connect(self, server: AmiServer, info: Any) -> None:
        tracker = self.trackers[server.name]
        now = self.clock.now()
        self.emit(Event(kind=Kind.AMI_CONNECTED, ts=now, server=server.name,
                        data={"uptime": getattr(info, "uptime", None),
                              "last_reload": getattr(info, "last_reload", None),
                              "restarted": bool(getattr(info, "restarted", False))}))
        if getattr(info, "restarted", False):
            for event in tracker.drop_all(now, "asterisk restarted"):
                self._tracked(event)
        await self.resync(server.name)

    async def resync(self, name: str) -> None:
        """Bring the tracker back in line with what Asterisk has now."""
        tracker, client = self.trackers[name], self.ami[name]
        tracker.begin_resync()
        try:
            resp = (await client.action("CoreShowChannels", {})).raise_for_error("CoreShowChannels")
        except Exception as exc:  # without a full list we must not close calls we merely failed to see
            tracker.cancel_resync()
            log.warning("resync of %s failed: %s", name, exc)
            return
        try:
            for msg in resp.events:
                tracker.feed(msg, self.clock.now())
            recorded = await self._recorded_calls(name, tracker.resync_unknown_calls())
        except BaseException:
            tracker.cancel_resync()
            raise
        for event in tracker.end_resync(self.clock.now(), recorded):
            self._tracked(event)
        log.info("resynced %s: %d live calls", name, len(tracker.calls))
        self._resynced_names.add(name)
        if self._resynced_names >= set(self.trackers):
            first = not self.resynced.is_set()
            self.resynced.set()
            solo = self.ha is None or not self.ha.status().get("enabled")
            if first and solo:  # with HA, every new term does it (ha/takeover.py)
                await self._close_calls_ended_unseen()

    def _live_call_ids(self) -> set[str]:
        return {call_id for tracker in self.trackers.values() for call_id in tracker.calls}

    async def _close_calls_ended_unseen(self) -> None:
        """Calls that ended while no CTI ran: the log holds their call.new (written by an earlier run) and no
        call.end, and Asterisk no longer has them. Each gets its call.end now, once, with the reason and
        `resynced: true` (its real end is unknown); otherwise a caller who hung up unserved while the CTI was
        down counted as still waiting on the wallboard and in the KPIs for hours. Only calls begun before this
        process started can be such (it saw every later one), and a call live before or after the read is
        not one. Best effort: with the database away, the next start closes them."""
        if self.store is None:
            return
        from ..store.query import OPEN_CALLS_LOOKBACK_S, open_calls

        live = self._live_call_ids()
        try:
            async with asyncio.timeout(RECORDED_LOOKUP_S):
                with contextlib.suppress(TimeoutError):  # an earlier run's journal, this run's buffer: in first
                    await asyncio.wait_for(self.store.flush(), RECORDED_LOOKUP_S / 2)
                opened = await open_calls(self.store.engine, self.started_at - OPEN_CALLS_LOOKBACK_S,
                                          until=self.started_at)
        except Exception as exc:
            log.warning("could not read which calls ended while no CTI ran (%s); their call.end waits for the "
                        "next start", exc)
            return
        gone = sorted(set(opened) - live - self._live_call_ids())
        now = self.clock.now()
        for call_id in gone:
            self.emit(Event(kind=Kind.CALL_END, ts=now, call_id=call_id, server=opened[call_id],
                            data={"reason": "ended while no CTI was running", "resynced": True}))
        if gone:
            log.info("%d call(s) ended while no CTI was running: call.end recorded", len(gone))

    async def resync_afresh(self) -> None:
        """A new HA term: every connected Asterisk listed again into a fresh tracker, as after a restart. Calls
        the log holds are adopted with their recorded start; calls it lacks (begun while nobody recorded) get
        their call.new now."""
        names = [name for name, client in list(self.ami.items()) if client.connected]
        for name in names:
            self.trackers[name] = CallTracker(name)
        await asyncio.gather(*(self.resync(name) for name in names))  # each Asterisk's list is its own

    async def _recorded_calls(self, server: str, call_ids: set[str]) -> dict[str, RecordedCall]:
        """Live calls the event log already holds (a previous run of the CTI saw them start), so that the
        resync adopts them without a second call.new and measures them from their recorded start.
        Best effort: with the database away they are adopted as new (and said so in the log)."""
        if not call_ids or self.store is None:
            return {}
        from ..store.query import recorded_calls

        try:
            async with asyncio.timeout(RECORDED_LOOKUP_S):
                if self.store.status().get("journaled"):  # a previous run's events still on their way in
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.store.flush(), RECORDED_LOOKUP_S / 2)
                return await recorded_calls(self.store.engine, call_ids, server=server)
        except Exception as exc:
            log.warning("resync of %s: could not read which of its %d unknown calls are already recorded (%s); "
                        "adopting them as new calls", server, len(call_ids), exc)
            return {}

    def _on_ami_disconnect(self, server: AmiServer, reason: str) -> None:
        self.emit(Event(kind=Kind.AMI_LOST, ts=self.clock.now(), server=server.name, data={"reason": reason}))

    async def _agi_dispatch(self, chan: AgiChannel) -> None:
        path = chan.path.strip("/").split("?")[0].split("/")[0]  # ivr/<tree>, queue/<skill>: route on the first part
        handler = self.agi_routes.get(path)
        if handler is None:
            log.warning("no AGI route for %r; the dialplan's fallback takes the call", path)
            return
        await handler(chan)

    # --- start / stop --------------------------------------------------------
    def add_feature(self, name: str, feature: Feature) -> None:
        """A feature of the server (see ctiserver/lifecycle.py), started after the AMI links and before
        FastAGI and HTTP, in the order added; stopped in reverse. Add them before `start`."""
        self._features.add(name, feature)

    @property
    def running(self) -> bool:
        return self._lifecycle.running

    @property
    def lifecycle(self) -> FeatureGroup:
        """The whole server as one group: the core steps around the wiring's features (read-only use)."""
        return self._lifecycle

    async def start(self) -> None:
        """Start every feature in order: the event store, the AMI links, the wiring's features, FastAGI,
        HTTP. If one fails, those that started are stopped again and the error is raised: a failed start
        leaves nothing running. A stopped server can be started again."""
        await self._lifecycle.start()
        agi = self.cfg.agi
        log.info("ctiserver up: http %s:%s, agi %s:%s, ami %s", self.cfg.http.host, self.http_port,
                 agi.host, self.agi.port if self.agi is not None else agi.port,
                 ", ".join(f"{s.name}={s.host}:{s.port}" for s in self.cfg.asterisk))

    async def stop(self) -> None:
        """Stop what started, in reverse order (nothing if the server is not running)."""
        if self._lifecycle.running:
            await self._lifecycle.stop()
            log.info("ctiserver stopped")

    @asynccontextmanager
    async def _event_store(self) -> AsyncIterator[Any]:
        from ..store.writer import EventStore

        db = self.cfg.database
        journal = Path(db.journal)
        if not journal.is_absolute():
            journal = self.base_dir / journal
        journal.parent.mkdir(parents=True, exist_ok=True)
        store = EventStore(self.db_url, batch_size=db.batch_size, flush_interval_s=db.flush_interval_s,
                           buffer_limit=db.buffer_limit, journal_path=journal, retry_max_s=db.retry_max_s)
        from ..kpi.factstore import FactSink

        if db.facts_interval_s:  # the KPI facts follow the events, at most facts_interval_s late
            store.add_deferred_sink(FactSink(), db.facts_interval_s)
        else:  # ... or are written with them, in the same transaction
            store.add_sink(FactSink())
        async with TaskOwner("event store") as tasks:
            try:
                await self._migrate_or_retry(tasks)
                await store.start()
                self.store = store
                yield store
            finally:
                await tasks.aclose()  # a migration still retrying stops before the store closes
                await store.close()

    async def _migrate_or_retry(self, tasks: TaskOwner) -> None:
        """Bring the schema up to date; if the database is away, keep trying in the background.

        The store buffers (and journals) meanwhile: a missing table is an outage to it.
        """
        if self.db_url.startswith("sqlite"):
            Path(self.db_url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        try:
            await self._migrate_once()
            return
        except Exception as exc:
            log.warning("database migration failed (%s); retrying in the background", exc)

        async def retry() -> None:
            delay = 1.0
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._migrate_once()
                    log.info("database migrated")
                    return
                except Exception as exc:
                    log.warning("database migration still failing: %s", exc)
                    delay = min(delay * 2, 30.0)

        tasks.spawn(retry(), name="migrate-retry")

    async def _migrate_once(self) -> None:
        """Only reaching the database is bounded (DB_REACH_S): an upgrade that rewrites a big table (the month
        partitions of 0016 take about a minute per million calls) runs to its end instead of being cancelled
        and started again for ever."""
        from ..store.engine import current_revision, head_revision, migrate

        current = await asyncio.wait_for(current_revision(self.db_url), timeout=DB_REACH_S)
        head = head_revision()
        if current is not None and current != head:
            log.info("database schema %s -> %s: migrating (on a large event log this takes minutes; "
                     "`ctiserver db upgrade` does it before a start)", current, head)
        await migrate(self.db_url)

    @asynccontextmanager
    async def _ami_links(self) -> AsyncIterator[dict[str, Any]]:
        from ..ami.client import AmiClient

        self.resynced.clear()
        self._resynced_names.clear()
        async with AsyncExitStack() as stack:
            for server in self.cfg.asterisk:
                client = AmiClient(
                    server,
                    on_event=functools.partial(self._on_ami_event, server.name),
                    on_connect=functools.partial(self._on_ami_connect, server),
                    on_disconnect=functools.partial(self._on_ami_disconnect, server),
                    clock=self.clock,
                )
                self.ami[server.name] = client
                stack.push_async_callback(client.close)
                await client.start()
            yield self.ami

    @asynccontextmanager
    async def _fastagi(self) -> AsyncIterator[Any]:
        from ..agi.server import FastAGIServer

        agi = self.cfg.agi
        server = FastAGIServer(agi.host, agi.port, self._agi_dispatch, header_timeout_s=agi.header_timeout_s,
                               command_timeout_s=agi.command_timeout_s, max_pending=agi.max_pending)
        self.agi = server
        try:
            await server.start()
            yield server
        finally:
            await server.close()  # ends the sessions under way: Asterisk continues its dialplan

    @asynccontextmanager
    async def _http(self) -> AsyncIterator[web.AppRunner]:
        # a request aiohttp cannot parse is one aggregated warning, not a traceback each (web/badrequests.py)
        runner = web.AppRunner(self.http_app, access_log=None, logger=http_server_logger())
        try:
            await runner.setup()
            site = web.TCPSite(runner, self.cfg.http.host, self.cfg.http.port)
            await site.start()
            server_obj = getattr(site, "_server", None)
            sockets = getattr(server_obj, "sockets", None) or []
            self.http_port = sockets[0].getsockname()[1] if sockets else self.cfg.http.port
            yield runner
        finally:
            await runner.cleanup()

    # --- HTTP ---------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        ami = {name: client.status() for name, client in self.ami.items()}
        store = self.store.status() if self.store is not None else {"db_ok": False}
        ok = bool(store.get("db_ok")) and all(s.get("connected") for s in ami.values())
        out = {"status": "ok" if ok else "degraded", "ami": ami, "db": store,
                "live_calls": sum(len(t.calls) for t in self.trackers.values()),
                "uptime_s": round(self.clock.now() - self.started_at, 1)}
        if self.ha is not None:
            out["ha"] = self.ha.status()
        return out

    @documented(HEALTH_OP)
    async def _healthz(self, request: web.Request) -> web.Response:
        body = self.health()
        may_see = request.app.get(HEALTH_DETAILS_KEY)
        if may_see is None or not await may_see(request):
            body = {**body, "ami": {name: {k: st.get(k) for k in PUBLIC_AMI} for name, st in body["ami"].items()},
                    "db": {k: body["db"].get(k) for k in PUBLIC_DB}}
            if body.get("ha") is not None:
                body["ha"] = {k: body["ha"].get(k) for k in PUBLIC_HA}
        return web.json_response(body, status=200 if body["status"] == "ok" else 503,
                                 dumps=lambda o: __import__("json").dumps(o, default=str))

    def metric_samples(self) -> list[tuple[str, str, str, dict[str, str], float]]:
        s: list[tuple[str, str, str, dict[str, str], float]] = []
        for name, tracker in self.trackers.items():
            s.append(("ctiserver_live_calls", "gauge", "Calls in progress", {"server": name}, len(tracker.calls)))
            s.append(("ctiserver_live_channels", "gauge", "Channels in progress", {"server": name},
                      len(tracker.legs)))
        for name, client in self.ami.items():
            st = client.status()
            s.append(("ctiserver_ami_connected", "gauge", "1 when the AMI link is up", {"server": name},
                      1.0 if st.get("connected") else 0.0))
            s.append(("ctiserver_ami_reconnects_total", "counter", "AMI reconnects", {"server": name},
                      float(st.get("reconnects", 0))))
        s.append(("ctiserver_ami_events_total", "counter", "AMI events received", {}, self.ami_meter.total))
        s.append(("ctiserver_events_total", "counter", "Events recorded", {}, self.events_meter.total))
        s.append(("ctiserver_events_per_second", "gauge", "Events recorded per second (10 s window)", {},
                  self.events_meter.rate()))
        if self.store is not None:
            st = self.store.status()
            s.append(("ctiserver_db_up", "gauge", "1 when the database accepts writes", {},
                      1.0 if st.get("db_ok") else 0.0))
            s.append(("ctiserver_db_lag_seconds", "gauge", "Age of the oldest event not yet in the database", {},
                      float(st.get("lag_s") or 0.0)))
            s.append(("ctiserver_db_pending_events", "gauge", "Events waiting to be written", {},
                      float(st.get("pending") or 0)))
            s.append(("ctiserver_db_journaled_events", "gauge", "Events spilled to the local journal", {},
                      float(st.get("journaled") or 0)))
        if self.agi is not None:
            s.append(("ctiserver_agi_sessions", "gauge", "FastAGI sessions in progress", {},
                      float(self.agi.active_sessions)))
            s.append(("ctiserver_agi_pending", "gauge", "FastAGI connections still sending their headers", {},
                      float(self.agi.pending)))
            s.append(("ctiserver_agi_rejected_total", "counter", "FastAGI connections closed before a session "
                      "began (bad, oversized, slow or evicted headers)", {}, float(self.agi.rejected_total)))
        if self.ha is not None:
            s += ha_samples(self.ha.status())
        return s

    @documented(METRICS_OP)
    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=metrics.render(self.metric_samples()),
                            content_type="text/plain", charset="utf-8",
                            headers={"X-Prometheus-Format": "0.0.4"})


def ha_samples(st: dict[str, Any]) -> list[tuple[str, str, str, dict[str, str], float]]:
    """The election for Prometheus: this node's role, the epoch, who leads (docs/ha.md)."""
    leading = st.get("role") == "leader"
    return [("ctiserver_ha_leader", "gauge", "1 when this node leads (runs the ACD, the dialer, the callbacks)",
             {"node": str(st.get("node") or "")}, 1.0 if leading else 0.0),
            ("ctiserver_ha_epoch", "gauge", "The leader's lease epoch (fencing token) as this node last saw it", {},
             float(st.get("epoch") or 0)),
            ("ctiserver_ha_info", "gauge", "The election as this node sees it (always 1)",
             {"node": str(st.get("node") or ""), "role": str(st.get("role") or ""),
              "leader": str(st.get("leader") or "")}, 1.0)]


async def run_until_signalled(server: CtiServer, ready: asyncio.Event | None = None) -> None:
    """Start, serve until SIGTERM/SIGINT, stop cleanly. A start that fails has stopped what it started and
    raises; whatever happens after the start (a signal, a cancel, an error) stops the server."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        # Everything built so far (modules, config, IVR trees, the app) lives as long as the process: move it
        # out of the cyclic collector's way, so that a full collection scans only what came after. Otherwise
        # each one walks the whole startup heap on the event loop (tens of ms on a busy machine; Asterisk
        # drops an AMI session whose writes block for 100 ms).
        gc.collect()
        gc.freeze()
        if ready is not None:
            ready.set()
        async with CollectorPolicy():  # and what lives long from now on leaves it too (app/gcpolicy.py)
            await stop.wait()
        log.info("signal received, shutting down")
    finally:
        try:
            await server.stop()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
