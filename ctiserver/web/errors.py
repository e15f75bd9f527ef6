"""HTTP errors: one exception with a stable id and a status, one JSON shape, one middleware.

Every error the server answers, from any API (desktop, outbound, callbacks, reports) and from
aiohttp itself (unknown path 404, wrong method 405, body too large 413), has the same body:

    {"error": {"id": "not-found", "message": "no route '/api/x'", "details": null}}

`details` is null or a list (validation problems). Handlers raise `ApiError`; `json_errors`
(installed on every app the server builds) renders it, turns aiohttp's `HTTPException`s into the
same shape and logs an unexpected exception once, answering a 500 that names nothing internal.

    ApiError(status, error_id, message)
      ├── 400 bad-json / bad-query        request not parseable
      ├── 401 unauthenticated             no or expired session
      ├── 403 forbidden / bad-origin      role, ownership or cross-site check failed
      ├── 404 not-found / unknown-*       no such thing
      ├── 405 method-not-allowed          (with Allow)
      ├── 409 illegal-transition, ...     the thing exists but refuses
      ├── 413 body-too-large
      ├── 415 unsupported-media-type
      ├── 422 invalid                     validated, and wrong (with field details)
      ├── 429 rate-limited                too many failed logins
      └── 500 internal                    a bug: logged with its traceback, the server keeps serving
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ErrorDetail(BaseModel):
    model_config = ConfigDict(title="ErrorDetail")

    id: str
    message: str
    details: list[Any] | None


class ErrorOut(BaseModel):
    """The one error shape, as published in /api/openapi.json (schema `Error`)."""

    model_config = ConfigDict(title="Error")

    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, status: int, error_id: str, message: str, *, details: list[Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.message = message
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"id": self.error_id, "message": self.message, "details": self.details}}

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=self.headers)


_IDS = {400: "bad-request", 401: "unauthenticated", 403: "forbidden", 404: "not-found",
        405: "method-not-allowed", 413: "body-too-large", 415: "unsupported-media-type", 503: "unavailable"}


def from_http_exception(request: web.Request, exc: web.HTTPException) -> ApiError:
    """aiohttp's own refusals (router 404/405, client_max_size 413, ...) in the one shape."""
    status = exc.status
    headers: dict[str, str] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        headers["Allow"] = ",".join(sorted(exc.allowed_methods))
        message = f"{request.method} not allowed here (allowed: {headers['Allow']})"
    elif status == 404:
        message = f"no route {request.path[:100]!r}"
    elif status == 413:
        message = "request body too large"
    else:
        message = exc.reason or "request refused"
    if "Retry-After" in exc.headers:
        headers["Retry-After"] = exc.headers["Retry-After"]
    return ApiError(status, _IDS.get(status, "http-" + str(status)), message, headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every error in the one shape; a bug is logged once and answered with a plain 500."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:  # a redirect is not an error
            raise
        return from_http_exception(request, exc).response()
    except Exception:
        log.exception("%s %s failed", request.method, request.path[:200])
        return ApiError(500, "internal", "internal error; the server keeps running").response()
