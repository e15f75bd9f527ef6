"""HTTP API for campaigns: status (for the wallboard), results, the not-reached export, state changes;
and for the ACD's callbacks: the list, and cancelling one.

Mount with `add_routes(app, lambda: service)` on an app with the server's middlewares
(`ctiserver.web.guard.new_app`): the routes carry no authentication of their own (the
server's ops guard covers `/api/outbound`), refusals are raised as `ApiError` with stable
ids and rendered in the one error shape `{"error": {"id", "message", "details"}}`, and the
POSTs (bodiless) pass the app's cross-site check.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from ..web.errors import ApiError
from .callback_service import AcdCallbackService
from .export import not_reached_csv
from .service import OutboundService
from .store import CampaignStateError, OutboundError, UnknownCampaign

ServiceGetter = Callable[[], OutboundService | None]
T = TypeVar("T")
ACTIONS = ("start", "pause", "resume", "stop")


def _json(body: Any) -> web.Response:
    return web.json_response(body, dumps=lambda o: json.dumps(o, ensure_ascii=False, default=str))


def _running(svc: T | None, error_id: str, message: str) -> T:
    """The service, or 503 with a stable error id while it is not running (yet)."""
    if svc is None:
        raise ApiError(503, error_id, message)
    return svc


def add_routes(app: web.Application, get_service: ServiceGetter, prefix: str = "/api/outbound") -> None:
    def service() -> OutboundService:
        return _running(get_service(), "outbound_not_ready", "outbound is not running")

    async def campaigns(request: web.Request) -> web.Response:
        return _json(await service().status_all())

    async def results(request: web.Request) -> web.Response:
        try:
            return _json(await service().store.results(request.match_info["name"]))
        except UnknownCampaign as exc:
            raise ApiError(404, exc.error_id, str(exc)) from None

    async def not_reached(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            rows = await service().store.not_reached(name)
        except UnknownCampaign as exc:
            raise ApiError(404, exc.error_id, str(exc)) from None
        return web.Response(body=not_reached_csv(rows).encode("utf-8"), content_type="text/csv",
                            charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}-not-reached.csv"'})

    async def change(request: web.Request) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        if action not in ACTIONS:
            raise ApiError(404, "unknown_action", f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
        svc = service()
        try:
            state = await svc.store.change_state(name, action, time.time())
        except UnknownCampaign as exc:
            raise ApiError(404, exc.error_id, str(exc)) from None
        except CampaignStateError as exc:
            raise ApiError(409, exc.error_id, str(exc)) from None
        except OutboundError as exc:
            raise ApiError(400, exc.error_id, str(exc)) from None
        svc.dialer.wake()
        return _json({"campaign": name, "state": state})

    app.router.add_get(f"{prefix}/campaigns", campaigns)
    app.router.add_get(f"{prefix}/campaigns/{{name}}/results", results)
    app.router.add_get(f"{prefix}/campaigns/{{name}}/not-reached.csv", not_reached)
    app.router.add_post(f"{prefix}/campaigns/{{name}}/{{action}}", change)


def add_callback_routes(app: web.Application, get_callbacks: Callable[[], AcdCallbackService | None],
                        prefix: str = "/api/outbound") -> None:
    """Supervisors' view of ACD callbacks: the open ones (and the latest closed), and cancelling one."""

    def callbacks() -> AcdCallbackService:
        return _running(get_callbacks(), "callbacks_not_ready", "ACD callbacks are not running")

    async def listing(request: web.Request) -> web.Response:
        svc = callbacks()
        raw = request.query.get("limit", "200")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise ApiError(400, "bad_limit", "limit must be a whole number from 1 to 1000")
        rows = await svc.store.recent(int(raw))
        return _json({"counts": await svc.store.counts(), "callbacks": [r.public() for r in rows]})

    async def cancel(request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        if not raw.isdigit() or len(raw) > 12:
            raise ApiError(400, "bad_id", f"callback id {raw[:20]!r} is not a number")
        svc = callbacks()
        row = await svc.store.get(int(raw))
        if row is None:
            raise ApiError(404, "unknown_callback", f"no callback {raw}")
        if not await svc.cancel(row.id):
            raise ApiError(409, "callback_state", f"callback {raw} is {row.status}: only pending or queued "
                                                  "callbacks can be cancelled")
        return _json({"id": row.id, "status": "cancelled"})

    app.router.add_get(f"{prefix}/callbacks", listing)
    app.router.add_post(f"{prefix}/callbacks/{{id}}/cancel", cancel)
