"""Assemble a CtiServer with its features from a configuration folder.

The features are independent modules; this is the one place that knows how
they connect:

    caller ─AGI /ivr─▶ IVR service ─queue node─▶ ACD runtime ─Dial─▶ agent
    AMI DialBegin / DialEnd(ANSWER) ─▶ ACD runtime.note_ringing / note_answered   (ring time, answer time)
    an agent offered while the caller hears an announcement ─▶ AMI ControlPlayback stops it
    event log (acd.offer / acd.answer / acd.complete, agent.state) ─▶ desktop bridge ─▶ hub (screen-pop over
        WebSocket; the ACD's on_offer/on_answer/on_end/on_cancel hooks are not used by the server)
    ACD hooks on_callback / on_callback_offer / on_callback_cancel ─▶ outbound (its ACD callbacks)
    outbound ─Originate─▶ Asterisk;  "0" ─AGI /outbound-agent─▶ ACD (outbound skill)
    ACD callbacks (abandon, kept place) ─▶ outbound callbacks ─Originate agent─▶ AGI /callback ─Dial─▶ customer
    event store ◀─ every feature's events;  /reports ◀─ KPIs over the store

Every feature is started and stopped the same way (ctiserver/lifecycle.py), in this order:
event store, AMI links, customer data, IVR, the leader group (ACD runtime, then outbound: the
dialer and the ACD callbacks; the fallback queue recorder; with HA the takeover), KPIs live, desktop
(pusher, screen-pop bridge, work-order watch), FastAGI, HTTP. The leader group
(`Features.leader`) can be stopped and started again while the rest keeps serving: the AGI
routes into the ACD, the callbacks and the dialer then end without CTI_DONE, so the dialplan
falls back, and the outbound API answers 503. With an `ha:` block the election (ctiserver/ha/, wired
by ctiserver/app/ha.py) starts and stops it: only the node holding the lease runs it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ..acd.callback_key import callback_key_listener
from ..acd.config import load_acd_config
from ..acd.engine import AcdEngine
from ..acd.fallback import FallbackQueues
from ..acd.hold import hold_listener
from ..acd.runtime import AcdHooks, AcdRuntime
from ..acd.server_watch import ServerWatch
from ..agi.channel import AgiChannel
from ..calendar import load_calendar
from ..calls.control import AgentChannels, AmiCallControl, transfer_listener
from ..clock import Clock
from ..config import ServerConfig, resolve_db_url
from ..customers.data import SqlDataProvider, load_sample_data
from ..customers.lookup import IvrCustomerLookup
from ..ivr.runtime import QueueRequest, handoff_to
from ..ivr.service import IvrService
from ..kpi.config import load_kpi_config
from ..kpi.http import add_report_routes
from ..kpi.livefeed import LiveKpiFeed
from ..kpi.rollup_job import RollupJob
from ..lifecycle import Feature, FeatureGroup, TaskOwner, started
from ..outbound.http import add_callback_routes
from ..outbound.http import add_routes as add_outbound_routes
from ..outbound.model import load_outbound_config
from ..outbound.service import Outbound
from ..qc.feature import install_monitoring, install_qc
from ..recording.feature import install_recording
from ..store.engine import make_engine
from ..store.partitions import cutoff
from ..store.retention import RetentionJob
from ..web.acd_ports import AcdAgentControl, AcdWallboard
from ..web.api import SUPERVISORS
from ..web.app import BRIDGE_KEY, DESKTOP_KEY, HUB_KEY, desktop_running, install_desktop
from ..web.auth import Sessions
from ..web.config import load_desktop_config
from ..web.ws import SUPERVISOR
from ..wfm.config import load_wfm_config, roster_folder
from ..wfm.handover_http import add_handover_routes
from ..wfm.handover_watch import HandoverWatch
from ..wfm.http import add_wfm_routes
from .acd_routes import (
    AgentPhones,
    NotLeading,
    interrupter,
    leader_only,
    on_dial_begin,
    on_dial_end,
    outbound_agent_route,
    queue_route,
    transfer_route,
)
from .fallback import FallbackRecorder
from .ha import election, install_takeover, mirrored_wallboard
from .loop import install_loop
from .server import HEALTH_DETAILS_KEY, CtiServer

log = logging.getLogger(__name__)

__all__ = ["Features", "NotLeading", "build_server"]


@dataclass
class Features:
    """The live feature objects of a server (tests and the demo reach in here)."""

    acd: AcdRuntime
    ivr: IvrService
    outbound: Outbound
    hooks: AcdHooks
    calls: AmiCallControl
    leader: FeatureGroup  # ACD, dialer, callbacks: stop/start them at runtime (a standby runs none of them)
    sandbox: Any = None  # the sandbox Asterisk's SandboxInfo when built with sandbox=True (the serve banner)
    extra: dict[str, Any] = field(default_factory=dict)


def _supervisor_check(sessions: Sessions) -> Callable[[Any], Awaitable[bool]]:
    """True for a request with a supervisor's or admin's session (the full /healthz)."""

    async def check(request: Any) -> bool:
        user = await sessions.user(request)
        return user is not None and user.role in SUPERVISORS

    return check


def _ops_guard(sessions: Sessions) -> Any:
    """Outbound control, KPI reports and workforce management are for supervisors and admins (the desktop's
    sessions)."""
    from aiohttp import web

    guarded = ("/api/outbound", "/api/reports", "/api/wfm")

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(guarded):
            await sessions.require(request, SUPERVISORS)
        return await handler(request)

    return guard


async def _restore_agents(server: CtiServer, acd: AcdRuntime, *, wait_s: float = 15.0,
                          window_s: float = 12 * 3600.0) -> None:
    """After a restart: agents logged in before it are logged in again (see ctiserver/acd/restore.py),
    once Asterisk told us who is still on a call (or, if it cannot, nobody is made available)."""
    from ..acd.restore import apply_restore, busy_agents, restore_plan
    from ..store.query import last_agent_states

    try:
        last = await last_agent_states(server.store.engine, since=server.clock.now() - window_s)
        if not last:
            return
        known = acd.engine.agent_ids()
        try:
            await asyncio.wait_for(server.resynced.wait(), wait_s)
            channels = [leg.channel for t in server.trackers.values() for leg in t.legs.values()]
            busy = busy_agents(channels, acd.cfg.dial_string, known)
        except TimeoutError:
            busy = set(known)  # we cannot tell who is on a call: ring nobody, keep them logged in
        n = apply_restore(acd, restore_plan(last, busy, known))
        log.info("restored %d agents' login after the restart (%d on a live call)", n, len(busy))
    except Exception:  # a restore that fails leaves agents to log in by hand, nothing worse
        log.exception("could not restore agents after the restart")


async def _prerender(tts: Any, texts: list[tuple[str, str]]) -> None:
    """The ACD's fixed messages in every caller language, rendered ahead of the first caller who needs one."""
    rendered, cached, errors = await tts.render_all(texts)
    log.info("ACD messages: %d prompt(s) rendered, %d cached", rendered, cached)
    for e in errors:
        log.error("ACD message not rendered: %s", e)


