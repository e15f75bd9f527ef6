"""The published contract: `GET /api/openapi.json`, generated from the app's own router.

Every handler the server serves carries an `Operation` (attached with `documented`; the desktop's
route table does it for its routes): who may call it, the pydantic models its query string and
body are validated with, the patterns its path parameters must match, and each response it gives
with its schema and content type. `openapi(router, choices)` walks the router, so a route is in the
document exactly when the server serves it, described by the models its handler validates with.
A route without an Operation is a bug: `strict=True` (the tests) raises `UndocumentedRoute`; the
running server lists it marked `x-undocumented` and logs a warning, so one forgotten route does not
take the whole document down.

Values that come from the configuration (not-ready reasons, categories, units, tiers) are marked in
the models with `schemas.Choice(key)`; the document lists the configured values as an `enum`, and
the desktop checks the same list (api.Desktop.wrap).

Every error has the one shape (errors.ErrorOut). Which error statuses an operation answers is
derived from what it declares, as the server's layers enforce it: a role 401 (and 403), a
state-changing method 403 and 415 (guard.py), a body 400/413/422, a query model 400, a path
pattern 404; an operation lists anything else itself (`errors`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter

from .errors import ErrorOut

log = logging.getLogger(__name__)

JSON = "application/json"
ANY_ROLE = frozenset({"agent", "supervisor", "admin", "dispatcher", "qc"})  # anyone logged in
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REF = "#/components/schemas/{model}"
_ATTR = "__openapi__"


@dataclass(frozen=True, slots=True)
class Reply:
    """One successful response: JSON described by `model` (a pydantic model or type such as
    `list[Model]`), or another content type described by `schema`; neither: no body. With several
    content types (the client picks one, e.g. `format=csv`) the first is the model's, the others text."""

    description: str
    model: Any = None
    content_type: str | tuple[str, ...] = JSON
    schema: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # name -> description


@dataclass(frozen=True, slots=True)
class Operation:
    summary: str
    replies: Mapping[int, Reply]
    roles: frozenset[str] | None = ANY_ROLE  # None: public
    tags: tuple[str, ...] = ()
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    path: Mapping[str, str] = field(default_factory=dict)  # path parameter -> the regex it must match (else 404)
    headers: Mapping[str, str] = field(default_factory=dict)  # required header -> the regex it must match (else 400)
    errors: Mapping[int, str] = field(default_factory=dict)  # statuses beyond the derived ones -> when
    description: str = ""
    operation_id: str = ""
    links: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)  # status -> OpenAPI links


class UndocumentedRoute(LookupError):
    """The router serves a route no Operation describes."""


H = TypeVar("H", bound=Callable[..., Any])


def documented(op: Operation) -> Callable[[H], H]:
    """Decorator: `handler` is described by `op` in the document of any app that routes to it."""
    def attach(handler: H) -> H:
        setattr(handler, _ATTR, op)
        return handler
    return attach


def operation_of(handler: Any) -> Operation | None:
    op = getattr(handler, _ATTR, None)
    return op if isinstance(op, Operation) else None


def served(router: web.UrlDispatcher) -> Iterator[tuple[str, str, Any]]:
    """(METHOD, path template, handler) of every route, but the HEAD aiohttp adds beside each GET."""
    for resource in router.resources():
        info = resource.get_info()
        path = info.get("formatter") or info.get("path") or info.get("prefix")
        methods = {route.method for route in resource}
        for route in resource:
            if route.method == "HEAD" and "GET" in methods:
                continue  # HTTP's HEAD of a GET: implicit in OpenAPI
            yield route.method, str(path), route.handler


# --- the document --------------------------------------------------------------------------------

