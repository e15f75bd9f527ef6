"""HTTP for repair orders: the dispatch board (/dispatch, its API), and the crew's mobile page.

    GET  /dispatch                         the board (dispatchers, supervisors; signs in like /wallboard)
    GET  /api/repair/orders                every open order and those closed today, with deadlines
    POST /api/repair/orders                dispatch an order to the area's crew (201: the order, the crew link)
    POST /api/repair/orders/{id}/{step}    a step on the crew's behalf (ack, arrive, report, restore, cancel)
    GET  /crew/{token}                     the crew's page for one order (the token is the credential)
    GET  /api/crew/{token}                 that order
    POST /api/crew/{token}/{step}          the crew's step (body for report/restore: cause, location, expected_ts)
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..events import Event
from ..web.errors import ApiError
from ..web.guard import PAGE_HEADERS
from ..web.openapi import Operation, Reply, documented
from . import engine
from .engine import IllegalStep
from .kpis import loop_kpis
from .service import NoCrew, RepairService
from .store import ConcurrentChange, UnknownOrder

DISPATCHERS = frozenset({"dispatcher", "supervisor", "admin"})
STATIC = Path(__file__).with_name("static")
STEP = r"^(ack|arrive|report|restore|cancel)$"
TOKEN = r"^[A-Za-z0-9_-]{16,32}$"
ORDER_ID = r"^[0-9]{1,12}$"
_STEP, _TOKEN, _ORDER_ID = re.compile(STEP), re.compile(TOKEN), re.compile(ORDER_ID)
FILES = {"dispatch.js": "text/javascript", "crew.js": "text/javascript", "crew.css": "text/css"}
FILE = r"^(dispatch\.js|crew\.js|crew\.css)$"
Require = Callable[[web.Request, frozenset[str]], Awaitable[Any]]


class DispatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    area: str = Field(min_length=1, max_length=60)
    outage_id: int | None = Field(default=None, ge=1)
    workorder_id: int | None = Field(default=None, ge=1)
    crew: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,20}$")


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cause: str = Field(default="", max_length=200)
    location: str = Field(default="", max_length=200)
    expected_ts: float | None = Field(default=None, gt=0)


class OrderOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int
    crew: str
    team: str
    area: str
    area_class: str
    stage: str
    dispatched_ts: float
    deadlines: list[dict[str, Any]] = Field(description="steps still to do: step, warn_ts, due_ts, overdue")


class DispatchedOut(BaseModel):
    order: OrderOut
    crew_url: str = Field(description="the crew's page for this order (sent to the crew's phone)")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False, default=str))


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    raw = await request.content.read(65537)
    if len(raw) > 65536:
        raise ApiError(413, "body-too-large", "request body over 65536 bytes")
    try:
        data = json.loads(raw.decode("utf-8")) if raw else {}
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "bad-json", "request body is not valid UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid", "request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(p) for p in e["loc"]) or "body"
        raise ApiError(422, "invalid", f"{where}: {e['msg']}",
                       details=[{"loc": [str(p) for p in x["loc"]], "message": x["msg"], "type": x["type"]}
                                for x in exc.errors()]) from None


class KpiQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: int = Field(default=1, ge=1, le=93, description="the window: this many days up to now")


class KpisOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    arrival_by_class: dict[str, dict[str, Any]]
    report_on_time_rate: float | None
    avg_restoration_min: float | None
    repeat_reports_per_outage: float | None
    sms: dict[str, Any]
    notice_coverage: float | None


Fetch = Callable[[float, float], Awaitable[list[Event]]]


def add_repair_routes(app: web.Application, get_service: Callable[[], RepairService | None],
                      require: Require, fetch_events: Fetch | None = None) -> None:
    def service() -> RepairService:
        svc = get_service()
        if svc is None:
            raise ApiError(503, "repair_not_ready", "repair orders are not running (yet)")
        return svc

    def view(svc: RepairService, row: dict[str, Any]) -> dict[str, Any]:
        order = engine.Order(id=row["id"], crew=row["crew"], area=row["area"], area_class=row["area_class"],
                             stage=row["stage"], dispatched_ts=row["dispatched_ts"], arrived_ts=row["arrived_ts"],
                             expected_ts=row["expected_ts"])
        now = svc.clock.now()
        crew = svc.crews.crew(row["crew"])
        keep = ("id", "crew", "area", "area_class", "stage", "outage_id", "workorder_id", "dispatched_ts", "ack_ts",
                "arrived_ts", "reported_ts", "restored_ts", "expected_ts", "cause", "location")
        return {**{k: row[k] for k in keep}, "team": crew.team if crew else row["crew"],
                "crew_phone": crew.phone if crew else "",
                "escalated": sorted(a for a in row["alerted"].split(",") if a.endswith(".escalation")),
                "deadlines": [{"step": d.step, "warn_ts": d.warn_ts, "due_ts": d.due_ts, "overdue": now > d.due_ts}
                              for d in engine.deadlines(order, svc.table)]}

    def errors(**more: str) -> dict[int, str]:
        return {503: "repair_not_ready", **{int(k[1:]): v for k, v in more.items()}}

    def page(name: str, summary: str, **kw: Any) -> Any:
        @documented(Operation(summary=summary, roles=None, tags=("pages",), operation_id="page_" + name,
                              replies={200: Reply("the page", content_type="text/html", schema={"type": "string"})},
                              **kw))
        async def handler(request: web.Request) -> web.StreamResponse:
            if "token" in request.match_info and not _TOKEN.fullmatch(request.match_info["token"]):
                raise ApiError(404, "unknown-order", "no such repair order")
            return web.FileResponse(STATIC / f"{name}.html", headers={**PAGE_HEADERS, "Content-Type": "text/html"})
        return handler

    @documented(Operation(summary="The dispatch board's and the crew page's scripts and style", roles=None,
                          tags=("pages",), path={"name": FILE}, errors={404: "not-found: no such file"},
                          replies={200: Reply("the file", content_type=("text/javascript", "text/css"),
                                              schema={"type": "string"})}, operation_id="repair_file"))
    async def files(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in FILES:
            raise ApiError(404, "not-found", "no such file")
        return web.FileResponse(STATIC / name, headers={**PAGE_HEADERS, "Content-Type": FILES[name]})

    @documented(Operation(summary="Repair orders: open ones and those closed in the last day, with deadlines",
                          replies={200: Reply("orders", list[OrderOut])}, roles=DISPATCHERS, tags=("repair",),
                          operation_id="list_repair_orders", errors=errors()))
    async def board(request: web.Request) -> web.Response:
        await require(request, DISPATCHERS)
        svc = service()
        rows = await svc.store.board(svc.clock.now() - 86400)
        return _json([view(svc, r) for r in rows])

    @documented(Operation(summary="Dispatch a repair order to the crew serving the area (or the crew named)",
                          replies={201: Reply("dispatched", DispatchedOut)}, roles=DISPATCHERS, tags=("repair",),
                          body=DispatchIn, operation_id="dispatch_repair",
                          errors=errors(e422="invalid; no-crew: no crew serves the area")))
    async def dispatch(request: web.Request) -> web.Response:
        user = await require(request, DISPATCHERS)
        body = await _body(request, DispatchIn)
        svc = service()
        try:
            order, token = await svc.dispatch(body.area, outage_id=body.outage_id, workorder_id=body.workorder_id,
                                              user=getattr(user, "agent_no", ""), crew_id=body.crew)
        except NoCrew as exc:
            raise ApiError(422, "no-crew", str(exc)) from None
        _, row = await svc.store.get(order.id)
        return _json({"order": view(svc, row), "crew_url": f"/crew/{token}"}, 201)

    async def _act(svc: RepairService, order_id: int, step: str, body: StepIn, user: str) -> dict[str, Any]:
        if not _STEP.fullmatch(step):
            raise ApiError(404, "unknown-step", f"no step {step[:20]!r}")
        try:
            order = await svc.act(order_id, step, user=user, cause=body.cause, location=body.location,
                                  expected_ts=body.expected_ts)
        except UnknownOrder as exc:
            raise ApiError(404, "unknown-order", str(exc)) from None
        except IllegalStep as exc:
            raise ApiError(409, "illegal-step", str(exc)) from None
        except ConcurrentChange as exc:
            raise ApiError(409, "concurrent-change", str(exc)) from None
        except ValueError as exc:
            raise ApiError(422, "invalid", str(exc)) from None
        _, row = await svc.store.get(order.id)
        return view(svc, row)

    step_errors = errors(e404="unknown-order, unknown-step", e409="illegal-step: not from the order's present stage;"
                         " concurrent-change", e422="invalid: a report needs cause, location, expected_ts")

    @documented(Operation(summary="A step on the crew's behalf (dispatcher)", replies={200: Reply("order", OrderOut)},
                          roles=DISPATCHERS, tags=("repair",), body=StepIn, path={"id": ORDER_ID, "step": STEP},
                          operation_id="repair_step", errors=step_errors))
    async def step(request: web.Request) -> web.Response:
        user = await require(request, DISPATCHERS)
        raw = request.match_info["id"]
        if not _ORDER_ID.fullmatch(raw):
            raise ApiError(404, "unknown-order", f"no repair order {raw[:20]!r}")
        body = await _body(request, StepIn)
        return _json(await _act(service(), int(raw), request.match_info["step"], body, getattr(user, "agent_no", "")))

    async def _by_token(svc: RepairService, token: str) -> dict[str, Any]:
        if not _TOKEN.fullmatch(token):
            raise ApiError(404, "unknown-order", "no such repair order")
        try:
            _, row = await svc.store.by_token(token)
        except UnknownOrder as exc:
            raise ApiError(404, "unknown-order", str(exc)) from None
        return row

    @documented(Operation(summary="The crew's order (the token in its link is the credential)",
                          replies={200: Reply("order", OrderOut)}, roles=None, tags=("repair",),
                          path={"token": TOKEN}, operation_id="crew_order", errors=errors(e404="unknown-order")))
    async def crew_order(request: web.Request) -> web.Response:
        svc = service()
        return _json(view(svc, await _by_token(svc, request.match_info["token"])))

    @documented(Operation(summary="The crew's step: ack, arrive, report (cause, location, expected_ts), restore",
                          replies={200: Reply("order", OrderOut)}, roles=None, tags=("repair",), body=StepIn,
                          path={"token": TOKEN, "step": STEP}, operation_id="crew_step", errors=step_errors))
    async def crew_step(request: web.Request) -> web.Response:
        svc = service()
        row = await _by_token(svc, request.match_info["token"])
        body = await _body(request, StepIn)
        return _json(await _act(svc, row["id"], request.match_info["step"], body, f"crew:{row['crew']}"))

    @documented(Operation(summary="KPIs of the outage and repair loop over the last `days` days",
                          replies={200: Reply("kpis", KpisOut)}, roles=DISPATCHERS, tags=("repair",),
                          query=KpiQuery, operation_id="repair_kpis", errors=errors()))
    async def kpis(request: web.Request) -> web.Response:
        await require(request, DISPATCHERS)
        try:
            q = KpiQuery.model_validate(dict(request.query))
        except ValidationError as exc:
            e = exc.errors()[0]
            raise ApiError(400, "bad-query", f"{'.'.join(str(p) for p in e['loc']) or 'query'}: {e['msg']}") from None
        svc = service()
        now = svc.clock.now()
        events = await fetch_events(now - q.days * 86400, now) if fetch_events is not None else []
        return _json(loop_kpis(events))

    app.router.add_get("/api/repair/kpis", kpis)
    app.router.add_get("/dispatch", page("dispatch", "The dispatch board"))
    app.router.add_get("/repair/{name}", files)
    app.router.add_get("/crew/{token}", page("crew", "The crew's page for one order", path={"token": TOKEN},
                                             errors={404: "unknown-order"}))
    app.router.add_get("/api/repair/orders", board)
    app.router.add_post("/api/repair/orders", dispatch)
    app.router.add_post("/api/repair/orders/{id}/{step}", step)
    app.router.add_get("/api/crew/{token}", crew_order)
    app.router.add_post("/api/crew/{token}/{step}", crew_step)
