"""HTTP edge of recordings: search, play with seeking (HTTP Range), download; every access logged.

Supervisors, admins and QC staff find and play any recording; an agent plays their own when
recording.yaml says `agents_hear_own`. The audio is served only to a logged-in user with the right
to it (the archive folder is never a static route); each request for it is a row of
`recording_access` and a `recording.access` event (who, which, when, which byte range)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, BeforeValidator, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from ..calendar import Calendar
from ..events import Event, Kind
from ..web.auth import Sessions, User
from ..web.errors import ApiError
from ..web.openapi import Operation, Reply, documented
from ..web.schemas import Query
from . import store
from .config import RecordingConfig

REVIEWERS = frozenset({"supervisor", "admin", "qc"})
LISTENERS = REVIEWERS | {"agent"}
ID = r"^[0-9]{1,12}$"


def _iso_day(v: Any) -> Any:
    if isinstance(v, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
        raise ValueError("a day is YYYY-MM-DD")
    return v


Day = Annotated[dt.date, BeforeValidator(_iso_day)]


class RecordingSearch(Query):
    from_: Day | None = Field(default=None, alias="from", description="first local day (YYYY-MM-DD)")
    to: Day | None = Field(default=None, description="last local day, included")
    agent: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]{1,40}$")
    queue: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,40}$")
    customer: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,40}$", description="customer account")
    number: str | None = Field(default=None, pattern=r"^[0-9+*#]{1,32}$", description="part of the caller's number")
    disposition: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,30}$", description="category")
    workorder: int | None = Field(default=None, ge=1, le=10**12)
    call_id: str | None = Field(default=None, pattern=r"^[0-9.]{1,40}$")
    min_s: float | None = Field(default=None, ge=0, le=86400)
    max_s: float | None = Field(default=None, ge=0, le=86400)
    limit: int = Field(default=100, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=10**6)


class AudioQuery(Query):
    download: Literal["0", "1"] = Field(default="0", description="1: as an attachment (logged as a download)")


class RecordingOut(BaseModel):
    id: int
    call_id: str
    agent_id: str
    queue: str | None
    number: str | None
    customer: str | None
    start_ts: float
    duration_s: float
    codec: str
    size: int
    sha256: str
    audio: str = Field(description="the URL to play it from")


class AccessOut(BaseModel):
    ts: float
    user: str
    action: str
    range: str | None


def parse_query(model: type[Query], request: web.Request) -> Any:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        e = exc.errors()[0]
        where = ".".join(str(p) for p in e["loc"]) or "query"
        raise ApiError(400, "bad-query", f"{where}: {e['msg']}",
                       details=[{"loc": [str(p) for p in x["loc"]], "message": x["msg"], "type": x["type"]}
                                for x in exc.errors()]) from None


def _out(row: dict[str, Any]) -> dict[str, Any]:
    return {**{k: row[k] for k in RecordingOut.model_fields if k != "audio"},
            "audio": f"/api/recordings/{row['id']}/audio"}


def add_recording_routes(app: web.Application, *, cfg: RecordingConfig, sessions: Callable[[], Sessions],
                         engine: Callable[[], AsyncEngine], calendar: Calendar, root: Path,
                         emit: Callable[[Event], None], now: Callable[[], float]) -> None:
    """GET /api/recordings, /api/recordings/{id}, /api/recordings/{id}/audio, /api/recordings/{id}/access."""

    allowed = LISTENERS if cfg.agents_hear_own else REVIEWERS

    async def who(request: web.Request) -> User:
        return await sessions().require(request, allowed)

    async def one(request: web.Request, user: User) -> dict[str, Any]:
        raw = request.match_info["id"]
        row = await store.get(engine(), int(raw)) if raw.isdigit() and len(raw) <= 12 else None
        if row is None or (user.role == "agent" and row["agent_id"] != user.agent_no):
            raise ApiError(404, "unknown-recording", f"no recording {raw[:20]!r}")
        return row

    @documented(Operation(summary="Find recordings", tags=("recordings",), roles=allowed, query=RecordingSearch,
                          replies={200: Reply("newest first", list[RecordingOut])},
                          description="An agent (when recording.yaml allows them to) finds only their own.",
                          operation_id="search_recordings"))
    async def search(request: web.Request) -> web.Response:
        user = await who(request)
        q: RecordingSearch = parse_query(RecordingSearch, request)

        def day(when: dt.date | None, plus: int = 0) -> float | None:
            if when is None:
                return None
            try:
                return calendar.at(when + dt.timedelta(days=plus))
            except (ValueError, OverflowError):
                return None  # beyond the calendar's years: no bound

        agent = user.agent_no if user.role == "agent" else q.agent
        f = store.Filters(start=day(q.from_), end=day(q.to, 1), agent=agent, queue=q.queue, customer=q.customer,
                          number=q.number, disposition=q.disposition, workorder=q.workorder, min_s=q.min_s,
                          max_s=q.max_s, call_id=q.call_id)
        rows = await store.search(engine(), f, q.limit, q.offset)
        return web.json_response([_out(r) for r in rows])

    @documented(Operation(summary="One recording", tags=("recordings",), roles=allowed, path={"id": ID},
                          replies={200: Reply("the recording", RecordingOut)},
                          errors={404: "unknown-recording"}, operation_id="get_recording"))
    async def get_one(request: web.Request) -> web.Response:
        user = await who(request)
        return web.json_response(_out(await one(request, user)))

    @documented(Operation(summary="Play (HTTP Range for seeking) or download a recording: logged",
                          tags=("recordings",), roles=allowed, path={"id": ID}, query=AudioQuery,
                          replies={200: Reply("Ogg Opus, stereo: caller left, agent right", content_type="audio/ogg",
                                              schema={"type": "string", "format": "binary"}),
                                   206: Reply("the range asked for", content_type="audio/ogg",
                                              schema={"type": "string", "format": "binary"})},
                          errors={404: "unknown-recording, recording-missing: the file is gone",
                                  416: "range-not-satisfiable"}, operation_id="play_recording"))
    async def audio(request: web.Request) -> web.StreamResponse:
        user = await who(request)
        q: AudioQuery = parse_query(AudioQuery, request)
        row = await one(request, user)
        path = await asyncio.to_thread(_inside, root, row["path"])
        if path is None:
            raise ApiError(404, "recording-missing", f"recording {row['id']}'s file is gone")
        action = "download" if q.download == "1" else "play"
        rng = request.headers.get("Range")
        ts = now()
        await store.log_access(engine(), row["id"], user.agent_no, action, rng, ts)
        emit(Event(Kind.RECORDING_ACCESS, ts, call_id=row["call_id"], agent_id=row["agent_id"],
                   data={"id": row["id"], "user": user.agent_no, "action": action, "range": rng}))
        headers = {"Content-Type": "audio/ogg", "Cache-Control": "private, no-store",
                   "X-Content-Type-Options": "nosniff"}
        if action == "download":
            headers["Content-Disposition"] = f'attachment; filename="recording-{row["id"]}.opus"'
        return web.FileResponse(path, headers=headers)

    @documented(Operation(summary="Who played or downloaded a recording, when", tags=("recordings",),
                          roles=REVIEWERS, path={"id": ID}, replies={200: Reply("oldest first", list[AccessOut])},
                          errors={404: "unknown-recording"}, operation_id="recording_access"))
    async def access(request: web.Request) -> web.Response:
        user = await sessions().require(request, REVIEWERS)
        row = await one(request, user)
        rows = await store.access_log(engine(), row["id"])
        return web.json_response([{k: r[k] for k in ("ts", "user", "action", "range")} for r in rows])

    app.router.add_get("/api/recordings", search)
    app.router.add_get("/api/recordings/{id}", get_one)
    app.router.add_get("/api/recordings/{id}/audio", audio)
    app.router.add_get("/api/recordings/{id}/access", access)


def _inside(root: Path, rel: str) -> Path | None:
    """The archived file, if it is a file under `root` (a row never points outside it)."""
    path = (root / rel).resolve()
    return path if root.resolve() in path.parents and path.is_file() else None
