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
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ..acd.config import load_acd_config
from ..acd.engine import AcdEngine
from ..acd.fallback import FallbackQueues
from ..acd.hold import hold_listener
from ..acd.runtime import AcdHooks, AcdRuntime
from ..acd.server_watch import ServerWatch
from ..agi.channel import AgiChannel, AgiError, AgiHandler, AgiHangup
from ..ami.message import event_time
from ..calendar import load_calendar
from ..calls.control import AgentChannels, AmiCallControl, transfer_listener
from ..clock import Clock
from ..config import ServerConfig, resolve_db_url
from ..customers.data import SqlDataProvider, load_sample_data
from ..customers.lookup import IvrCustomerLookup
from ..events import Event, Kind
from ..ivr.runtime import QueueRequest, handoff_to
from ..ivr.service import IvrService
from ..kpi.config import load_kpi_config
from ..kpi.http import add_report_routes
from ..kpi.livefeed import LiveKpiFeed
from ..lifecycle import Feature, FeatureGroup, TaskOwner, started
from ..lograte import LogBurst
from ..outbound.http import add_callback_routes
from ..outbound.http import add_routes as add_outbound_routes
from ..outbound.model import load_outbound_config
from ..outbound.service import Outbound
from ..qc.feature import install_monitoring, install_qc
from ..recording.feature import install_recording
from ..store.engine import make_engine
from ..web.acd_ports import AcdAgentControl, AcdWallboard
from ..web.api import SUPERVISORS
from ..web.app import BRIDGE_KEY, DESKTOP_KEY, HUB_KEY, desktop_running, install_desktop
from ..web.auth import Sessions
from ..web.config import load_desktop_config
from ..web.ws import SUPERVISOR
from ..wfm.config import load_wfm_config, roster_folder
from ..wfm.handover_http import add_handover_routes
from ..wfm.http import add_wfm_routes
from .ha import election, install_takeover
from .loop import install_loop
from .server import HEALTH_DETAILS_KEY, CtiServer

log = logging.getLogger(__name__)


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


def _on_dial_end(acd: AcdRuntime) -> Any:
    """AMI DialEnd(ANSWER) on a caller we hold: the agent answered now (Dial itself returns at hang-up)."""

    def listener(server: str, msg: Any) -> None:
        if msg.get("Event") == "DialEnd" and msg.get("DialStatus") == "ANSWER":
            call_id = msg.get("Linkedid") or msg.get("Uniqueid")
            if call_id:
                acd.note_answered(str(call_id), event_time(msg))  # Asterisk's time of the answer

    return listener


def _on_dial_begin(acd: AcdRuntime, agent_of: Callable[[str], str | None]) -> Any:
    """AMI DialBegin from a caller we hold to the agent the ACD offered them: the ring starts then, at
    Asterisk's Timestamp (ring time = DialBegin to answer as Asterisk stamped both). The caller is known
    by its Linkedid, a consultation the ACD serves under its own id by its Uniqueid."""

    def listener(server: str, msg: Any) -> None:
        if msg.get("Event") != "DialBegin":
            return
        agent = agent_of(str(msg.get("DestChannel") or ""))
        if agent is None:
            return
        when = event_time(msg)
        for call_id in (msg.get("Uniqueid"), msg.get("Linkedid")):
            if call_id and acd.note_ringing(str(call_id), agent, when):
                return

    return listener


def _interrupter(server: CtiServer) -> Callable[[str], Awaitable[object]]:
    """Stop what plays to a channel (an announcement, when an agent is offered to the caller hearing it):
    AMI ControlPlayback, on every Asterisk we are connected to (the channel is on one of them)."""

    async def interrupt(channel: str) -> object:
        results = []
        for client in server.ami.values():
            if client.connected:
                results.append(await client.action("ControlPlayback", {"Channel": channel, "Control": "stop"},
                                                   timeout=2.0))
        return results

    return interrupt


class _FallbackRecorder:
    """The fallback queue's outcomes into the event log (see ctiserver/acd/fallback.py): its AMI events as
    they come; while the feature runs, after every (re)connect (and at its start, for the links already
    up), the fallback calls already talking are adopted from the channel list so that their end is
    recorded."""

    def __init__(self, server: CtiServer, queues: FallbackQueues) -> None:
        self.server, self.queues = server, queues
        self._tasks = TaskOwner("fallback queue")
        self._running = False

    def on_ami(self, name: str, msg: Any) -> None:
        if not self._running:  # a standby: the leader records the fallback queue
            return
        for event in self.queues.feed(name, msg, self.server.clock.now()):
            self.server.emit(event)

    def on_event(self, event: Event) -> None:
        if event.kind == Kind.AMI_CONNECTED and event.server in self.server.ami:
            self._adopt_soon(event.server)

    def _adopt_soon(self, name: str) -> None:
        if self._running:
            self._tasks.spawn(self._adopt(name), name=f"fallback-adopt-{name}")

    async def _adopt(self, name: str) -> None:
        try:
            resp = (await self.server.ami[name].action("CoreShowChannels", {}, timeout=10.0)
                    ).raise_for_error("CoreShowChannels")
        except Exception as exc:
            log.warning("fallback queue on %s: could not list channels (%s); calls it connected while we were "
                        "away are not recorded", name, exc)
            return
        n = self.queues.adopt_talking(name, (m for m in resp.events if m.get("Event") == "CoreShowChannel"))
        if n:
            log.info("fallback queue on %s: %d calls connected while we were away; their end will be recorded",
                     name, n)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[_FallbackRecorder]:
        self._running = True
        try:
            for name, client in self.server.ami.items():
                if client.connected:  # connected before we ran: its ami.connected went by (adopting is idempotent)
                    self._adopt_soon(name)
            yield self
        finally:
            self._running = False
            await self._tasks.aclose()


