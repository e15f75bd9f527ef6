"""HTTP API for campaigns: status (for the wallboard), results, the not-reached export, state changes.

Mount with `add_routes(app, lambda: service)`; the routes carry no authentication
of their own: the app's auth middleware (the web feature's) must cover `/api/`.
Errors are JSON `{"error_id": ..., "message": ...}` with stable ids.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .cli import not_reached_csv
from .service import OutboundService
from .store import CampaignStateError, OutboundError, UnknownCampaign

ServiceGetter = Callable[[], OutboundService | None]
ACTIONS = ("start", "pause", "resume", "stop")


def _error(status: int, error_id: str, message: str) -> web.Response:
    return web.json_response({"error_id": error_id, "message": message}, status=status)


def _json(body: Any) -> web.Response:
    return web.json_response(body, dumps=lambda o: json.dumps(o, ensure_ascii=False, default=str))


def add_routes(app: web.Application, get_service: ServiceGetter, prefix: str = "/api/outbound") -> None:
    def service() -> OutboundService:
        svc = get_service()
        if svc is None:
            raise web.HTTPServiceUnavailable(
                text=json.dumps({"error_id": "outbound_not_ready", "message": "outbound is not running"}),
                content_type="application/json")
        return svc

    async def campaigns(request: web.Request) -> web.Response:
        return _json(await service().status_all())

    async def results(request: web.Request) -> web.Response:
        try:
            return _json(await service().store.results(request.match_info["name"]))
        except UnknownCampaign as exc:
            return _error(404, exc.error_id, str(exc))

    async def not_reached(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            rows = await service().store.not_reached(name)
        except UnknownCampaign as exc:
            return _error(404, exc.error_id, str(exc))
        return web.Response(body=not_reached_csv(rows).encode("utf-8"), content_type="text/csv",
                            charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}-not-reached.csv"'})

    async def change(request: web.Request) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        if action not in ACTIONS:
            return _error(404, "unknown_action", f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
        svc = service()
        try:
            state = await svc.store.change_state(name, action, time.time())
        except UnknownCampaign as exc:
            return _error(404, exc.error_id, str(exc))
        except CampaignStateError as exc:
            return _error(409, exc.error_id, str(exc))
        except OutboundError as exc:
            return _error(400, exc.error_id, str(exc))
        svc.dialer.wake()
        return _json({"campaign": name, "state": state})

    app.router.add_get(f"{prefix}/campaigns", campaigns)
    app.router.add_get(f"{prefix}/campaigns/{{name}}/results", results)
    app.router.add_get(f"{prefix}/campaigns/{{name}}/not-reached.csv", not_reached)
    app.router.add_post(f"{prefix}/campaigns/{{name}}/{{action}}", change)