def openapi(router: web.UrlDispatcher, choices: Mapping[str, Sequence[str]] | None = None, *,
            title: str = "ctiserver", version: str = "1", strict: bool = False) -> dict[str, Any]:
    """OpenAPI 3.1 for every route `router` serves. `choices` gives the configured values of each
    `Choice` key (as GET /api/me lists them)."""
    ops: list[tuple[str, str, Operation]] = []
    missing = []
    for method, path, handler in served(router):
        op = operation_of(handler)
        if op is None:
            missing.append((method, path))
        else:
            ops.append((method, path, op))
    if missing:
        names = ", ".join(f"{method} {path}" for method, path in missing)
        if strict:
            raise UndocumentedRoute("routes with no Operation: " + names)
        log.warning("routes with no Operation, marked x-undocumented in /api/openapi.json: %s", names)
    models = _Models()
    paths: dict[str, dict[str, Any]] = {}
    for method, path, op in ops:
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, op, models)
    for method, path in missing:
        paths.setdefault(path, {})[method.lower()] = {
            "summary": "undocumented", "x-undocumented": True, "operationId": _operation_id(method, path),
            "responses": {"default": {"description": "not documented (a bug: give its handler an Operation)"}}}
    schemas = models.resolve()
    doc = {"openapi": "3.1.0",
           "info": {"title": title, "version": version,
                    "description": "Every route the server serves. Errors are all "
                                   '`{"error": {"id", "message", "details"}}` (schema Error).'},
           "components": {"schemas": schemas, "securitySchemes": {
               "bearer": {"type": "http", "scheme": "bearer", "description": "the token POST /api/auth/login gives"},
               "cookie": {"type": "apiKey", "in": "cookie", "name": "cti_session",
                          "description": "the session cookie POST /api/auth/login sets"}}},
           "security": [{"bearer": []}, {"cookie": []}],
           "paths": dict(sorted(paths.items()))}
    return _fill_choices(doc, choices or {})


def error_statuses(method: str, op: Operation) -> dict[int, str]:
    """Every error status `op` can answer, derived from what it declares (see the module's doc)."""
    out: dict[int, str] = {}
    if op.roles is not None:
        out[401] = "unauthenticated: no session, or it expired"
        if op.roles != ANY_ROLE:
            out[403] = "forbidden: needs role " + " or ".join(sorted(op.roles))
    if method not in SAFE_METHODS:
        out[403] = _join(out.get(403), "bad-origin: sent from another site (Origin or Sec-Fetch-Site)")
        out[415] = "unsupported-media-type: a body that is not application/json"
    if op.query is not None:
        out[400] = "bad-query: the query string breaks the rules of its schema"
    if op.headers:
        out[400] = _join(out.get(400), "a required header is missing or breaks its pattern")
    if op.body is not None:
        out[400] = _join(out.get(400), "bad-json: the body is not UTF-8 JSON")
        out[413] = "body-too-large"
        out[422] = "invalid: the body breaks the rules of its schema (details lists where)"
    if op.path:
        out[404] = "unknown-*: a path parameter names nothing (or does not match its pattern)"
    for status, when in op.errors.items():
        out[status] = _join(out.get(status), when)
    return dict(sorted(out.items()))


def _join(first: str | None, second: str) -> str:
    return second if not first else f"{first}; {second}"


