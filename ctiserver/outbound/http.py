"""HTTP API for campaigns: status (for the wallboard), results, the not-reached export, state changes;
and for the ACD's callbacks: the list, and cancelling one.

Mount with `add_routes(app, lambda: service)` on an app with the server's middlewares
(`ctiserver.web.guard.new_app`): the routes carry no authentication of their own (the
server's ops guard covers `/api/outbound`), refusals are raised as `ApiError` with stable
ids and rendered in the one error shape `{"error": {"id", "message", "details"}}`, and the
POSTs (bodiless) pass the app's cross-site check. Each handler carries its part of the published
contract (`web.openapi.Operation`): roles, path patterns, replies and refusals.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from ..callbacks.service import AcdCallbackService
from ..web.errors import ApiError
from ..web.openapi import Operation, Reply, documented
from .export import not_reached_csv
from .service import OutboundService
from .store import CampaignStateError, OutboundError, UnknownCampaign

ServiceGetter = Callable[[], OutboundService | None]
T = TypeVar("T")
ACTIONS = ("start", "pause", "resume", "stop")
SUPERVISORS = frozenset({"supervisor", "admin"})  # the server's ops guard (wiring._ops_guard)
CAMPAIGN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # model.CampaignSpec.name
CALLBACK_ID = r"^[0-9]{1,12}$"
_CAMPAIGN = re.compile(CAMPAIGN)
_CALLBACK_ID = re.compile(CALLBACK_ID)
_LIMIT = re.compile(r"^[0-9]{1,4}$")
NOT_RUNNING = {503: "outbound_not_ready: the dialer is not running (yet)"}
CB_NOT_RUNNING = {503: "callbacks_not_ready: ACD callbacks are not running (yet)"}


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class CampaignStatusOut(_Out):
    campaign: str
    kind: str
    state: str
    title: str
    contacts: int
    pending: int
    done: int
    not_reached: int
    cancelled: int
    excluded: int
    live: int
    attempts: int
    finished_contacts: int
    deliver_by: float | None = Field(default=None, description="with a working-day deadline: epoch seconds")
    overdue: bool | None = None


class CampaignResultsOut(_Out):
    campaign: str
    kind: str
    state: str
    contacts: int
    reached: int
    not_reached: int
    pending: int
    attempt_outcomes: dict[str, int]
    attempts: int
    attempts_per_contact: dict[str, int]
    average_rating: float | None


class CampaignChangeOut(_Out):
    campaign: str
    state: str


class CallbackOut(_Out):
    id: int
    number: str
    skill: str
    tier: str
    reason: str
    status: str
    attempts: int
    due_ts: float
    next_ts: float


class CallbackListOut(_Out):
    counts: dict[str, int] = Field(description="callbacks per status")
    callbacks: list[CallbackOut] = Field(description="the open ones first, then the latest closed")


class CallbackCancelledOut(_Out):
    id: int
    status: str


class CallbacksQuery(BaseModel):
    """The query of GET /api/outbound/callbacks, as the handler parses it (documentation only)."""

    model_config = ConfigDict(extra="allow")

    limit: int = Field(default=200, ge=1, le=1000)


def _campaign(request: web.Request) -> str:
    name = request.match_info["name"]
    if not _CAMPAIGN.fullmatch(name):
        raise ApiError(404, "unknown_campaign", f"no campaign {name[:64]!r}")
    return name


def _op(summary: str, reply: Reply, **kw: Any) -> Operation:
    return Operation(summary=summary, replies={200: reply}, roles=SUPERVISORS, tags=("outbound",), **kw)


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

    @documented(_op("Every campaign's progress", Reply("campaigns", list[CampaignStatusOut]),
                    errors=NOT_RUNNING, operation_id="list_campaigns"))
    async def campaigns(request: web.Request) -> web.Response:
        return _json(await service().status_all())

    @documented(_op("One campaign's results", Reply("results", CampaignResultsOut), path={"name": CAMPAIGN},
                    errors={**NOT_RUNNING, 404: "unknown_campaign"}, operation_id="campaign_results"))
    async def results(request: web.Request) -> web.Response:
        name = _campaign(request)
        try:
            return _json(await service().store.results(name))
        except UnknownCampaign as exc:
            raise ApiError(404, exc.error_id, str(exc)) from None

    @documented(_op("The contacts a campaign did not reach, as CSV (UTF-8 with BOM, for Excel)",
                    Reply("CSV", content_type="text/csv", schema={"type": "string"},
                          headers={"Content-Disposition": "attachment; filename=<campaign>-not-reached.csv"}),
                    path={"name": CAMPAIGN}, errors={**NOT_RUNNING, 404: "unknown_campaign"},
                    operation_id="campaign_not_reached_csv"))
    async def not_reached(request: web.Request) -> web.Response:
        name = _campaign(request)
        try:
            rows = await service().store.not_reached(name)
        except UnknownCampaign as exc:
            raise ApiError(404, exc.error_id, str(exc)) from None
        return web.Response(body=not_reached_csv(rows).encode("utf-8"), content_type="text/csv",
                            charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}-not-reached.csv"'})

    @documented(_op("Start, pause, resume or stop a campaign (no body)",
                    Reply("the campaign's new state", CampaignChangeOut),
                    path={"name": CAMPAIGN, "action": "^(" + "|".join(ACTIONS) + ")$"},
                    errors={**NOT_RUNNING, 400: "outbound_error: the store refused", 404: "unknown_campaign, "
                            "unknown_action", 409: "campaign_state: not from the campaign's present state"},
                    operation_id="change_campaign"))
    async def change(request: web.Request) -> web.Response:
        name, action = _campaign(request), request.match_info["action"]
        if action not in ACTIONS:
            raise ApiError(404, "unknown_action", f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
        svc = service()
        try:
            state = await svc.store.change_state(name, action, svc.dialer.clock.now())
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
    # not the names of the GET routes beside it: POST .../results is a 405 (Allow: GET), not an unknown action
    app.router.add_post(f"{prefix}/campaigns/{{name}}/{{action:(?!results$|not-reached\\.csv$)[^/]+}}", change)


def add_callback_routes(app: web.Application, get_callbacks: Callable[[], AcdCallbackService | None],
                        prefix: str = "/api/outbound") -> None:
    """Supervisors' view of ACD callbacks: the open ones (and the latest closed), and cancelling one."""

    def callbacks() -> AcdCallbackService:
        return _running(get_callbacks(), "callbacks_not_ready", "ACD callbacks are not running")

    @documented(_op("ACD callbacks: how many per status, the open ones and the latest closed",
                    Reply("callbacks", CallbackListOut), query=CallbacksQuery, errors=CB_NOT_RUNNING,
                    operation_id="list_callbacks"))
    async def listing(request: web.Request) -> web.Response:
        svc = callbacks()
        raw = request.query.get("limit", "200")
        if not _LIMIT.fullmatch(raw) or not 1 <= int(raw) <= 1000:
            raise ApiError(400, "bad_limit", "limit must be a whole number from 1 to 1000")
        rows = await svc.store.recent(int(raw))
        return _json({"counts": await svc.store.counts(), "callbacks": [r.public() for r in rows]})

    @documented(_op("Cancel a pending or queued callback (no body)", Reply("cancelled", CallbackCancelledOut),
                    path={"id": CALLBACK_ID},
                    errors={**CB_NOT_RUNNING, 400: "bad_id: the id is not a number", 404: "unknown_callback",
                            409: "callback_state: only pending or queued callbacks can be cancelled"},
                    operation_id="cancel_callback"))
    async def cancel(request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        if not _CALLBACK_ID.fullmatch(raw):
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
