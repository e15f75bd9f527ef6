"""Assemble a CtiServer with its features from a configuration folder.

The features are independent modules; this is the one place that knows how
they connect:

    caller ─AGI /ivr─▶ IVR service ─queue node─▶ ACD runtime ─Dial─▶ agent
    AMI DialBegin / DialEnd(ANSWER) ─▶ ACD runtime.note_ringing / note_answered   (ring time, answer time)
    an agent offered while the caller hears an announcement ─▶ AMI ControlPlayback stops it
    ACD hooks (offer/answer/end) ─▶ desktop hub (screen-pop over WebSocket)
    outbound ─Originate─▶ Asterisk;  "0" ─AGI /outbound-agent─▶ ACD (outbound skill)
    ACD callbacks (abandon, kept place) ─▶ outbound callbacks ─Originate agent─▶ AGI /callback ─Dial─▶ customer
    event store ◀─ every feature's events;  /reports ◀─ KPIs over the store
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .acd.config import load_acd_config
from .acd.engine import AcdEngine
from .acd.fallback import FallbackQueues
from .acd.hold import hold_listener
from .acd.runtime import AcdHooks, AcdRuntime
from .agi_types import AgiChannel, AgiError, AgiHangup
from .ami.message import event_time
from .calendar import load_calendar
from .calls import AgentChannels, AmiCallControl, transfer_listener
from .config import ServerConfig
from .events import Event, Kind
from .ivr.data import SqlDataProvider, load_sample_data
from .ivr.runtime import handoff_to
from .ivr.service import IvrService
from .kpi.config import load_kpi_config
from .kpi.http import add_report_routes
from .outbound.http import add_callback_routes
from .outbound.http import add_routes as add_outbound_routes
from .outbound.service import attach_outbound
from .server import HEALTH_DETAILS_KEY, CtiServer
from .store.engine import make_engine
from .web.acd_ports import AcdAgentControl, AcdWallboard
from .web.api import SUPERVISORS
from .web.app import BRIDGE_KEY, DESKTOP_KEY, install_desktop
from .web.auth import Sessions
from .web.config import load_desktop_config
from .web.customers import IvrCustomerLookup

log = logging.getLogger(__name__)


@dataclass
class Features:
    """The live feature objects of a server (tests and the demo reach in here)."""

    acd: AcdRuntime
    ivr: IvrService
    outbound: dict[str, Any]
    hooks: AcdHooks
    calls: AmiCallControl
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
    they come; after every (re)connect, the fallback calls already talking are adopted from the channel
    list so that their end is recorded."""

    def __init__(self, server: CtiServer, queues: FallbackQueues) -> None:
        self.server, self.queues = server, queues
        self._tasks: set[asyncio.Task[None]] = set()

    def on_ami(self, name: str, msg: Any) -> None:
        for event in self.queues.feed(name, msg, self.server.clock.now()):
            self.server.emit(event)

    def on_event(self, event: Event) -> None:
        if event.kind == Kind.AMI_CONNECTED and event.server in self.server.ami:
            task = asyncio.get_running_loop().create_task(self._adopt(event.server),
                                                          name=f"fallback-adopt-{event.server}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

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

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()


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
    """Outbound control and KPI reports are for supervisors and admins (the desktop's sessions)."""
    from aiohttp import web

    guarded = ("/api/outbound", "/api/reports")

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(guarded):
            await sessions.require(request, SUPERVISORS)
        return await handler(request)

    return guard


class TodayFigures:
    """Today's service level and abandon rate for the wallboard: the KPI report, refreshed in the background.

    The wallboard asks synchronously and often; the report is SQL over the day's events, so it is
    computed every `every_s` by one task and served from the cache.
    """

    def __init__(self, server: CtiServer, kpi_cfg: Any, every_s: float = 15.0) -> None:
        self.server, self.kpi_cfg, self.every_s = server, kpi_cfg, every_s
        self.figures: dict[str, Any] = {}

    def __call__(self) -> dict[str, Any]:
        return dict(self.figures)

    async def refresh(self) -> None:
        from .kpi.report import build_report

        now = self.server.clock.now()
        midnight = self.kpi_cfg.calendar.at(self.kpi_cfg.calendar.today(now))
        report = await build_report(self.server.store.engine, self.kpi_cfg, midnight, now, by=[],
                                    now=now)
        m = report["total"]
        self.figures = {"service_level": m.get("service_level") or 0.0, "abandon_rate": m.get("abandon_rate") or 0.0,
                        "answered_today": m.get("answered", 0), "offered_today": m.get("calls_offered", 0)}

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # the database may be away: keep the last figures
                log.warning("wallboard KPI refresh failed: %s", exc)
            await asyncio.sleep(self.every_s)


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


def _callback_route(outbound: dict[str, Any]) -> Any:
    """AGI /callback: an agent answered a callback's ring (the dialplan dials the customer itself if
    the callback service is not running)."""

    async def handle(chan: AgiChannel) -> None:
        service = outbound.get("callbacks")
        if service is None:
            log.warning("callback leg %s answered but ACD callbacks are not running",
                        chan.headers.get("agi_uniqueid", ""))
            return
        await service.handle_agi(chan)

    return handle


async def _restore_agents(server: CtiServer, acd: AcdRuntime, *, wait_s: float = 15.0,
                          window_s: float = 12 * 3600.0) -> None:
    """After a restart: agents logged in before it are logged in again (see ctiserver/acd/restore.py),
    once Asterisk told us who is still on a call (or, if it cannot, nobody is made available)."""
    from .acd.restore import apply_restore, busy_agents, restore_plan
    from .store.query import last_agent_states

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


async def build_server(config_dir: Path, cfg: ServerConfig, *, sandbox: bool = False,
                       sample_data: bool = False, base_dir: Path | None = None) -> CtiServer:
    config_dir = Path(config_dir)
    sandbox_info = None
    if sandbox:  # bring it up first: the AMI link goes to the sandbox's own port, user and secret
        from . import sandbox as sb
        from .ivr.settings import load_ivr_settings
        from .ivr.tts import Tts

        project = Path(base_dir) if base_dir else config_dir.resolve().parent
        sounds = Tts.from_settings(load_ivr_settings(config_dir).tts, project).cache_dir  # shown to Asterisk
        sandbox_info = await asyncio.to_thread(sb.up, sounds_dir=sounds)
        cfg = cfg.for_sandbox(sandbox_info.ami_host, sandbox_info.ami_port, sandbox_info.ami_user,
                              sandbox_info.ami_secret)
    server = CtiServer(config_dir, cfg, base_dir=base_dir)
    data_engine = make_engine(server.db_url)

    calendar = load_calendar(config_dir)  # the site's time zone, days and hours: read once, handed to every feature
    acd_cfg = load_acd_config(config_dir, calendar)
    hooks = AcdHooks()
    acd = AcdRuntime(AcdEngine(acd_cfg), server.clock, server.emit, hooks=hooks)
    ivr = IvrService(config_dir, emit=server.emit, handoff=handoff_to(acd),
                     data=SqlDataProvider(data_engine, calendar.timezone), project_dir=server.base_dir,
                     clock=server.clock, calendar=calendar)

    async def say(chan: AgiChannel, text: str, lang: str) -> None:
        """What the ACD says to a caller (announcements, messages, voicemail) through the IVR's TTS,
        in the caller's language."""
        sound = await ivr.tts.sound(text, lang)
        await chan.execute(f'STREAM FILE {sound} ""')

    acd.say = say
    acd.recordings_dir = ivr.settings.recordings_dir  # voicemails go where the IVR's complaint messages go
    server.agi_routes["ivr"] = ivr.handle
    server.agi_routes["outbound-agent"] = _outbound_agent_route(acd)
    server.agi_routes["queue"] = _queue_route(acd, lambda call_id: calls.caller_number(call_id))
    server.agi_routes["transfer"] = _transfer_route(acd)
    server.ami_listeners.append(_on_dial_end(acd))
    server.ami_listeners.append(hold_listener(acd))
    outbound = attach_outbound(server, prompt=ivr.tts.sound, acd=acd, say=say, calendar=calendar)
    server.agi_routes["callback"] = _callback_route(outbound)
    add_outbound_routes(server.http_app, lambda: outbound.get("service"))
    add_callback_routes(server.http_app, lambda: outbound.get("callbacks"))

    kpi_cfg = load_kpi_config(config_dir, calendar)
    add_report_routes(server.http_app, lambda: server.store.engine, kpi_cfg, now=server.clock.now,
                      names=acd_cfg.names.public())

    desk_cfg = load_desktop_config(config_dir, calendar)
    agent_channels = AgentChannels.from_acd(acd_cfg)
    calls = AmiCallControl(server.trackers, server.ami, acd.engine, server.emit, server.clock.now,
                           queue_codes=acd_cfg.queue_codes, agent_of=agent_channels)
    server.ami_listeners.append(transfer_listener(acd, agent_channels, on_transfer=calls.note_completed_transfer))
    server.ami_listeners.append(_on_dial_begin(acd, agent_channels))
    acd.interrupt = _interrupter(server)
    fallback = _FallbackRecorder(server, FallbackQueues(agent_channels))
    server.ami_listeners.append(fallback.on_ami)
    server.event_listeners.append(fallback.on_event)

    def request_callback(**kw: Any) -> None:
        svc = outbound.get("service")
        if svc is None:
            if kw.get("requested", True):
                raise RuntimeError("the outbound dialer is not running")
            log.warning("work order %s closed while the outbound dialer is not running: no automatic "
                        "satisfaction callback", kw.get("workorder_id"))
            return
        svc.request_callback(**kw)

    today = TodayFigures(server, kpi_cfg)
    install_desktop(server.http_app, engine=data_engine, agents=AcdAgentControl(acd), calls=calls,
                    wallboard=AcdWallboard(acd, today), customers=IvrCustomerLookup(ivr.runtime.data, data_engine,
                                                                             server.clock),
                    emit=server.emit, config=desk_cfg, clock=server.clock, request_callback=request_callback,
                    names=acd_cfg.names.public())
    server.event_listeners.append(server.http_app[BRIDGE_KEY].on_event)
    server.http_app.middlewares.append(_ops_guard(server.http_app[DESKTOP_KEY].sessions))
    server.http_app[HEALTH_DETAILS_KEY] = _supervisor_check(server.http_app[DESKTOP_KEY].sessions)

    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        if sample_data:
            await load_sample_data(data_engine, config_dir, server.clock.now())
        await ivr.start()
        await acd.start()
        tasks.append(asyncio.create_task(_prerender(ivr.tts, acd_cfg.fixed_texts()), name="acd-prerender"))
        tasks.append(asyncio.create_task(today.run(), name="wallboard-kpi"))
        tasks.append(asyncio.create_task(_restore_agents(server, acd), name="acd-restore-agents"))

    async def stop() -> None:
        fallback.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await acd.stop()
        await ivr.stop()
        await data_engine.dispose()

    server.on_start(start)
    server.on_stop(stop)
    server.features = Features(acd=acd, ivr=ivr, outbound=outbound, hooks=hooks, calls=calls,
                               sandbox=sandbox_info, extra={"fallback": fallback.queues})
    return server
