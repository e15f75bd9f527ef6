"""Build the desktop: API routes, WebSocket `/ws`, pages `/agent` and `/wallboard`, and their lifecycle.

Two ways in, same routes:

* `create_desktop_app(...) -> (app, hub)`: a standalone aiohttp Application (tests, or
  a server of its own). Its routes live at `/api/...`, `/ws`, `/agent`, `/wallboard`,
  `/static/...`, so it cannot be mounted with `add_subapp` (aiohttp sub-apps need a
  prefix of their own); use the second way for the main server.
* `install_desktop(main_app, ...) -> hub`: adds the same routes to an existing
  app and closes the pages' sockets at its shutdown; the server runs the desktop's
  background work (wallboard pusher, screen-pop bridge, work-order watch) as the
  feature `desktop_running(app)` (see ctiserver/lifecycle.py).

Both put the server's HTTP middlewares (guard.py: errors in one JSON shape, the cross-site
and JSON-only check of every state-changing request) on the app they serve from.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from ..clock import Clock
from ..events import Event
from ..lifecycle import TaskOwner, started
from .api import Desktop
from .bridge import DesktopBridge
from .config import DesktopConfig
from .errors import ApiError
from .guard import PAGE_HEADERS, install_middlewares, new_app, same_origin
from .openapi import Operation, Reply, documented
from .ports import AgentControl, CallControl, CustomerLookup, WallboardSource
from .workorder_watch import WorkorderWatch
from .ws import SUPERVISOR, Hub

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
DESKTOP_KEY = web.AppKey("desktop", Desktop)
HUB_KEY = web.AppKey("desktop_hub", Hub)
BRIDGE_KEY = web.AppKey("desktop_bridge", DesktopBridge)
WATCH_KEY = web.AppKey("desktop_workorder_watch", WorkorderWatch)


STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
STATIC_NAME = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*\.(js|css|svg)$"
_STATIC_NAME = re.compile(STATIC_NAME)


def _page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    @documented(Operation(summary=f"The {name.removesuffix('.html')} page", roles=None, tags=("pages",),
                          replies={200: Reply("the page", content_type="text/html", schema={"type": "string"})},
                          operation_id="page_" + name.removesuffix(".html")))
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / name, headers={**PAGE_HEADERS, "Content-Type": "text/html"})
    return handler


@documented(Operation(summary="The pages' scripts, styles and pictures", roles=None, tags=("pages",),
                      replies={200: Reply("the file", content_type=tuple(STATIC_TYPES.values()),
                                          schema={"type": "string"})},
                      path={"name": STATIC_NAME}, errors={404: "not-found: no such file"},
                      operation_id="static_file"))
async def _static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = STATIC_DIR / name
    if not _STATIC_NAME.fullmatch(name) or not path.is_file():
        raise ApiError(404, "not-found", "no such file")
    return web.FileResponse(path, headers={**PAGE_HEADERS, "Content-Type": STATIC_TYPES[path.suffix]})


# The opening handshake of RFC 6455 as this server takes it: each header must match (else 400 bad-handshake)
WS_HANDSHAKE = {
    "Upgrade": r"^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$",
    "Connection": r"^([^,]*,)*[ \t]*[Uu][Pp][Gg][Rr][Aa][Dd][Ee][ \t]*(,[^,]*)*$",  # a list holding "upgrade"
    "Sec-WebSocket-Version": r"^13$",
    "Sec-WebSocket-Key": r"^[A-Za-z0-9+/]{21}[AQgw]==$",  # 16 bytes in base64
}
_WS_HANDSHAKE = {name: re.compile(pattern) for name, pattern in WS_HANDSHAKE.items()}
WS_OP = Operation(summary="The desktop's live channel: a WebSocket (see web/ws.py for its messages)", tags=("pages",),
                  replies={101: Reply("switching to the WebSocket protocol")}, headers=WS_HANDSHAKE,
                  errors={400: "bad-handshake: not a WebSocket opening handshake",
                          403: "bad-origin: opened from another site"}, operation_id="websocket")


def _ws_handler(desktop: Desktop) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    @documented(WS_OP)
    async def handler(request: web.Request) -> web.StreamResponse:
        if not same_origin(request):
            raise ApiError(403, "bad-origin", "WebSocket from another site refused")
        user = await desktop.sessions.require(request)
        for name, pattern in _WS_HANDSHAKE.items():
            if not pattern.fullmatch(request.headers.get(name, "")):
                raise ApiError(400, "bad-handshake", f"not a WebSocket opening handshake: {name} is missing or "
                                                     "not as RFC 6455 has it")
        return await desktop.hub.serve(request, user, desktop.ws_snapshot)
    return handler


async def _push_wallboard(desktop: Desktop, tasks: TaskOwner) -> None:
    """Push a wallboard snapshot to supervisor pages every `wallboard_interval_s` while any is connected."""
    while await tasks.idle(desktop.config.wallboard_interval_s):
        if not desktop.hub.has_subscribers(SUPERVISOR):
            continue
        try:
            desktop.hub.publish_wallboard(await desktop.wallboard_snapshot())
        except Exception:
            log.exception("wallboard snapshot failed; retrying next tick")


@asynccontextmanager
async def desktop_running(app: web.Application) -> AsyncIterator[None]:
    """The desktop's background work on an app it was installed on, as one feature: the wallboard pusher,
    the screen-pop bridge and the work-order watch start together and stop together (a round of the
    watch under way may finish first, up to 5 s). The pages' sockets are closed at the app's shutdown,
    before this stops, so that the HTTP server does not wait for them."""
    desktop, bridge, watch = app[DESKTOP_KEY], app[BRIDGE_KEY], app[WATCH_KEY]
    async with AsyncExitStack() as stack:
        await bridge.start()
        stack.push_async_callback(bridge.close)
        await stack.enter_async_context(started(watch))
        tasks = await stack.enter_async_context(TaskOwner("desktop"))
        tasks.spawn(_push_wallboard(desktop, tasks), name="desktop-wallboard")
        yield


def _build(*, engine: AsyncEngine, agents: AgentControl, calls: CallControl, wallboard: WallboardSource,
           customers: CustomerLookup, emit: Callable[[Event], None], config: DesktopConfig, clock: Clock,
           request_callback: Callable[..., Awaitable[None]] | None, names: dict[str, Any] | None) -> Desktop:
    hub = Hub(clock=clock, queue_size=config.ws_queue_size, replay_size=config.ws_replay_size)
    return Desktop(engine=engine, agents=agents, calls=calls, wallboard=wallboard, customers=customers,
                   emit=emit, config=config, clock=clock, hub=hub, request_callback=request_callback, names=names)


def install_desktop(app: web.Application, *, engine: AsyncEngine, agents: AgentControl, calls: CallControl,
                    wallboard: WallboardSource, customers: CustomerLookup, emit: Callable[[Event], None],
                    config: DesktopConfig, clock: Clock,
                    request_callback: Callable[..., Awaitable[None]] | None = None,
                    names: dict[str, Any] | None = None) -> Hub:
    """Add the desktop's routes to `app` (before it starts); returns the Hub to publish pops/states to.
    Its background work runs while `desktop_running(app)` is entered (the server adds it as a feature;
    `create_desktop_app` puts it in the app's cleanup_ctx).

    Feed the server's events to `app[BRIDGE_KEY].on_event` (a plain, non-blocking listener) and
    the desktop pops calls, pushes agent states and call ends by itself (see bridge.py).

    `request_callback(workorder_id=int, number=str, category=str, account=str|None, requested=bool,
    anonymous=bool, call_id=str|None, agent_id=str|None)` is awaited on every work-order closure
    (`requested`: the agent ticked "callback"); the outbound side decides whether to call back and records
    it before the desktop is answered.

    `names`: display names of the ACD's queues and tiers ({"queues": {id: {zh, en}}, "tiers": ...}),
    which the pages show instead of the ids.
    """
    desktop = _build(engine=engine, agents=agents, calls=calls, wallboard=wallboard, customers=customers,
                     emit=emit, config=config, clock=clock, request_callback=request_callback, names=names)
    install_middlewares(app)
    app.add_routes(desktop.routes())
    app.add_routes([
        web.get("/ws", _ws_handler(desktop)),
        web.get("/agent", _page("agent.html")),
        web.get("/wallboard", _page("wallboard.html")),
        web.get("/static/{name}", _static),
    ])
    bridge = DesktopBridge(desktop.hub, customers)
    watch = WorkorderWatch(engine, desktop.hub, emit, clock)  # work-order reminders and escalations

    async def close_sockets(_app: web.Application) -> None:
        await desktop.hub.close()

    app.on_shutdown.append(close_sockets)
    app[DESKTOP_KEY] = desktop
    app[HUB_KEY] = desktop.hub
    app[BRIDGE_KEY] = bridge
    app[WATCH_KEY] = watch
    return desktop.hub


def create_desktop_app(*, engine: AsyncEngine, agents: AgentControl, calls: CallControl,
                       wallboard: WallboardSource, customers: CustomerLookup, emit: Callable[[Event], None],
                       config: DesktopConfig, clock: Clock,
                       request_callback: Callable[..., Awaitable[None]] | None = None,
                       names: dict[str, Any] | None = None) -> tuple[web.Application, Hub]:
    """A standalone aiohttp app serving the desktop, and its Hub. See `install_desktop` for the arguments."""
    app = new_app(client_max_size=config.max_body_bytes)
    hub = install_desktop(app, engine=engine, agents=agents, calls=calls, wallboard=wallboard, customers=customers,
                          emit=emit, config=config, clock=clock, request_callback=request_callback, names=names)
    app.cleanup_ctx.append(desktop_running)
    return app, hub
