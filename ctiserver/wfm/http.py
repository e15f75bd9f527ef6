"""HTTP edge of workforce management: the roster (see, adjust) and live adherence, and the `/wfm` page.

Supervisors only (the server's ops guard covers /api/wfm). The roster is the JSON file `ctiserver
roster build` saved (`var/wfm/roster-<monday>.json`); an adjustment is checked against every roster
rule (`shifts.violations`) before it is saved, and refused with the broken rules as details.
Adherence reads the day's `agent.state` events from the event store and the server's clock.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..calendar import Calendar
from ..web.errors import ApiError
from ..web.openapi import Operation, Reply, documented
from ..web.pages import page_file
from ..web.routing import read_body
from ..web.schemas import Body, Query
from .adherence import adherence, planned_day, team_adherence
from .roster import Roster, coverage_rows, from_doc, to_doc, variant_for
from .shifts import Agent, Assignment, RosterConfig, carried, variants, violations
from .store import agent_states

SUPERVISORS = frozenset({"supervisor", "admin"})
DATE = r"^\d{4}-\d{2}-\d{2}$"
PAGE = "wfm.html"


def roster_path(folder: Path, week: dt.date) -> Path:
    return folder / f"roster-{week.isoformat()}.json"


DATE_SCHEMA: dict[str, Any] = {"format": "date"}


class WeekQuery(Query):
    week: str = Field(pattern=DATE, description="a day of the week (its Monday is taken), YYYY-MM-DD",
                      json_schema_extra=DATE_SCHEMA)


class DayQuery(Query):
    date: str | None = Field(default=None, pattern=DATE, description="local day; default today",
                             json_schema_extra=DATE_SCHEMA)


class ShiftIn(Body):
    """Set one agent's shift on one day of the week (pattern null: a day off)."""

    week: Annotated[str, Field(pattern=DATE, json_schema_extra=DATE_SCHEMA)]  # any day of it
    agent: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    day: Annotated[int, Field(ge=0, le=6, strict=False)]  # JSON may write 2 as 2.0
    pattern: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,30}$")] | None = None
    start: Annotated[str, Field(pattern=r"^\d{2}:\d{2}$")] | None = None
    meal: Annotated[str, Field(pattern=r"^\d{2}:\d{2}$")] | None = None


class RosterOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    roster: dict[str, Any]
    coverage: list[dict[str, Any]]
    agents: list[dict[str, Any]]
    patterns: dict[str, list[dict[str, Any]]]


class AdherenceOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    date: str
    now: float
    agents: list[dict[str, Any]]
    teams: dict[str, float | None]