def _queue_route(acd: AcdRuntime, caller_of: Callable[[str], str] = lambda call_id: "") -> Any:
    """AGI /queue/<skill or transfer code>: a caller transferred to a queue re-enters the ACD.

    Blind ([transfer-queue]): the caller's own leg, known to the ACD by the call's Linkedid (a
    previous ACD session on this leg may still be closing: wait for it briefly). Attended
    ([transfer-code], e.g. an escalation): the consultation channel, while the caller it shares
    the Linkedid with is still being served (on hold with their agent): it is queued under its own
    Uniqueid, else the ACD would refuse it ("already being served") and the dialplan would drop it
    into the fallback queue; its caller is the call's (`caller_of`), not the agent it was dialled
    from. The tier comes from the tier rules."""

    async def handle(chan: AgiChannel) -> None:
        parts = [p for p in chan.path.split("?")[0].split("/") if p]
        skill = parts[1] if len(parts) > 1 else ""
        skill = acd.cfg.transfer_codes.get(skill, skill)
        call_id = own_id = chan.headers.get("agi_uniqueid", "")
        caller = chan.headers.get("agi_callerid", "")
        kind = ""
        try:
            reply = await chan.execute("GET VARIABLE CHANNEL(linkedid)")
            if reply.result == "1" and reply.data:
                call_id = reply.data
            if chan.headers.get("agi_context") != "transfer-code":
                for _ in range(20):  # the same leg's previous session ends as it is redirected
                    if acd.engine.call_state(call_id) is None:
                        break
                    await asyncio.sleep(0.05)
            if own_id and acd.engine.call_state(call_id) is not None:
                log.info("call %s is being served: queueing its consultation channel %s apart", call_id, own_id)
                caller = caller_of(call_id) or caller
                call_id = own_id
                kind = "consult"  # an agent's leg, not a new customer call (left out of inbound KPIs)
            lang = ""
            if not kind:  # the caller's own leg: the language the ACD noted on it before (CTI_LANG)
                reply = await chan.execute("GET VARIABLE CTI_LANG")
                lang = reply.data.strip() if reply.result == "1" else ""
            served = await acd.serve(chan, call_id, skill, None, caller, None, kind=kind, lang=lang)
            log.info("transferred call %s to queue %s: %s", call_id, skill, served.outcome)
        except (AgiHangup, AgiError) as exc:
            log.info("queue session ended: %s", exc)
        except Exception:
            log.exception("transfer of %s to queue %r failed; the dialplan falls back", call_id, skill)

    return handle


_XFER_PART = re.compile(r"^[A-Za-z0-9_-]{0,40}$")


def _transfer_route(acd: AcdRuntime) -> Any:
    """AGI /transfer/<agent>: a caller blind-transferred to an agent ([transfer-agent]); the ACD rings the
    agent and, if that fails, brings the caller back (`AcdRuntime.serve_transfer`). The transferring agent,
    queue and tier come from the caller's CTI_XFER (`<agent>/<queue>/<tier>`, set by the desktop's transfer)."""

    async def handle(chan: AgiChannel) -> None:
        parts = [p for p in chan.path.split("?")[0].split("/") if p]
        target = parts[1] if len(parts) > 1 else ""
        caller = chan.headers.get("agi_callerid", "")
        call_id = chan.headers.get("agi_uniqueid", "")
        try:
            reply = await chan.execute("GET VARIABLE CHANNEL(linkedid)")
            if reply.result == "1" and reply.data:
                call_id = reply.data
            reply = await chan.execute("GET VARIABLE CTI_XFER")
            fields = (reply.data if reply.result == "1" else "").split("/")
            if len(fields) != 3 or not all(_XFER_PART.match(f) for f in fields) or \
                    target not in acd.engine.agent_ids():
                log.warning("transfer of %s to agent %r: no usable CTI_XFER %r; the dialplan falls back",
                            call_id, target, reply.data[:100])
                return
            from_agent, queue, tier = fields
            served = await acd.serve_transfer(chan, call_id, target, from_agent=from_agent or None,
                                              skill=queue or None, tier=tier or None, caller=caller)
            log.info("transfer of %s to agent %s: %s", call_id, target, served.outcome)
        except (AgiHangup, AgiError) as exc:
            log.info("transfer session ended: %s", exc)
        except Exception:
            log.exception("transfer of %s to agent %r failed; the dialplan falls back", call_id, target)

    return handle


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


