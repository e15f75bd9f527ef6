"""HTTP edge of the shift handover and the `/handover` page (supervisors: the ops guard covers /api/wfm).

The roster (var/wfm/roster-<monday>.json; yesterday's, today's and tomorrow's shifts: a shift change
can fall on midnight) says which shift change `now` belongs to and who leads either side of it; the store says what
is open; the pure core (handover.py) makes the handover. Handing over saves it with the leader's note
and records a `wfm.handover` event; the incoming leader's acknowledgement is recorded once, as another.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..calendar import Calendar
from ..events import Event, Kind
from ..web.errors import ApiError
from ..web.openapi import Operation, Reply, documented
from ..web.pages import page_file
from ..web.routing import read_body
from ..web.schemas import Body, Query
from . import handover_store as store
from .adherence import Planned, planned_day
from .handover import RECENT_S, Boundary, boundary_for, build_handover, handover_text, logout_warning
from .roster import from_doc
from .shifts import Agent, RosterConfig

SUPERVISORS = frozenset({"supervisor", "admin"})
HANDOVER_ID = r"^[0-9]{1,12}$"
DATE = r"^\d{4}-\d{2}-\d{2}$"


class NoteIn(Body):
    """The outgoing leader's free text (what the lists do not say: system state, incidents, chases)."""

    note: Annotated[str, Field(max_length=4000)] = ""


class SearchQuery(Query):
    q: str = Field(default="", max_length=100, description="text in the note, the content or a leader's number")
    date: str | None = Field(default=None, pattern=DATE, description="only shift changes on this local day",
                             json_schema_extra={"format": "date"})
    limit: int = Field(default=50, ge=1, le=500)


class DraftOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    boundary: dict[str, Any]
    summary: dict[str, Any]


class HandoverOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int
    outgoing: str
    content: dict[str, Any]


class LogoutOut(BaseModel):
    warning: str | None
    boundary: dict[str, Any] | None


def plans_around(folder: Path, cfg: RosterConfig, calendar: Calendar, t: float) -> list[Planned]:
    """The saved rosters' shifts of yesterday, today and tomorrow (ValueError/KeyError: a roster that no
    longer fits wfm.yaml)."""
    today = calendar.today(t)
    out: list[Planned] = []
    for day in (today - dt.timedelta(days=1), today, today + dt.timedelta(days=1)):
        week = day - dt.timedelta(days=day.weekday())
        path = folder / f"roster-{week.isoformat()}.json"
        if path.exists():
            roster = from_doc(json.loads(path.read_text(encoding="utf-8")), cfg)
            out += planned_day(roster.assignments, week, day, calendar)
    return out