def _operation(method: str, path: str, op: Operation, models: _Models) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary,
                           "operationId": op.operation_id or _operation_id(method, path)}
    if op.description:
        out["description"] = op.description
    if op.tags:
        out["tags"] = list(op.tags)
    if op.roles is None:
        out["security"] = []
    else:
        out["x-roles"] = sorted(op.roles)
    params = [{"name": name, "in": "path", "required": True,
               "schema": {"type": "string", "pattern": op.path.get(name, "^[^/]+$")}}
              for name in re.findall(r"\{(\w+)\}", path)]
    params += [{"name": name, "in": "header", "required": True, "schema": {"type": "string", "pattern": pattern}}
               for name, pattern in op.headers.items()]
    if op.query is not None:
        params += _query_parameters(op.query, models)
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {JSON: {"schema": models.ref(op.body, "validation")}}}
    responses: dict[str, Any] = {}
    for status, reply in sorted(op.replies.items()):
        responses[str(status)] = _reply(reply, models, op.links.get(status))
    for status, when in error_statuses(method, op).items():
        responses[str(status)] = {"description": when,
                                  "content": {JSON: {"schema": {"$ref": REF.format(model="Error")}}}}
        if status == 429:
            responses[str(status)]["headers"] = {"Retry-After": {"description": "seconds to wait",
                                                                 "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
    out["responses"] = responses
    return out


def _reply(reply: Reply, models: _Models, links: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": reply.description}
    first, *others = (reply.content_type,) if isinstance(reply.content_type, str) else reply.content_type
    if reply.model is not None:
        out["content"] = {first: {"schema": models.ref(reply.model, "serialization")}}
    elif reply.schema is not None:
        out["content"] = {first: {"schema": dict(reply.schema)}}
    for other in others:
        out.setdefault("content", {})[other] = {"schema": {"type": "string"}}
    if reply.headers:
        out["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                          for name, text in reply.headers.items()}
    if links:
        out["links"] = dict(links)
    return out


def _query_parameters(model: type[BaseModel], models: _Models) -> list[dict[str, Any]]:
    """One parameter per field; a model with rules across its fields (exactly one of, at least one of)
    is one exploded object parameter instead, so the rule is part of its schema."""
    schema = model.model_json_schema(ref_template=REF, mode="validation")
    across = set(schema) - {"type", "properties", "required", "title", "description", "additionalProperties"}
    if across:
        return [{"name": model.__name__, "in": "query", "required": True, "style": "form", "explode": True,
                 "schema": models.ref(model, "validation")}]
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if prop.get("type") == "array":
            param.update(style="form", explode=False)  # a list in a query string: comma-separated
        if "description" in prop:
            param["description"] = prop["description"]
        params.append(param)
    return params


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", path.replace("{", "by_").replace("}", "")).strip("_")
    return f"{method.lower()}_{words or 'root'}"


Mode = Literal["validation", "serialization"]


class _Models:
    """The pydantic models and types the document refers to; `resolve` makes their JSON schemas at once
    (one naming of every nested model, whatever operation it came from)."""

    def __init__(self) -> None:
        self._wanted: dict[tuple[str, Mode], Any] = {}
        self._refs: dict[tuple[str, Mode], dict[str, Any]] = {}

    def ref(self, model: Any, mode: Mode) -> dict[str, Any]:
        key = (_type_key(model), mode)
        self._wanted[key] = model
        return self._refs.setdefault(key, {})  # filled in by resolve

    def resolve(self) -> dict[str, Any]:
        inputs = [(key, key[1], TypeAdapter(model)) for key, model in self._wanted.items()]
        found, defs = TypeAdapter.json_schemas(inputs, ref_template=REF)
        for (key, _mode), schema in found.items():
            self._refs[key].update(schema)
        error = ErrorOut.model_json_schema(ref_template=REF)
        schemas: dict[str, Any] = {**error.pop("$defs", {}), **defs.get("$defs", {}), "Error": error}
        return dict(sorted(schemas.items()))


def _type_key(model: Any) -> str:
    return f"{getattr(model, '__module__', '')}.{getattr(model, '__qualname__', repr(model))}:{model!r}"


def _fill_choices(node: Any, choices: Mapping[str, Sequence[str]]) -> Any:
    """Every `{"x-choices": key}` gets `enum`: the configured values (and null when the field is nullable)."""
    if isinstance(node, dict):
        out = {k: _fill_choices(v, choices) for k, v in node.items()}
        key = out.get("x-choices")
        if isinstance(key, str):
            values: list[Any] = list(choices.get(key, ()))
            nullable = any(s.get("type") == "null" for s in out.get("anyOf", ()) if isinstance(s, dict))
            out["enum"] = [*values, None] if nullable else values
        return out
    if isinstance(node, list):
        return [_fill_choices(v, choices) for v in node]
    return node
