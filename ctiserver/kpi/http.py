"""HTTP edge of the KPI reports: `/api/reports` (JSON, CSV or xlsx) and the `/reports` page.

The page is reports.html with its script and style beside it (reports.js draws SVG, no
CDN), so it works on a hotline LAN with no internet; it signs in like the desktop pages
(/static/common.js) and has their CSP (no inline script, never framed). Reports are heavy queries:
at most `max_parallel` run at once and a range is capped at `max_days`, so one
curious browser cannot starve the event writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib import resources
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..web.errors import ApiError
from ..web.openapi import Operation, Reply, documented
from ..web.pages import page_file
from ..web.schemas import Query
from .config import KpiConfig
from .headers import LANGS
from .render import format_csv, format_xlsx
from .report import ALL_DIMS, SCHEMA, WHEN, ReportError, build_report, parse_by, resolve_range

PAGE = "reports.html"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SUPERVISORS = frozenset({"supervisor", "admin"})  # the server's ops guard (wiring._ops_guard)
_Dim = Literal[ALL_DIMS]  # type: ignore[valid-type]


class ReportQuery(Query):
    """The query of GET /api/reports as `api` parses it (for the document; see parse_when, parse_by)."""

    from_: str | None = Field(default=None, alias="from", pattern=f"^$|{WHEN}",
                              description="start, local to the site's time zone unless an offset is given; "
                                          "empty or absent: today's midnight")
    to: str | None = Field(default=None, pattern=f"^$|{WHEN}",
                           description="end (after `from`, at most max_days later); empty or absent: a day after "
                                       "`from`")
    by: list[_Dim] = Field(default_factory=list, description="groupings, comma-separated, each once",
                           json_schema_extra={"uniqueItems": True})
    format: Literal["json", "csv", "xlsx"] = "json"
    lang: Literal["en", "zh"] = Field(default="en", description="column headers of csv and xlsx: metric keys, "
                                                                 "or Chinese")


class ReportOut(BaseModel):
    """The report (docs/kpis.md, "Report JSON")."""

    model_config = ConfigDict(extra="allow")

    schema_: Literal[SCHEMA] = Field(alias="schema")  # type: ignore[valid-type]
    timezone: str
    from_: str = Field(alias="from")
    to: str
    by: list[str]
    rows: list[dict[str, Any]]
    total: dict[str, Any]
    # what the page shows for metrics, queues and tiers: {"metrics"|"queues"|"tiers": {id: {zh, en}}}
    names: dict[str, dict[str, dict[str, str]]] = Field(default_factory=dict)


def add_report_routes(app: web.Application, get_engine: Callable[[], AsyncEngine], cfg: KpiConfig, *,
                      now: Callable[[], float], max_days: int = 93, max_parallel: int = 2,
                      names: dict[str, Any] | None = None) -> None:
    """Mount GET /api/reports?from=&to=&by=[&format=json|csv|xlsx][&lang=en|zh] and GET /reports on `app`.

    The JSON carries `names`: what the page shows for metrics (kpi.yaml `metric_names`) and for queues
    and tiers (`names`, acd.yaml's), each {id: {zh, en}}.

    Without `from`, the report is of the hotline's today (in `cfg.timezone`, by `now`, the
    server's injected clock), whatever the browser's clock or time zone says.

    `app` carries the server's middlewares (`ctiserver.web.guard.new_app`): refusals are raised as
    ApiError and rendered in the one error shape there."""
    gate = asyncio.Semaphore(max_parallel)
    report_op = Operation(
        summary="KPI report for a range, grouped as asked, as JSON, CSV or an Excel workbook", tags=("reports",),
        roles=SUPERVISORS, query=ReportQuery,
        replies={200: Reply("the report", ReportOut, content_type=("application/json", "text/csv", XLSX))},
        description=f"`to` must be after `from`, at most {max_days} days later (else 400).",
        errors={400: "unknown_parameter, bad_format, bad_request: a parameter breaks its rule, or the range does",
                503: "store_unavailable: the event store did not answer"}, operation_id="get_report")
    shown = {"metrics": {k: v.model_dump() for k, v in cfg.metric_names.items()},
             "queues": (names or {}).get("queues", {}), "tiers": (names or {}).get("tiers", {})}
    files = {name: resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
             for name in (PAGE, "reports.js", "reports.css")}

    @documented(report_op)
    async def api(request: web.Request) -> web.StreamResponse:
        q = request.query
        unknown = set(q) - {"from", "to", "by", "format", "lang"}
        if unknown:
            raise ApiError(400, "unknown_parameter", f"unknown parameter(s): {', '.join(sorted(unknown))}")
        fmt = q.get("format", "json")
        if fmt not in ("json", "csv", "xlsx"):
            raise ApiError(400, "bad_format", "format must be json, csv or xlsx")
        lang = q.get("lang", "en")
        if lang not in LANGS:
            raise ApiError(400, "bad_request", "lang must be en or zh")
        try:
            start, end = resolve_range(q.get("from") or None, q.get("to") or None, cfg, now=now())
            by = parse_by(q.get("by", ""))
            if end <= start:
                raise ReportError("'to' must be after 'from'")
            if end - start > max_days * 86400:
                raise ReportError(f"a range of at most {max_days} days, please")
        except ReportError as exc:
            raise ApiError(400, "bad_request", str(exc)) from None
        async with gate:
            try:
                report = await build_report(get_engine(), cfg, start, end, by, now=now())
            except ReportError as exc:
                raise ApiError(400, "bad_request", str(exc)) from None
            except (SQLAlchemyError, OSError) as exc:
                raise ApiError(503, "store_unavailable",
                               f"the event store did not answer: {type(exc).__name__}") from None
        site_names = shown["metrics"]
        if fmt == "csv":
            return web.Response(text=format_csv(report, lang, site_names), content_type="text/csv", charset="utf-8",
                                headers={"Content-Disposition": 'attachment; filename="kpi-report.csv"'})
        if fmt == "xlsx":
            return web.Response(body=format_xlsx(report, lang, site_names), content_type=XLSX,
                                headers={"Content-Disposition": 'attachment; filename="kpi-report.xlsx"'})
        return web.json_response({**report, "names": shown}, dumps=_dumps)

    def file(name: str, content_type: str) -> Any:
        return page_file("the reports page", name, files[name], content_type)

    app.router.add_get("/api/reports", api)
    app.router.add_get("/reports", file(PAGE, "text/html"))
    app.router.add_get("/reports.js", file("reports.js", "text/javascript"))
    app.router.add_get("/reports.css", file("reports.css", "text/css"))


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False)