def add_handover_routes(app: web.Application, *, folder: Path, cfg: RosterConfig, agents: list[Agent],
                        calendar: Calendar, get_engine: Callable[[], AsyncEngine],
                        get_events_engine: Callable[[], AsyncEngine], now: Callable[[], float],
                        user_of: Callable[[web.Request], Awaitable[str]], emit: Callable[[Event], None],
                        health: Callable[[], dict[str, Any]] | None = None) -> None:
    """Mount /api/wfm/handover* and the /handover page (`health`: the server's health figures, handed over
    as the system's state)."""
    leaders = frozenset(a.id for a in agents if a.leader)
    files = {name: resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
             for name in ("handover.html", "handover.js")}

    def plans(t: float) -> list[Planned]:
        try:
            return plans_around(folder, cfg, calendar, t)
        except (ValueError, KeyError) as exc:
            raise ApiError(409, "roster_unreadable", f"the saved roster no longer fits wfm.yaml: {exc}") from None

    async def current(t: float, user: str) -> Boundary:
        try:
            done = await store.handed_at(get_engine(), t - RECENT_S, t)
        except (SQLAlchemyError, OSError) as exc:
            raise ApiError(503, "store_unavailable", f"the store did not answer: {type(exc).__name__}") from None
        b = boundary_for(plans(t), leaders, t, user, done)
        if b is None:
            raise ApiError(404, "no_shift", "the roster has no shift leader on duty now or in the last two hours "
                                            "(run `ctiserver roster build`, or give a leader a shift)")
        return b

    async def draft(t: float, user: str) -> dict[str, Any]:
        b = await current(t, user)
        try:
            inputs = await store.gather(get_engine(), get_events_engine(), b)
        except (SQLAlchemyError, OSError) as exc:
            raise ApiError(503, "store_unavailable", f"the store did not answer: {type(exc).__name__}") from None
        return build_handover(inputs, b, t, health() if health is not None else None)

    def _json(data: Any, status: int = 200) -> web.Response:
        return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))

    def _hid(request: web.Request) -> int:
        raw = request.match_info["id"]
        if not re.fullmatch(HANDOVER_ID, raw):
            raise ApiError(404, "unknown_handover", f"no handover {raw[:20]!r}")
        return int(raw)

    async def _one(hid: int) -> dict[str, Any]:
        try:
            return await store.get(get_engine(), hid)
        except store.HandoverGone as exc:
            raise ApiError(404, "unknown_handover", str(exc)) from None

    @documented(Operation(summary="The handover as it would be now (not saved): the shift change, open work orders "
                                  "due before the incoming shift ends, outages, callbacks, notable calls",
                          tags=("wfm",), roles=SUPERVISORS, replies={200: Reply("the draft", DraftOut)},
                          errors={404: "no_shift: no leader shift on duty now", 409: "roster_unreadable",
                                  503: "store_unavailable"}, operation_id="get_wfm_handover_draft"))
    async def get_draft(request: web.Request) -> web.StreamResponse:
        return _json(await draft(now(), await user_of(request)))

    @documented(Operation(summary="Hand over: save the handover as it is now with the leader's note",
                          tags=("wfm",), roles=SUPERVISORS, body=NoteIn,
                          replies={201: Reply("the saved handover", HandoverOut)},
                          errors={404: "no_shift: no leader shift on duty now", 409: "roster_unreadable",
                                  503: "store_unavailable"}, operation_id="post_wfm_handover"))
    async def hand_over(request: web.Request) -> web.StreamResponse:
        user = await user_of(request)
        body: NoteIn = await read_body(request, NoteIn, 16384)
        t = now()
        content = await draft(t, user)
        preview = {"id": 0, "outgoing": user, "note": body.note, "content": content, "created_ts": t,
                   "acked_by": None, "acked_ts": None}
        saved = await store.save(get_engine(), user=user, note=body.note, content=content,
                                 text=handover_text(preview, calendar), now=t)
        emit(Event(Kind.WFM_HANDOVER, t, agent_id=user, data={
            "id": saved["id"], "action": "handed", "user": user, "boundary_ts": content["boundary"]["at"],
            "incoming": content["boundary"]["incoming"]}))
        return _json(saved, 201)

    @documented(Operation(summary="Handovers kept, latest shift change first; search the text",
                          tags=("wfm",), roles=SUPERVISORS, query=SearchQuery,
                          replies={200: Reply("handovers", list[HandoverOut])},
                          errors={400: "bad_request: a bad parameter"}, operation_id="list_wfm_handovers"))
    async def listing(request: web.Request) -> web.StreamResponse:
        try:
            q = SearchQuery.model_validate(dict(request.query))
        except ValidationError as exc:
            raise ApiError(400, "bad_request", str(exc.errors()[0].get("msg", "bad parameter"))) from None
        since = until = None
        if q.date:
            try:
                day = dt.date.fromisoformat(q.date)
            except ValueError:
                raise ApiError(400, "bad_request", f"date {q.date!r} is not a date") from None
            since, until = calendar.at(day), calendar.at(day + dt.timedelta(days=1))
        return _json(await store.search(get_engine(), text=q.q, since=since, until=until, limit=q.limit))

    @documented(Operation(summary="One handover", tags=("wfm",), roles=SUPERVISORS, path={"id": HANDOVER_ID},
                          replies={200: Reply("the handover", HandoverOut)}, errors={404: "unknown_handover"},
                          operation_id="get_wfm_handover"))
    async def get_one(request: web.Request) -> web.StreamResponse:
        return _json(await _one(_hid(request)))

    @documented(Operation(summary="One handover as printable text (export)", tags=("wfm",), roles=SUPERVISORS,
                          path={"id": HANDOVER_ID}, errors={404: "unknown_handover"},
                          replies={200: Reply("plain text", content_type="text/plain", schema={"type": "string"})},
                          operation_id="get_wfm_handover_text"))
    async def get_text(request: web.Request) -> web.StreamResponse:
        doc = await _one(_hid(request))
        return web.Response(text=handover_text(doc, calendar), content_type="text/plain", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="handover-{doc["id"]}.txt"'})

    @documented(Operation(summary="The incoming leader acknowledges a handover (once; not its author)",
                          tags=("wfm",), roles=SUPERVISORS, path={"id": HANDOVER_ID},
                          replies={200: Reply("the acknowledged handover", HandoverOut)},
                          errors={404: "unknown_handover",
                                  409: "already_acknowledged; own_handover: the outgoing leader cannot take "
                                       "their own handover"}, operation_id="ack_wfm_handover"))
    async def acknowledge(request: web.Request) -> web.StreamResponse:
        user = await user_of(request)
        await read_body(request, None, 1024)
        hid = _hid(request)
        doc = await _one(hid)
        if doc["outgoing"] == user:
            raise ApiError(409, "own_handover", "the incoming shift leader acknowledges a handover, not its author")
        t = now()
        try:
            saved = await store.acknowledge(get_engine(), hid, user, t)
        except store.HandoverTaken as exc:
            raise ApiError(409, "already_acknowledged", str(exc)) from None
        emit(Event(Kind.WFM_HANDOVER, t, agent_id=user, data={
            "id": hid, "action": "acknowledged", "user": user, "boundary_ts": doc["boundary_ts"],
            "outgoing": doc["outgoing"], "rostered": user in doc["incoming"]}))
        return _json(saved)

    @documented(Operation(summary="Whether the signed-in leader may log out now (the rulebook: not before the "
                                  "incoming leader has logged in and taken the handover)",
                          tags=("wfm",), roles=SUPERVISORS, replies={200: Reply("the warning or null", LogoutOut)},
                          errors={409: "roster_unreadable"}, operation_id="get_wfm_handover_logout_check"))
    async def logout_check(request: web.Request) -> web.StreamResponse:
        user = await user_of(request)
        t = now()
        b = boundary_for(plans(t), leaders, t, user)
        if b is None or user not in b.outgoing:
            return _json({"warning": None, "boundary": None if b is None else b.as_dict()})
        try:
            states = await store.last_states(get_events_engine(), list(b.incoming), t - 86400.0, t)
            desk = await store.signed_in(get_engine(), list(b.incoming), t)
            acked = await store.acknowledged_for(get_engine(), user, b.at)
        except (SQLAlchemyError, OSError):
            return _json({"warning": "the store did not answer: check the handover by hand", "boundary": b.as_dict()})
        # logged in: signed in to the desktop, or logged in to the ACD
        logged_in = desk | {a for a, s in states.items() if s != "logged_out"}
        return _json({"warning": logout_warning(b, user, logged_in, acked), "boundary": b.as_dict()})

    def file(name: str, content_type: str) -> Any:
        return page_file("the shift handover page", name, files[name], content_type)

    app.router.add_get("/api/wfm/handover/draft", get_draft)
    app.router.add_get("/api/wfm/handover/logout-check", logout_check)
    app.router.add_post("/api/wfm/handovers", hand_over)
    app.router.add_get("/api/wfm/handovers", listing)
    app.router.add_get("/api/wfm/handovers/{id}", get_one)
    app.router.add_get("/api/wfm/handovers/{id}/text", get_text)
    app.router.add_post("/api/wfm/handovers/{id}/ack", acknowledge)
    app.router.add_get("/handover", file("handover.html", "text/html"))
    app.router.add_get("/handover.js", file("handover.js", "text/javascript"))