def _date(text: str, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ApiError(400, "bad_request", f"{what} {text!r} is not a date") from None


def add_wfm_routes(app: web.Application, *, folder: Path, cfg: RosterConfig, agents: list[Agent],
                   calendar: Calendar, get_engine: Callable[[], AsyncEngine], now: Callable[[], float]) -> None:
    """Mount /api/wfm/roster (GET), /api/wfm/roster/shift (POST), /api/wfm/adherence (GET) and /wfm."""
    by_id = {a.id: a for a in agents}
    shown_agents = [{"id": a.id, "name": a.name, "team": a.team, "leader": a.leader} for a in agents]
    shown_patterns = {name: [{"start": _hhmm(v.start), "meal": _hhmm(v.start + v.meal[0]) if v.meal else None}
                             for v in variants(name, p)] for name, p in cfg.patterns.items()}
    files = {name: resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
             for name in (PAGE, "wfm.js", "wfm.css")}

    def load(week: dt.date) -> Roster:
        path = roster_path(folder, week)
        if not path.exists():
            raise ApiError(404, "no_roster", f"no roster for the week of {week}: run `ctiserver roster build`")
        try:
            return from_doc(json.loads(path.read_text(encoding="utf-8")), cfg)
        except (ValueError, KeyError) as exc:
            raise ApiError(409, "roster_unreadable", f"the saved roster no longer fits wfm.yaml: {exc}") from None

    def reply(r: Roster) -> web.Response:
        return web.json_response({"roster": to_doc(r, agents), "coverage": coverage_rows(r, agents),
                                  "agents": shown_agents, "patterns": shown_patterns},
                                 dumps=lambda o: json.dumps(o, ensure_ascii=False))

    def week_of(text: str) -> dt.date:
        day = _date(text, "week")
        return day - dt.timedelta(days=day.weekday())

    @documented(Operation(summary="A week's roster with its coverage per half hour", tags=("wfm",),
                          roles=SUPERVISORS, query=WeekQuery, replies={200: Reply("the roster", RosterOut)},
                          errors={400: "bad_request: week is not a date",
                                  404: "no_roster: none was built for that week",
                                  409: "roster_unreadable: the saved roster no longer fits wfm.yaml"},
                          operation_id="get_wfm_roster"))
    async def get_roster(request: web.Request) -> web.StreamResponse:
        _only(request, {"week"})
        return reply(load(week_of(request.query.get("week", ""))))

    @documented(Operation(summary="Set or clear one agent's shift on one day; every roster rule is checked",
                          tags=("wfm",), roles=SUPERVISORS, body=ShiftIn,
                          replies={200: Reply("the roster after the change", RosterOut)},
                          errors={400: "bad_request: week is not a date",
                                  404: "no_roster: none was built for that week; unknown_agent",
                                  409: "rule_broken (details: each broken rule), no_such_shift (the pattern has no "
                                       "such start or meal place), roster_unreadable"},
                          operation_id="post_wfm_shift"))
    async def set_shift(request: web.Request) -> web.StreamResponse:
        body: ShiftIn = await read_body(request, ShiftIn, 4096)
        week = week_of(body.week)
        r = load(week)
        if body.agent not in by_id:
            raise ApiError(404, "unknown_agent", f"unknown agent {body.agent}")
        kept = [a for a in r.assignments if not (a.agent == body.agent and a.day == body.day)]
        if body.pattern is not None:
            if body.start is None:
                raise ApiError(409, "no_such_shift", "a shift needs its start time")
            try:
                v = variant_for(cfg, body.pattern, body.start, body.meal)
            except ValueError as exc:
                raise ApiError(409, "no_such_shift", str(exc)) from None
            kept.append(Assignment(body.agent, body.day, v))
        kept.sort(key=lambda s: (s.agent, s.day))
        prev, nxt = week - dt.timedelta(days=7), week + dt.timedelta(days=7)
        before = carried(load(prev).assignments) if roster_path(folder, prev).exists() else None
        broken = violations(kept, cfg, agents, week, before)
        if roster_path(folder, nxt).exists():  # this week's Sunday reaches into the next week's Monday
            broken += [f"week of {nxt}: {v}" for v in violations(load(nxt).assignments, cfg, agents, nxt,
                                                                 carried(kept)) if "week boundary" in v
                       or "last Sunday" in v]
        if broken:
            raise ApiError(409, "rule_broken", f"the change breaks {len(broken)} roster rule(s)", details=broken)
        r.assignments = kept
        r.notes = [*r.notes, f"{body.agent} day {body.day + 1} changed by a supervisor"][-20:]
        path = roster_path(folder, week)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(to_doc(r, agents), ensure_ascii=False, indent=1), encoding="utf-8")
        tmp.replace(path)
        return reply(r)

    @documented(Operation(summary="Adherence and attendance per agent and team for a day, up to now",
                          tags=("wfm",), roles=SUPERVISORS, query=DayQuery,
                          replies={200: Reply("adherence", AdherenceOut)},
                          errors={400: "bad_request: not a date", 404: "no_roster: none for that day's week",
                                  409: "roster_unreadable", 503: "store_unavailable: the event store did not answer"},
                          operation_id="get_wfm_adherence"))
    async def get_adherence(request: web.Request) -> web.StreamResponse:
        _only(request, {"date"})
        t = now()
        day = _date(request.query["date"], "date") if request.query.get("date") else calendar.today(t)
        week = day - dt.timedelta(days=day.weekday())
        plans = planned_day(load(week).assignments, week, day, calendar)
        since = calendar.at(day) - 86400.0  # the state agents were in when their shift began
        until = min(t, calendar.at(day + dt.timedelta(days=1)))
        try:
            evs = await agent_states(get_engine(), since, until)
        except (SQLAlchemyError, OSError) as exc:
            raise ApiError(503, "store_unavailable", f"the event store did not answer: {type(exc).__name__}") from None
        result = adherence(plans, evs, until)
        teams = team_adherence(result, {a.id: a.team for a in agents})
        return web.json_response({"date": day.isoformat(), "now": until,
                                  "agents": [{**r.as_dict(), "name": by_id[r.agent].name if r.agent in by_id else "",
                                              "team": by_id[r.agent].team if r.agent in by_id else ""}
                                             for r in result],
                                  "teams": {k: None if v is None else round(v, 4) for k, v in teams.items()}},
                                 dumps=lambda o: json.dumps(o, ensure_ascii=False))

    def file(name: str, content_type: str) -> Any:
        return page_file("the workforce page", name, files[name], content_type)

    app.router.add_get("/api/wfm/roster", get_roster)
    app.router.add_post("/api/wfm/roster/shift", set_shift)
    app.router.add_get("/api/wfm/adherence", get_adherence)
    app.router.add_get("/wfm", file(PAGE, "text/html"))
    app.router.add_get("/wfm.js", file("wfm.js", "text/javascript"))
    app.router.add_get("/wfm.css", file("wfm.css", "text/css"))


def _only(request: web.Request, allowed: set[str]) -> None:
    unknown = set(request.query) - allowed
    if unknown:
        raise ApiError(400, "unknown_parameter", f"unknown parameter(s): {', '.join(sorted(unknown))}")


def _hhmm(slot: int) -> str:
    slot %= 48
    return f"{slot // 2:02d}:{(slot % 2) * 30:02d}"