def _outbound_agent_route(acd: AcdRuntime) -> Any:
    """A customer who pressed 0 in an outbound call: into the ACD with the outbound skill and their tier,
    in the language their message was played in (MSG_LANG; its desk, if that language has one)."""

    async def handle(chan: AgiChannel) -> None:
        async def var(name: str) -> str:
            reply = await chan.execute(f"GET VARIABLE {name}")
            return reply.data if reply.result == "1" else ""

        try:
            call_id = await var("CHANNEL(linkedid)") or chan.headers.get("agi_uniqueid", "")
            skill = await var("OUT_SKILL") or "outbound"
            tier = await var("OUT_TIER") or None
            lang = await var("MSG_LANG")
            caller = chan.headers.get("agi_callerid", "") or chan.headers.get("agi_dnid", "")
            served = await acd.serve(chan, call_id, skill, tier, caller, None, lang=lang, route_by_language=True)
            log.info("outbound call %s to agent: %s", call_id, served.outcome)
        except (AgiHangup, AgiError) as exc:
            log.info("outbound-agent session ended: %s", exc)

    return handle


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


class NotLeading(RuntimeError):
    """The ACD is not running on this node (its leader features are stopped): the dialplan falls back."""


def _leader_only(leader: FeatureGroup, handler: AgiHandler) -> AgiHandler:
    """An AGI route into the ACD, callbacks or dialer: refused while the leader features are stopped (the
    session ends without CTI_DONE, so the dialplan's fallback takes the call, or the next CTI node)."""
    refused = LogBurst(log, "AGI session refused: the ACD is not running on this node; the dialplan falls back")

    async def handle(chan: AgiChannel) -> None:
        if not leader.running:
            refused.add(f"{chan.path} {chan.headers.get('agi_uniqueid', '')}")
            return
        await handler(chan)

    return handle


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
                     interrupt=_interrupter(server), servers=[s.name for s in cfg.asterisk],
                     claims=vote.claims, release_on_stop=vote.release_on_stop)
    to_acd = handoff_to(acd)
    agent_channels = AgentChannels.from_acd(acd_cfg)
    calls = AmiCallControl(server.trackers, server.ami, acd.engine, server.emit, server.clock.now,
                           queue_codes=acd_cfg.queue_codes, agent_of=agent_channels)

    server.agi_routes["outbound-agent"] = _leader_only(leader, _outbound_agent_route(acd))
    server.agi_routes["queue"] = _leader_only(leader, _queue_route(acd, calls.caller_number))
    server.agi_routes["transfer"] = _leader_only(leader, _transfer_route(acd))
    server.agi_routes["callback"] = _leader_only(leader, outbound.handle_agi)
    server.ami_listeners.append(_on_dial_end(acd))
    server.ami_listeners.append(hold_listener(acd))
    server.ami_listeners.append(transfer_listener(acd, agent_channels, on_transfer=calls.note_completed_transfer))
    server.ami_listeners.append(_on_dial_begin(acd, agent_channels))
    server.ami_listeners.append(outbound.on_ami_event)
    server.event_listeners.append(outbound.on_event)
    servers = ServerWatch(acd, lambda: leader.running)  # a lost Asterisk's agents out of routing until it is back
    server.event_listeners.append(servers.on_event)
    server.ami_listeners.append(servers.on_ami)
    fallback = _FallbackRecorder(server, FallbackQueues(agent_channels))
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
                        user_of=signed_in_leader, emit=server.emit)

    # Today's KPI figures from the event stream, with the report's definitions; pushed to supervisors.
    today = LiveKpiFeed(kpi_cfg, server.clock, engine=lambda: server.store.engine if server.store else None,
                        publish=lambda figures: server.http_app[DESKTOP_KEY].hub.publish(SUPERVISOR, "kpi", figures))
    server.event_listeners.append(today.on_event)
    install_desktop(server.http_app, engine=data_engine, agents=AcdAgentControl(acd), calls=calls,
                    wallboard=AcdWallboard(acd, today), customers=IvrCustomerLookup(ivr.runtime.data, data_engine,
                                                                             server.clock),
                    emit=server.emit, config=load_desktop_config(config_dir, calendar), clock=server.clock,
                    request_callback=outbound.request_callback, names=acd_cfg.names.public())
    server.event_listeners.append(server.http_app[BRIDGE_KEY].on_event)
    server.http_app.middlewares.append(_ops_guard(server.http_app[DESKTOP_KEY].sessions))
    server.http_app[HEALTH_DETAILS_KEY] = _supervisor_check(server.http_app[DESKTOP_KEY].sessions)

    leader.add("ACD", _acd_feature(server, acd, lambda: _prerender(ivr.tts, acd_cfg.fixed_texts())))
    leader.add("outbound", lambda: outbound.running(acd))
    recorder = install_recording(server, config_dir=config_dir, calendar=calendar, agent_of=agent_channels,
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