def _acd_feature(server: CtiServer, acd: AcdRuntime, prerender: Callable[[], Awaitable[None]]) -> Feature:
    """The ACD runtime (its deadline timer), its fixed messages rendered ahead of the first caller, and, once
    Asterisk was resynced, the agents restored after a restart (logged in again as they were; see
    ctiserver/acd/restore.py)."""

    async def render() -> None:
        await prerender()

    @asynccontextmanager
    async def running() -> AsyncIterator[AcdRuntime]:
        async with started(acd), TaskOwner("ACD") as tasks:
            tasks.spawn(render(), name="acd-prerender")
            tasks.spawn(_restore_agents(server, acd), name="acd-restore-agents")
            yield acd

    return running


def _customer_data(engine: AsyncEngine, config_dir: Path, sample_data: bool, clock: Clock) -> Feature:
    """The customer tables' engine (the IVR's lookups, the desktop's customers); `--sample-data` loads the
    sample customers at start."""

    @asynccontextmanager
    async def running() -> AsyncIterator[AsyncEngine]:
        try:
            if sample_data:
                await load_sample_data(engine, config_dir, clock.now())
            yield engine
        finally:
            await engine.dispose()  # the engine opens new connections if the feature starts again

    return running


async def build_server(config_dir: Path, cfg: ServerConfig, *, sandbox: bool = False,
                       sample_data: bool = False, base_dir: Path | None = None) -> CtiServer:
    """The server as `ctiserver serve` runs it: every feature built (none started) and added to the server's
    lifecycle in order (see ctiserver/lifecycle.py). `server.start()` starts them, `server.stop()` stops them."""
    config_dir = Path(config_dir)
    sandbox_info = None
    if sandbox:  # bring it up first: the AMI link goes to the sandbox's own port, user and secret
        from ..ivr.settings import load_ivr_settings
        from ..ivr.tts import Tts
        from ..sandbox import chroot as sb

        project = Path(base_dir) if base_dir else config_dir.resolve().parent
        sounds = Tts.from_settings(load_ivr_settings(config_dir).tts, project).cache_dir  # shown to Asterisk
        sandbox_info = await asyncio.to_thread(sb.up, sounds_dir=sounds)
        cfg = cfg.for_sandbox(sandbox_info.ami_host, sandbox_info.ami_port, sandbox_info.ami_user,
                              sandbox_info.ami_secret)
    # what a standby must not run (the HA issue): the ACD, the dialer, the ACD callbacks. One node: always on.
    leader = FeatureGroup("leader")
    base_dir = Path(base_dir) if base_dir else config_dir.resolve().parent

    def listening_address() -> str:  # the port the HTTP listener got (port 0: the OS picks it) once it listens
        return f"http://{cfg.http.host}:{server.http_port or cfg.http.port}"

    # the election first: its claims and leadership are constructor arguments of the features below
    vote = election(cfg, resolve_db_url(cfg.database.url, base_dir), leader, listening_address)
    server = CtiServer(config_dir, cfg, base_dir=base_dir, ha=vote.leadership)
    data_engine = make_engine(server.db_url)
    calendar = load_calendar(config_dir)  # the site's time zone, days and hours: read once, handed to every feature
    acd_cfg = load_acd_config(config_dir, calendar)

    async def handoff(chan: AgiChannel, request: QueueRequest) -> str:
        """The IVR's queue node: into the ACD, while this node runs it."""
        if not leader.running:
            raise NotLeading("the ACD is not running on this node")
        return await to_acd(chan, request)

    ivr = IvrService(config_dir, emit=server.emit, handoff=handoff,
                     data=SqlDataProvider(data_engine, calendar.timezone), project_dir=server.base_dir,
                     clock=server.clock, calendar=calendar)

    async def say(chan: AgiChannel, text: str, lang: str) -> None:
        """What the ACD says to a caller (announcements, messages, voicemail) through the IVR's TTS,
        in the caller's language."""
        sound = await ivr.tts.sound(text, lang)
        await chan.execute(f'STREAM FILE {sound} ""')

    outbound = Outbound(server, load_outbound_config(config_dir, calendar), prompt=ivr.tts.sound, say=say,
                        claims=vote.claims)
    hooks = AcdHooks(on_callback=outbound.on_callback, on_callback_offer=outbound.on_callback_offer,
                     on_callback_cancel=outbound.on_callback_cancel)
    acd = AcdRuntime(AcdEngine(acd_cfg), server.clock, server.emit, say=say, hooks=hooks,
                     recordings_dir=ivr.settings.recordings_dir,  # voicemails go where the IVR's messages go
                     interrupt=interrupter(server), servers=[s.name for s in cfg.asterisk],
                     claims=vote.claims, release_on_stop=vote.release_on_stop)
    to_acd = handoff_to(acd)
    agent_channels = AgentChannels.from_acd(acd_cfg)
    calls = AmiCallControl(server.trackers, server.ami, acd.engine, server.emit, server.clock.now,
                           queue_codes=acd_cfg.queue_codes, agent_of=agent_channels)

    server.agi_routes["outbound-agent"] = leader_only(leader, outbound_agent_route(acd))
    server.agi_routes["queue"] = leader_only(leader, queue_route(acd, calls.caller_number))
    server.agi_routes["transfer"] = leader_only(leader, transfer_route(acd))
    server.agi_routes["callback"] = leader_only(leader, outbound.handle_agi)
    server.ami_listeners.append(on_dial_end(acd))
    server.ami_listeners.append(hold_listener(acd))
    server.ami_listeners.append(callback_key_listener(acd))  # a waiting caller's callback key (key_source ami)
    server.ami_listeners.append(transfer_listener(acd, agent_channels, on_transfer=calls.note_completed_transfer))
    server.ami_listeners.append(on_dial_begin(acd, agent_channels))
    phones = AgentPhones(server, acd)  # agents' phones busy outside the ACD, or unregistered
    server.ami_listeners.append(phones.on_ami)
    server.ami_listeners.append(outbound.on_ami_event)
    server.event_listeners.append(outbound.on_event)
    servers = ServerWatch(acd, lambda: leader.running)  # a lost Asterisk's agents out of routing until it is back
    server.event_listeners.append(servers.on_event)
    server.ami_listeners.append(servers.on_ami)
    fallback = FallbackRecorder(server, FallbackQueues(agent_channels))
    server.ami_listeners.append(fallback.on_ami)
    server.event_listeners.append(fallback.on_event)

    add_outbound_routes(server.http_app, lambda: outbound.service)
    add_callback_routes(server.http_app, lambda: outbound.callbacks)
    kpi_cfg = load_kpi_config(config_dir, calendar)
    add_report_routes(server.http_app, lambda: server.store.engine, kpi_cfg, now=server.clock.now,
                      names=acd_cfg.names.public())
    wfm_cfg = load_wfm_config(config_dir, calendar)
    add_wfm_routes(server.http_app, folder=roster_folder(config_dir), cfg=wfm_cfg.roster,
                   agents=wfm_cfg.roster.roster_agents([(a.id, a.name, list(a.skills)) for a in acd_cfg.agents]),
                   calendar=calendar, get_engine=lambda: server.store.engine, now=server.clock.now)
    wfm_agents = wfm_cfg.roster.roster_agents([(a.id, a.name, list(a.skills)) for a in acd_cfg.agents])

    async def signed_in_leader(request: Any) -> str:
        return (await server.http_app[DESKTOP_KEY].sessions.require(request, SUPERVISORS)).agent_no

    add_handover_routes(server.http_app, folder=roster_folder(config_dir), cfg=wfm_cfg.roster, agents=wfm_agents,
                        calendar=calendar, get_engine=lambda: data_engine,
                        get_events_engine=lambda: server.store.engine, now=server.clock.now,
                        user_of=signed_in_leader, emit=server.emit, health=server.health)
    # a shift change nobody handed over gets its handover drawn up from the store (the leading node only)
    handover_watch = HandoverWatch(folder=roster_folder(config_dir), cfg=wfm_cfg.roster, agents=wfm_agents,
                                   calendar=calendar, get_engine=lambda: data_engine,
                                   get_events_engine=lambda: server.store.engine, clock=server.clock,
                                   emit=server.emit, health=server.health)

    # Today's KPI figures from the event stream, with the report's definitions; pushed to supervisors.
    today = LiveKpiFeed(kpi_cfg, server.clock, engine=lambda: server.store.engine if server.store else None,
                        publish=lambda figures: server.http_app[DESKTOP_KEY].hub.publish(SUPERVISOR, "kpi", figures),
                        listening=lambda: server.http_app[DESKTOP_KEY].hub.has_subscribers(SUPERVISOR))
    server.event_listeners.append(today.on_event)
    board = mirrored_wallboard(server, vote, AcdWallboard(acd, today))  # HA: a standby shows the leader's
    install_desktop(server.http_app, engine=data_engine, agents=AcdAgentControl(acd), calls=calls,
                    wallboard=board, customers=IvrCustomerLookup(ivr.runtime.data, data_engine, server.clock),
                    emit=server.emit, config=load_desktop_config(config_dir, calendar), clock=server.clock,
                    request_callback=outbound.request_callback, names=acd_cfg.names.public())
    server.event_listeners.append(server.http_app[BRIDGE_KEY].on_event)
    server.http_app.middlewares.append(_ops_guard(server.http_app[DESKTOP_KEY].sessions))
    server.http_app[HEALTH_DETAILS_KEY] = _supervisor_check(server.http_app[DESKTOP_KEY].sessions)

    leader.add("ACD", _acd_feature(server, acd, lambda: _prerender(ivr.tts, acd_cfg.fixed_texts())))
    leader.add("agent phones", phones.running)
    leader.add("outbound", lambda: outbound.running(acd))
    recorder = install_recording(server, config_dir=config_dir, calendar=calendar,
                                 sessions=lambda: server.http_app[DESKTOP_KEY].sessions,
                                 sandbox_root=sandbox_info.root if sandbox_info else None)
    leader.add("recording", recorder.running)
    install_monitoring(server, config_dir=config_dir, agent_of=agent_channels,
                       sessions=lambda: server.http_app[DESKTOP_KEY].sessions,
                       hub=lambda: server.http_app[HUB_KEY])
    install_qc(server, config_dir=config_dir, calendar=calendar, sessions=lambda: server.http_app[DESKTOP_KEY].sessions)
    leader.add("fallback queue", fallback.running)  # what Queue(fallback) did: recorded once, by the leader

    async def customer_by_phone(number: str) -> dict[str, Any] | None:
        return await ivr.runtime.data.lookup("customer_by_caller", {"number": number}, server.clock.now())

    # the outage and repair loop (issue 16): SMS, outages, repair orders (their features join below)
    loop = install_loop(server, data_engine, config_dir, calendar, outbound, server.http_app[DESKTOP_KEY].sessions,
                        leader, customer_by_phone)
    leader.add("shift handover", handover_watch.running)
    # month partitions made ahead, expired months dropped (database.retention), once a day
    leader.add("database retention", RetentionJob(lambda: server.store.engine if server.store else None,
                                                  cfg.database.retention, server.clock, calendar.zone).run)
    # each half hour rolled up as it settles, for the last kpi.yaml rollups.build_days (not months retention
    # dropped): a month's report reads rollups the first time too
    facts_months = cfg.database.retention.facts_months
    leader.add("KPI rollups", RollupJob(
        lambda: server.store.engine if server.store else None, kpi_cfg, server.clock,
        not_before=lambda now: cutoff(now, facts_months, calendar.zone) if facts_months else None).run)

    # one node: the group as it is; HA: the election runs it (and the IVR route gets the takeover gate)
    server.agi_routes["ivr"] = install_takeover(server, vote, leader, acd, ivr.handle)
    server.add_feature("customer data", _customer_data(data_engine, config_dir, sample_data, server.clock))
    server.add_feature("IVR", lambda: started(ivr))
    server.add_feature("leader", vote.feature)  # the group itself, or the HA election that runs it
    server.add_feature("KPIs live", today.running)
    server.add_feature("desktop", lambda: desktop_running(server.http_app))
    server.features = Features(acd=acd, ivr=ivr, outbound=outbound, hooks=hooks, calls=calls, leader=leader,
                               sandbox=sandbox_info, extra={"fallback": fallback.queues, "recorder": recorder,
                                                           "loop": loop})
    return server
