"""The REST API's routing: a `Route` (method, path, roles, body and query models, reply, refusals) and
`wrap`, the common work around every handler: session and role, path patterns, size checks,
validation, the configured choices. `wrap` attaches the route's `Operation` (openapi.py) to the
handler it builds, so /api/openapi.json describes what it enforces. Every refusal is an `ApiError`
(errors.py renders it)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from .auth import User
from .errors import ApiError
from .openapi import ANY_ROLE, Operation, Reply, documented
from .ports import PortError

Require = Callable[[web.Request, frozenset[str] | None], Awaitable[User]]  # the session's user, if of one of the roles

ANY = ANY_ROLE
SUPERVISORS = frozenset({"supervisor", "admin"})
ADMIN = frozenset({"admin"})
# path parameter -> (the pattern it must match, what it names): anything else is a 404 "unknown-<what>"
PATH_PARAMS = {"agent_no": (r"^[A-Za-z0-9]{1,20}$", "agent"),
               "call_id": (r"^[A-Za-z0-9._:-]{1,80}$", "call"),
               "wo_id": (r"^[0-9]{1,15}$", "workorder")}
_PATH_RE = {name: re.compile(pattern) for name, (pattern, _) in PATH_PARAMS.items()}


@dataclass(slots=True)
class Ctx:
    """What a handler gets: the request, the caller (None on public routes), and validated input."""

    request: web.Request
    user: User | None
    body: Any = None
    query: Any = None

    @property
    def me(self) -> User:
        assert self.user is not None
        return self.user


Handler = Callable[[Ctx], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    roles: frozenset[str] | None = ANY  # None: public
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    status: int = 200
    tags: tuple[str, ...] = field(default=())
    reply: Any = None  # the model of the answer (replies.py)
    errors: dict[int, str] = field(default_factory=dict)  # refusals only this route makes (openapi.error_statuses)
    description: str = ""
    links: dict[str, Any] = field(default_factory=dict)  # OpenAPI links from the answer to other operations

    def operation(self) -> Operation:
        """The route as the document describes it: what `wrap` and the handler enforce."""
        params = re.findall(r"\{(\w+)\}", self.path)
        errors = {400: "bad-query: this operation takes no query parameters"} if self.query is None else {}
        if self.method == "POST":
            errors[413] = "body-too-large"
        return Operation(summary=self.summary, tags=self.tags, roles=self.roles, query=self.query, body=self.body,
                         replies={self.status: Reply("done" if self.method == "POST" else "found", self.reply)},
                         path={name: PATH_PARAMS[name][0] for name in params},
                         errors={**errors, **self.errors}, description=self.description,
                         operation_id=self.handler.__name__, links={self.status: self.links} if self.links else {})


def _json_default(value: Any) -> Any:
    return str(value)  # Decimal arrears, dates from a customer record


def json_reply(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, default=_json_default,
                                                                             ensure_ascii=False))


def _validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    # No "input" echo: a hostile megabyte string is not sent back.
    return [{"loc": [str(p) for p in e["loc"]], "message": e["msg"], "type": e["type"]} for e in exc.errors()]


def _first_problem(exc: ValidationError, whole: str = "body") -> str:
    e = exc.errors()[0]
    where = ".".join(str(p) for p in e["loc"]) or whole
    message = str(e["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else "")


async def read_body(request: web.Request, model: type[BaseModel] | None, limit: int) -> Any:
    """The POST body, at most `limit` bytes, as `model` (None: the body is read and dropped)."""
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "body-too-large", f"request body over {limit} bytes")
    raw = b""
    while len(raw) <= limit:  # read() returns what has arrived so far: a body may come in pieces
        chunk = await request.content.read(limit + 1 - len(raw))
        if not chunk:
            break
        raw += chunk
    if len(raw) > limit:
        raise ApiError(413, "body-too-large", f"request body over {limit} bytes")
    if model is None:
        return None
    try:
        data = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "bad-json", "request body is not valid UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid", "request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid", _first_problem(exc), details=_validation_details(exc)) from None

def wrap(route: Route, require: Require, check_choices: Callable[[BaseModel], None],
         max_body: int) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Session and role, query and body validation around `route.handler`.

    Errors are raised as ApiError and rendered by the app's `json_errors` middleware; the
    cross-site and JSON-only checks of state-changing requests are the app's `same_origin_json`.
    """
    params = [(name, _PATH_RE[name], PATH_PARAMS[name][1]) for name in re.findall(r"\{(\w+)\}", route.path)]

    async def handler(request: web.Request) -> web.StreamResponse:
        user = None
        if route.roles is not None:
            user = await require(request, route.roles)
        for name, pattern, what in params:
            value = request.match_info[name]
            if not pattern.fullmatch(value):
                raise ApiError(404, f"unknown-{what}", f"no {what} {value[:40]!r}")
        query = None
        if route.query is not None:
            try:
                query = route.query.model_validate(dict(request.query))
            except ValidationError as exc:
                raise ApiError(400, "bad-query", _first_problem(exc, "query"),
                               details=_validation_details(exc)) from None
        elif request.query:
            raise ApiError(400, "bad-query", "this endpoint takes no query parameters")
        body = None
        if request.method == "POST":
            body = await read_body(request, route.body, max_body)
            if body is not None:
                check_choices(body)
        try:
            result = await route.handler(Ctx(request, user, body, query))
        except PortError as exc:
            raise ApiError(exc.status, exc.error_id, exc.message) from None
        if isinstance(result, web.StreamResponse):
            return result
        return json_reply(result, route.status)

    handler.__name__ = route.handler.__name__
    return documented(route.operation())(handler)
