"""HTTP edge of QC: the sheet, the month's tasks, scoring (with comments at a second of the recording),
the agent's acknowledgement and one appeal, the supervisor's decision, the month's figures; the /qc page.

Reviewers (supervisor, admin, qc) see and score every task; an agent sees their own, acknowledges a
score or appeals it once (within the sheet's `appeal_days`); a supervisor or admin decides an appeal
(upheld, or revised with a new score). Every change is a `qc` event."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from ..events import Event, Kind
from ..recording import store as recordings
from ..recording.http import parse_query
from ..web.auth import Sessions, User
from ..web.errors import ApiError
from ..web.openapi import Operation, Reply, documented
from ..web.pages import page_file
from ..web.routing import read_body
from ..web.schemas import Body, Query
from . import store
from .figures import figures
from .sheet import QcSheet, ScoreError, score

REVIEWERS = frozenset({"supervisor", "admin", "qc"})
DECIDERS = frozenset({"supervisor", "admin"})
EVERYONE = REVIEWERS | {"agent"}
ID = r"^[0-9]{1,12}$"
_MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"
DAY = 86400.0


class TaskQuery(Query):
    month: str | None = Field(default=None, pattern=_MONTH)
    agent: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]{1,40}$")
    status: Literal["open", "scored", "acknowledged", "appealed", "decided"] | None = None


class MonthQuery(Query):
    month: str = Field(pattern=_MONTH)


class Comment(Body):
    at_s: float = Field(ge=0, le=86400, description="the second of the recording the comment is about")
    text: str = Field(min_length=1, max_length=500)


class ScoreIn(Body):
    marks: dict[str, float] = Field(description="item id -> points awarded (every item of the sheet)")
    deductions: dict[str, int] = Field(default_factory=dict, description="deduction id -> times")
    fatal: list[str] = Field(default_factory=list, description="fatal error ids (any one zeroes the call)")
    comments: list[Comment] = Field(default_factory=list, max_length=100)


class AppealIn(Body):
    text: str = Field(min_length=1, max_length=2000)


class DecideIn(Body):
    decision: Literal["upheld", "revised"]
    note: str = Field(min_length=1, max_length=2000)
    score: float | None = Field(default=None, ge=0, le=100, description="the new score (revised only)")


class TaskOut(BaseModel):
    id: int
    month: str
    agent_id: str
    call_id: str
    recording_id: int | None
    queue: str | None
    reason: str
    due_ts: float
    status: str
    reviewer: str | None
    score: float | None
    passed: bool | None
    fatal: bool | None
    items: dict[str, Any] | None
    comments: list[dict[str, Any]] | None
    scored_ts: float | None
    ack_ts: float | None
    appeal_text: str | None
    appeal_ts: float | None
    decision: str | None
    decision_note: str | None
    decided_by: str | None
    decided_ts: float | None
    created_ts: float


class FiguresOut(BaseModel):
    month: str
    total: dict[str, Any]
    agents: dict[str, dict[str, Any]]
    teams: dict[str, dict[str, Any]]
    queues: dict[str, dict[str, Any]]


def add_qc_routes(app: web.Application, *, sheet: QcSheet, sessions: Callable[[], Sessions],
                  engine: Callable[[], AsyncEngine], emit: Callable[[Event], None], now: Callable[[], float],
                  team_of: Callable[[str], str | None]) -> None:
    page = {name: resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
            for name in ("qc.html", "qc.js")}

    def op(summary: str, reply: Reply, roles: frozenset[str], operation_id: str, **kw: Any) -> Operation:
        return Operation(summary=summary, replies={200: reply}, roles=roles, tags=("qc",), operation_id=operation_id,
                         **kw)

    async def the_task(request: web.Request, user: User) -> dict[str, Any]:
        raw = request.match_info["id"]
        row = await store.task(engine(), int(raw)) if raw.isdigit() and len(raw) <= 12 else None
        if row is None or (user.role == "agent" and row["agent_id"] != user.agent_no):
            raise ApiError(404, "unknown-task", f"no QC task {raw[:20]!r}")
        return row

    def changed(row: dict[str, Any], action: str, user: User, **data: Any) -> None:
        emit(Event(Kind.QC, now(), call_id=row["call_id"], agent_id=row["agent_id"], queue=row["queue"],
                   data={"task": row["id"], "action": action, "by": user.agent_no, **data}))

    async def refreshed(task_id: int) -> web.Response:
        return web.json_response(await store.task(engine(), task_id))

    @documented(op("The QC scoring sheet", Reply("config/qc.yaml", dict[str, Any]), EVERYONE, "qc_sheet"))
    async def get_sheet(request: web.Request) -> web.Response:
        await sessions().require(request, EVERYONE)
        return web.json_response(sheet.public())

    @documented(op("Inspection tasks (an agent: their own)", Reply("by due time", list[TaskOut]), EVERYONE,
                   "qc_tasks", query=TaskQuery))
    async def list_tasks(request: web.Request) -> web.Response:
        user = await sessions().require(request, EVERYONE)
        q: TaskQuery = parse_query(TaskQuery, request)
        agent = user.agent_no if user.role == "agent" else q.agent
        return web.json_response(await store.tasks(engine(), month=q.month, agent=agent, status=q.status))

    @documented(op("One inspection task", Reply("the task", TaskOut), EVERYONE, "qc_task", path={"id": ID},
                   errors={404: "unknown-task"}))
    async def get_task(request: web.Request) -> web.Response:
        user = await sessions().require(request, EVERYONE)
        return web.json_response(await the_task(request, user))

    @documented(op("Score a task by the sheet (again, while the agent has not acknowledged it)",
                   Reply("the task", TaskOut), REVIEWERS, "qc_score", path={"id": ID}, body=ScoreIn,
                   errors={404: "unknown-task", 409: "wrong-state: acknowledged, appealed or decided already",
                           422: "bad-score: the marks do not fit the sheet"}))
    async def post_score(request: web.Request) -> web.Response:
        user = await sessions().require(request, REVIEWERS)
        row = await the_task(request, user)
        body: ScoreIn = await read_body(request, ScoreIn, 65536)
        try:
            s = score(sheet, body.marks, body.deductions, body.fatal)
        except ScoreError as exc:
            raise ApiError(422, "bad-score", str(exc)) from None
        comments = [{**c.model_dump(), "by": user.agent_no} for c in body.comments]
        ok = await store.change(engine(), row["id"], ("open", "scored"), status="scored", reviewer=user.agent_no,
                                score=s.total, passed=s.passed, fatal=s.fatal, scored_ts=now(), comments=comments,
                                items={"marks": body.marks, "deductions": body.deductions, "fatal": body.fatal,
                                       "sections": s.sections})
        if not ok:
            raise ApiError(409, "wrong-state", f"task {row['id']} is {row['status']}")
        # the call's start: the KPI reports put the score in the call's half hour (kpi/compute.py qc_query)
        rec = await recordings.get(engine(), int(row["recording_id"])) if row.get("recording_id") else None
        changed(row, "scored", user, score=s.total, passed=s.passed, fatal=s.fatal,
                call_ts=rec["start_ts"] if rec else None)
        return await refreshed(row["id"])

    @documented(op("The agent acknowledges their score", Reply("the task", TaskOut), frozenset({"agent"}),
                   "qc_acknowledge", path={"id": ID}, errors={404: "unknown-task", 409: "wrong-state: not scored"}))
    async def post_ack(request: web.Request) -> web.Response:
        user = await sessions().require(request, frozenset({"agent"}))
        row = await the_task(request, user)
        await read_body(request, None, 1024)
        if not await store.change(engine(), row["id"], ("scored", "decided"), status="acknowledged" if
                                  row["status"] == "scored" else "decided", ack_ts=now()):
            raise ApiError(409, "wrong-state", f"task {row['id']} is {row['status']}")
        changed(row, "acknowledged", user)
        return await refreshed(row["id"])

    @documented(op("The agent appeals their score (once, within the sheet's appeal_days)", Reply("the task", TaskOut),
                   frozenset({"agent"}), "qc_appeal", path={"id": ID}, body=AppealIn,
                   errors={404: "unknown-task", 409: "wrong-state: not scored, appealed once already, or too late"}))
    async def post_appeal(request: web.Request) -> web.Response:
        user = await sessions().require(request, frozenset({"agent"}))
        row = await the_task(request, user)
        body: AppealIn = await read_body(request, AppealIn, 8192)
        if row["scored_ts"] is not None and now() > row["scored_ts"] + sheet.appeal_days * DAY:
            raise ApiError(409, "wrong-state", f"appeals close {sheet.appeal_days} days after scoring")
        if not await store.change(engine(), row["id"], ("scored",), status="appealed", appeal_text=body.text,
                                  appeal_ts=now()):
            raise ApiError(409, "wrong-state", f"task {row['id']} is {row['status']}: one appeal, of a scored call")
        changed(row, "appealed", user)
        return await refreshed(row["id"])

    @documented(op("A supervisor decides an appeal", Reply("the task", TaskOut), DECIDERS, "qc_decide",
                   path={"id": ID}, body=DecideIn,
                   errors={404: "unknown-task", 409: "wrong-state: not appealed",
                           422: "bad-decision: revised needs a score, upheld takes none"}))
    async def post_decide(request: web.Request) -> web.Response:
        user = await sessions().require(request, DECIDERS)
        row = await the_task(request, user)
        body: DecideIn = await read_body(request, DecideIn, 8192)
        if (body.decision == "revised") != (body.score is not None):
            raise ApiError(422, "bad-decision", "revised needs a score, upheld takes none")
        values: dict[str, Any] = {"status": "decided", "decision": body.decision, "decision_note": body.note,
                                  "decided_by": user.agent_no, "decided_ts": now()}
        if body.score is not None:
            values.update(score=body.score, passed=body.score >= sheet.pass_score)
        if not await store.change(engine(), row["id"], ("appealed",), **values):
            raise ApiError(409, "wrong-state", f"task {row['id']} is {row['status']}")
        changed(row, "decided", user, decision=body.decision, score=values.get("score", row["score"]),
                passed=values.get("passed", row["passed"]))
        return await refreshed(row["id"])

    @documented(op("QC figures of a month per agent, team and queue", Reply("the figures", FiguresOut),
                   REVIEWERS, "qc_figures", query=MonthQuery))
    async def get_figures(request: web.Request) -> web.Response:
        await sessions().require(request, REVIEWERS)
        q: MonthQuery = parse_query(MonthQuery, request)
        return web.json_response({"month": q.month, **figures(await store.month_scores(engine(), q.month), team_of)})

    def file(name: str, content_type: str) -> Any:
        return page_file("the QC page", name, page[name], content_type)

    app.router.add_get("/api/qc/sheet", get_sheet)
    app.router.add_get("/api/qc/tasks", list_tasks)
    app.router.add_get("/api/qc/tasks/{id}", get_task)
    app.router.add_post("/api/qc/tasks/{id}/score", post_score)
    app.router.add_post("/api/qc/tasks/{id}/acknowledge", post_ack)
    app.router.add_post("/api/qc/tasks/{id}/appeal", post_appeal)
    app.router.add_post("/api/qc/tasks/{id}/decide", post_decide)
    app.router.add_get("/api/qc/figures", get_figures)
    app.router.add_get("/qc", file("qc.html", "text/html"))
    app.router.add_get("/qc.js", file("qc.js", "text/javascript"))
