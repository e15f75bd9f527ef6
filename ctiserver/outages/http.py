"""REST for outages: dispatchers (and supervisors, admins) add, update and close them; everyone logged in
reads them. Every route is in the OpenAPI document; every error is the one shape (web/errors.py).

    GET   /api/outages              list (?status=open|closed)
    POST  /api/outages              add (201): the outage, warnings (e.g. under 7 days' notice), notices
    GET   /api/outages/{id}         one, with its audit trail
    PATCH /api/outages/{id}         change cause, scope, start, expected restoration
    POST  /api/outages/{id}/close   power is back (body: {"end_ts": ...} or {} for now)
    POST  /api/outages/{id}/reports a work order about it (agent desktop's outage form): attached
    GET   /api/outages/{id}/not-reached   its customers not reached by call or SMS after the retries
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from ..outbound.store import OutboundStore
from ..sms.store import SmsStore
from ..web.errors import ApiError
from ..web.openapi import ANY_ROLE, Operation, Reply, documented
from ..web.tables import work_orders
from .model import OutageChange, OutageIn, Scope
from .reach import not_reached
from .service import OutageService
from .store import OutageClosed, UnknownOutage, public

DISPATCHERS = frozenset({"dispatcher", "supervisor", "admin"})
OUTAGE_ID = r"^[0-9]{1,12}$"
_OUTAGE_ID = re.compile(OUTAGE_ID)
MAX_BODY = 4 * 1024 * 1024  # an uploaded account list may be long
Require = Callable[[web.Request, frozenset[str]], Awaitable[Any]]


class OutageOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int
    kind: str
    cause: str
    scope: Scope
    start_ts: float
    expected_restore_ts: float | None
    end_ts: float | None
    status: str
    created_by: str
    reports: int = Field(description="fault calls attached to it")


class SavedOut(BaseModel):
    outage: OutageOut
    warnings: list[str] = Field(description="saved, but the dispatcher should know (e.g. under 7 days' notice)")
    notices: dict[str, int] = Field(description="customers told (or to be told) per channel")


class OutageDetailOut(OutageOut):
    audit: list[dict[str, Any]]


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    end_ts: float | None = Field(default=None, gt=0, lt=4_102_444_800,
                                 description="when power came back (default: now)")


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str | None = Field(default=None, pattern=r"^(open|closed)$")
    area: str | None = Field(default=None, min_length=1, max_length=60, description="only those covering it")
    account: str | None = Field(default=None, pattern=r"^[0-9A-Za-z-]{1,20}$", description="only those covering it")
    active: bool = Field(default=False, description="only those under way now (started, not ended)")


class AttachIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workorder_id: int = Field(ge=1)
    call_id: str = Field(default="", max_length=80)
    account: str = Field(default="", max_length=20)
    number: str = Field(default="", max_length=32)


class NotReachedOut(BaseModel):
    number: str
    account: str
    name: str
    failed: dict[str, str] = Field(description="channel:message kind -> what happened, e.g. "
                                               "'sms:outage_notice': '3 attempt(s), undeliverable'")
    reached: bool = Field(description="the other channel reached this phone after all")


class AttachedOut(BaseModel):
    outage: int
    reports: int = Field(description="fault reports attached to the outage now")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False, default=str))


def _problem(exc: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    e = exc.errors()[0]
    where = ".".join(str(p) for p in e["loc"]) or "body"
    details = [{"loc": [str(p) for p in x["loc"]], "message": x["msg"], "type": x["type"]} for x in exc.errors()]
    return f"{where}: {str(e['msg']).removeprefix('Value error, ')}", details


async def _body(request: web.Request, model: type[BaseModel]) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "body-too-large", f"request body over {MAX_BODY} bytes")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise ApiError(413, "body-too-large", f"request body over {MAX_BODY} bytes")
    try:
        data = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "bad-json", "request body is not valid UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid", "request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, details = _problem(exc)
        raise ApiError(422, "invalid", message, details=details) from None


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not _OUTAGE_ID.fullmatch(raw):
        raise ApiError(404, "unknown-outage", f"no outage {raw[:20]!r}")
    return int(raw)


def add_outage_routes(app: web.Application, get_service: Callable[[], OutageService | None],
                      require: Require) -> None:
    def service() -> OutageService:
        svc = get_service()
        if svc is None:
            raise ApiError(503, "outages_not_ready", "outages are not running (yet)")
        return svc

    def op(summary: str, reply: Reply, *, roles: frozenset[str] = DISPATCHERS, status: int = 200,
           **kw: Any) -> Operation:
        errors = {503: "outages_not_ready"}
        errors.update(kw.pop("errors", {}))
        return Operation(summary=summary, replies={status: reply}, roles=roles, tags=("outages",), errors=errors,
                         **kw)

    @documented(op("Outages, latest start first", Reply("outages", list[OutageOut]), roles=ANY_ROLE,
                   query=ListQuery, operation_id="list_outages"))
    async def listing(request: web.Request) -> web.Response:
        await require(request, ANY_ROLE)
        try:
            q = ListQuery.model_validate(dict(request.query))
        except ValidationError as exc:
            raise ApiError(400, "bad-query", _problem(exc)[0]) from None
        svc = service()
        found = await svc.listing(q.status)
        if q.area or q.account:
            found = [o for o in found if o.scope.covers(area=q.area or "", account=q.account or "")]
        if q.active:
            now = svc.clock.now()
            found = [o for o in found if o.active(now)]
        return _json([public(o) for o in found])

    @documented(op("Enter an outage (dispatcher): live for the IVR and the screen-pop at once; a planned "
                   "or temporary one gets its notices", Reply("saved", SavedOut), status=201, body=OutageIn,
                   operation_id="add_outage"))
    async def add(request: web.Request) -> web.Response:
        user = await require(request, DISPATCHERS)
        body = await _body(request, OutageIn)
        saved = await service().add(body, getattr(user, "agent_no", "?"))
        return _json(saved.public(), 201)

    @documented(op("One outage with its audit trail", Reply("outage", OutageDetailOut), roles=ANY_ROLE,
                   path={"id": OUTAGE_ID}, operation_id="get_outage", errors={404: "unknown-outage"}))
    async def get(request: web.Request) -> web.Response:
        await require(request, ANY_ROLE)
        oid = _id(request)
        svc = service()
        try:
            o = await svc.store.get(oid)
        except UnknownOutage as exc:
            raise ApiError(404, "unknown-outage", str(exc)) from None
        return _json({**public(o), "audit": await svc.store.audit(oid)})

    @documented(op("Change an open outage (dispatcher): only the fields given", Reply("saved", SavedOut),
                   body=OutageChange, path={"id": OUTAGE_ID}, operation_id="update_outage",
                   errors={404: "unknown-outage", 409: "outage-closed: a closed outage does not change",
                           422: "invalid: the outage after the change breaks a rule"}))
    async def change(request: web.Request) -> web.Response:
        user = await require(request, DISPATCHERS)
        oid = _id(request)
        body = await _body(request, OutageChange)
        try:
            saved = await service().update(oid, body, getattr(user, "agent_no", "?"))
        except UnknownOutage as exc:
            raise ApiError(404, "unknown-outage", str(exc)) from None
        except OutageClosed as exc:
            raise ApiError(409, "outage-closed", str(exc)) from None
        except ValidationError as exc:
            message, details = _problem(exc)
            raise ApiError(422, "invalid", message, details=details) from None
        return _json(saved.public())

    @documented(op("Close an outage: power is back (dispatcher)", Reply("saved", SavedOut), body=CloseIn,
                   path={"id": OUTAGE_ID}, operation_id="close_outage",
                   errors={404: "unknown-outage", 409: "outage-closed: already closed"}))
    async def close(request: web.Request) -> web.Response:
        user = await require(request, DISPATCHERS)
        oid = _id(request)
        body = await _body(request, CloseIn)
        try:
            saved = await service().close(oid, getattr(user, "agent_no", "?"), body.end_ts)
        except UnknownOutage as exc:
            raise ApiError(404, "unknown-outage", str(exc)) from None
        except OutageClosed as exc:
            raise ApiError(409, "outage-closed", str(exc)) from None
        return _json(saved.public())

    @documented(op("Attach a work order to an open outage (any desktop user: the outage form)",
                   Reply("attached", AttachedOut), roles=ANY_ROLE, body=AttachIn, path={"id": OUTAGE_ID},
                   operation_id="attach_workorder_to_outage",
                   errors={404: "unknown-outage, unknown-workorder", 409: "outage-closed"}))
    async def attach(request: web.Request) -> web.Response:
        await require(request, ANY_ROLE)
        oid = _id(request)
        body = await _body(request, AttachIn)
        svc = service()
        async with svc.store.engine.connect() as conn:
            found = (await conn.execute(select(work_orders.c.id).where(work_orders.c.id == body.workorder_id))).first()
        if found is None:
            raise ApiError(404, "unknown-workorder", f"no work order {body.workorder_id}")
        try:
            n = await svc.attach_workorder(oid, body.workorder_id, call_id=body.call_id, account=body.account,
                                           number=body.number)
        except UnknownOutage as exc:
            raise ApiError(404, "unknown-outage", str(exc)) from None
        except OutageClosed as exc:
            raise ApiError(409, "outage-closed", str(exc)) from None
        return _json({"outage": oid, "reports": n})

    @documented(op("The outage's customers not reached after the retries, by call and by SMS (one row per "
                   "phone; those reached by neither channel first)", Reply("not reached", list[NotReachedOut]),
                   path={"id": OUTAGE_ID}, operation_id="outage_not_reached", errors={404: "unknown-outage"}))
    async def unreached(request: web.Request) -> web.Response:
        await require(request, DISPATCHERS)
        oid = _id(request)
        svc = service()
        try:
            await svc.store.get(oid)
        except UnknownOutage as exc:
            raise ApiError(404, "unknown-outage", str(exc)) from None
        engine = svc.store.engine
        return _json(await not_reached(oid, SmsStore(engine), OutboundStore(engine)))

    app.router.add_get("/api/outages", listing)
    app.router.add_get("/api/outages/{id}/not-reached", unreached)
    app.router.add_post("/api/outages/{id}/reports", attach)
    app.router.add_post("/api/outages", add)
    app.router.add_get("/api/outages/{id}", get)
    app.router.add_patch("/api/outages/{id}", change)
    app.router.add_post("/api/outages/{id}/close", close)
