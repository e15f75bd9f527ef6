"""HTTP for SMS: Kannel's delivery reports (`GET /api/sms/dlr`, public: the per-message token in the URL
Kannel was given is the credential) and the supervisors' list of messages (`GET /api/sms/messages`).

Errors are `ApiError`s in the one shape (web/errors.py); both routes are in the OpenAPI document.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..web.errors import ApiError
from ..web.openapi import Operation, Reply, documented
from .kannel import DLR_PATH
from .service import SmsService

SUPERVISORS = frozenset({"supervisor", "admin"})
Require = Callable[[web.Request, frozenset[str]], Awaitable[Any]]


class DlrQuery(BaseModel):
    """What Kannel sends back: our id and token, the report type (%d) and the SMSC's answer (%A)."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=1, le=10**15)
    t: str = Field(pattern=r"^[0-9a-f]{16}$", description="the message's token")
    s: int = Field(ge=0, le=255, description="Kannel's report type: 1 delivered, 2 failed, 4 buffered, "
                                              "8 SMSC accepted, 16 SMSC rejected")
    a: str = Field(default="", max_length=500, description="the SMSC's answer, as Kannel gives it")


class DlrOut(BaseModel):
    ok: bool


class MessagesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: str | None = Field(default=None, max_length=80, description="what the messages are about, e.g. outage:7")
    state: str | None = Field(default=None, pattern=r"^(queued|accepted|delivered|excluded|fallback|failed)$")
    limit: int = Field(default=200, ge=1, le=1000)


class SmsOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int
    kind: str
    number: str
    state: str
    attempts: int
    parts: int
    text: str


def _query(model: type[BaseModel], request: web.Request) -> Any:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "query"
        raise ApiError(400, "bad-query", f"{where}: {err['msg']}") from None


def _json(body: Any) -> web.Response:
    return web.json_response(body, dumps=lambda o: json.dumps(o, ensure_ascii=False, default=str))


def add_sms_routes(app: web.Application, get_service: Callable[[], SmsService | None], require: Require) -> None:
    def service() -> SmsService:
        svc = get_service()
        if svc is None:
            raise ApiError(503, "sms_not_ready", "SMS is not running (yet)")
        return svc

    @documented(Operation(summary="Kannel's delivery report for one message (Kannel calls this, with the "
                                  "dlr-url it was given)", replies={200: Reply("report taken", DlrOut)},
                          roles=None, tags=("sms",), query=DlrQuery, operation_id="sms_delivery_report",
                          errors={404: "unknown_message: no such message, or a wrong token",
                                  503: "sms_not_ready: SMS is not running (yet)"}))
    async def dlr(request: web.Request) -> web.Response:
        q = _query(DlrQuery, request)
        if not await service().on_dlr(q.id, q.t, q.s, q.a):
            raise ApiError(404, "unknown_message", f"no message {q.id} with that token")
        return _json({"ok": True})

    @documented(Operation(summary="SMS messages, newest first", replies={200: Reply("messages", list[SmsOut])},
                          roles=SUPERVISORS, tags=("sms",), query=MessagesQuery, operation_id="list_sms",
                          errors={503: "sms_not_ready: SMS is not running (yet)"}))
    async def messages(request: web.Request) -> web.Response:
        await require(request, SUPERVISORS)
        q = _query(MessagesQuery, request)
        return _json(await service().store.listing(ref=q.ref, state=q.state, limit=q.limit))

    app.router.add_get(DLR_PATH, dlr)
    app.router.add_get("/api/sms/messages", messages)
