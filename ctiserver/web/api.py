"""The REST API: one route table that builds both the aiohttp routes and their part of the OpenAPI document.
(The `Route` record and `wrap`, the work around every handler, are in routing.py.)

Each `Route` names its method, path, roles, body and query models, its reply and the refusals
only it makes; `Desktop.wrap` does the common work around every handler (session, role, path
patterns, size checks, validation, the configured choices) and attaches the route's `Operation`
(openapi.py) to the handler it builds, so /api/openapi.json describes what `wrap` enforces.
Every refusal is raised as an `ApiError`, which the app's middleware renders as
`{"error": {"id", "message", "details"}}` (errors.py); the cross-site and JSON-only
checks of every POST are the app's too (guard.py). A handler body only says what the
endpoint does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from ..clock import Clock
from ..events import Event, Kind
from . import auth, dispositions, workorders
from .auth import LoginThrottle, User
from .config import DesktopConfig
from .errors import ApiError
from .openapi import openapi
from .ports import AgentControl, CallControl, CustomerLookup, WallboardSource
from .replies import (
    AgentStateOut,
    CallActionOut,
    CallOut,
    CustomerOut,
    DispositionOut,
    LoginOut,
    MeOut,
    OkOut,
    PriorityOut,
    UserOut,
    WallboardOut,
    WorkOrderDetailOut,
    WorkOrderMovedOut,
    WorkOrderOut,
)
from .routing import ADMIN, SUPERVISORS, Ctx, Route, json_reply, wrap
from .schemas import (
    AgentStateIn,
    CustomerQuery,
    DispositionIn,
    DispositionQuery,
    EscalateIn,
    LoginIn,
    PriorityIn,
    TransferIn,
    UserIn,
    WorkOrderIn,
    WorkOrderQuery,
    WorkOrderStatusIn,
    choices_of,
)
from .ws import Hub

log = logging.getLogger(__name__)

COOKIE = auth.COOKIE
_LIVE_CALL = {403: "forbidden: the call is another agent's", 404: "unknown-call: no such live call",
              409: "asterisk-refused, no-agent-leg, transfer-not-started: Asterisk or the call refused",
              503: "asterisk-unavailable: the action could not be sent to Asterisk"}


class Desktop:
    """The desktop's dependencies and handlers. `routes()` plugs into any aiohttp app."""

    def __init__(self, *, engine: AsyncEngine, agents: AgentControl, calls: CallControl,
                 wallboard: WallboardSource, customers: CustomerLookup, emit: Callable[[Event], None],
                 config: DesktopConfig, clock: Clock, hub: Hub,
                 request_callback: Callable[..., Awaitable[None]] | None = None,
                 names: dict[str, Any] | None = None) -> None:
        self.engine = engine
        self.agents = agents
        self.calls = calls
        self.wallboard = wallboard
        self.customers = customers
        self.emit = emit
        self.config = config
        self.clock = clock
        self.hub = hub
        self.request_callback = request_callback
        self.names: dict[str, Any] = names or {}  # display names of queues and tiers
        self.sessions = auth.Sessions(engine, clock)
        self.throttle = LoginThrottle(config.login_per_user, config.login_per_ip, config.login_per_user_all_addresses)
        self._refusals: dict[str, tuple[float, int]] = {}  # address -> (last warning, refusals since)
        self.table = self._table()
        self._doc: tuple[web.UrlDispatcher, dict[str, Any]] | None = None

    # --- plumbing ---------------------------------------------------------------

    def _table(self) -> list[Route]:
        R = Route
        own = {403: "forbidden: agents may act only for themselves"}
        return [
            R("POST", "/api/auth/login", self.login, "Log in with agent number and password; sets a session cookie",
              roles=None, body=LoginIn, tags=("auth",), reply=LoginOut,
              errors={401: "bad-credentials: wrong agent number or password",
                      429: "rate-limited: too many failed logins (Retry-After)"}),
            R("POST", "/api/auth/logout", self.logout, "End this session (no body)", tags=("auth",), reply=OkOut),
            R("GET", "/api/me", self.me, "The caller, plus the codes the desktop offers (reasons, categories, units)",
              tags=("auth",), reply=MeOut),
            R("POST", "/api/users", self.add_user, "Add a user (admin)", roles=ADMIN, body=UserIn, status=201,
              tags=("auth",), reply=UserOut, errors={409: "user-exists"}),
            R("GET", "/api/agents", self.list_agents, "Every agent's state (supervisor)", roles=SUPERVISORS,
              tags=("agents",), reply=list[AgentStateOut]),
            R("GET", "/api/agents/{agent_no}", self.get_agent, "One agent's state (self or supervisor)",
              tags=("agents",), reply=AgentStateOut, errors=own),
            R("POST", "/api/agents/{agent_no}/state", self.set_agent_state,
              "Log in/out of the ACD, ready, not ready with a reason (self or supervisor)", body=AgentStateIn,
              tags=("agents",), reply=AgentStateOut,
              errors={**own, 409: "acd-illegal-transition: not from the agent's present state",
                      422: "unknown-reason: not_ready needs one of the configured reasons; a reason only with it"}),
            R("GET", "/api/calls", self.list_calls, "Live calls (agents: their own)", tags=("calls",),
              reply=list[CallOut]),
            R("POST", "/api/calls/{call_id}/transfer", self.transfer,
              "Blind or attended transfer to a queue or an agent", body=TransferIn, tags=("calls",),
              reply=CallActionOut,
              errors={**_LIVE_CALL, 404: "unknown-call, unknown-agent: no such live call or target agent",
                      422: "bad-target, no-transfer-code, attended-needs-digits, transfer-to-self: "
                           "a target this call cannot go to"}),
            R("POST", "/api/calls/{call_id}/hangup", self.hangup, "Hang up a call (no body)", tags=("calls",),
              reply=CallActionOut, errors=_LIVE_CALL),
            R("POST", "/api/calls/{call_id}/escalate", self.escalate,
              "Warm transfer to the shift leader/supervisor, marked as an escalation", body=EscalateIn,
              tags=("calls",), reply=CallActionOut, errors=_LIVE_CALL),
            R("POST", "/api/queue/{call_id}/priority", self.set_priority,
              "Move a waiting caller to another tier, their priority in the queue (supervisor); logged as "
              "acd.retier", roles=SUPERVISORS, body=PriorityIn, tags=("wallboard",), reply=PriorityOut,
              errors={404: "not-waiting: no such caller waiting in the ACD", 422: "unknown-tier"}),
            R("GET", "/api/customers", self.lookup_customer, "Customer record by phone or account",
              query=CustomerQuery, tags=("customers",), reply=CustomerOut,
              errors={404: "unknown-customer"}),
            R("POST", "/api/dispositions", self.add_disposition, "Record a call's disposition",
              body=DispositionIn, status=201, tags=("dispositions",), reply=DispositionOut,
              errors={422: "unknown-category: not a configured category"}),
            R("GET", "/api/dispositions", self.list_dispositions, "Dispositions (agents: their own)",
              query=DispositionQuery, tags=("dispositions",), reply=list[DispositionOut]),
            R("POST", "/api/workorders", self.create_workorder, "Open a work order (due time from the SLA)",
              body=WorkOrderIn, status=201, tags=("workorders",), reply=WorkOrderOut,
              links={"GetWorkOrder": {"operationId": "get_workorder", "parameters": {"wo_id": "$response.body#/id"}},
                     "MoveWorkOrder": {"operationId": "workorder_status",
                                       "parameters": {"wo_id": "$response.body#/id"}}},
              errors={422: "no-sla-for-category, unknown-unit: not configured; invalid: call_time in the future"}),
            R("GET", "/api/workorders", self.list_workorders, "Work orders by customer, number, status or overdue",
              query=WorkOrderQuery, tags=("workorders",), reply=list[WorkOrderOut]),
            R("GET", "/api/workorders/{wo_id}", self.get_workorder, "One work order with its history",
              tags=("workorders",), reply=WorkOrderDetailOut),
            R("POST", "/api/workorders/{wo_id}/status", self.workorder_status,
              "Move a work order: open, dispatched, resolved, closed, reopened", body=WorkOrderStatusIn,
              tags=("workorders",), reply=WorkOrderMovedOut,
              errors={409: "illegal-transition: not from the order's present status; concurrent-change; "
                           "callbacks-unavailable",
                      422: "unit-required: dispatching needs a unit; unknown-unit"}),
            R("GET", "/api/wallboard", self.get_wallboard, "Wallboard snapshot (supervisor)", roles=SUPERVISORS,
              tags=("wallboard",), reply=WallboardOut),
            R("GET", "/api/openapi.json", self.openapi_doc, "This document", roles=None, tags=("meta",),
              reply=dict[str, Any]),
        ]

    def routes(self) -> list[web.RouteDef]:
        return [web.route(r.method, r.path, self.wrap(r)) for r in self.table]

    def choices(self) -> dict[str, list[str]]:
        """The configured values of every `schemas.Choice` key (GET /api/me shows the same lists)."""
        c = self.config
        return {"not_ready_reasons": list(c.not_ready_reasons), "categories": list(c.disposition_categories),
                "workorder_categories": sorted(c.workorders.categories), "units": list(c.units),
                "tiers": [str(t) for t in self.wallboard.snapshot().get("tiers", ())]}

    def _check_choices(self, body: BaseModel) -> None:
        found = choices_of(body)
        if not found:
            return
        choices = self.choices()
        for name, value, choice in found:
            allowed = choices.get(choice.key, [])
            if value not in allowed:
                raise ApiError(422, choice.error_id, f"{name} must be one of: {', '.join(allowed)}")

    async def authenticate(self, request: web.Request) -> User | None:
        return await self.sessions.user(request)

    def wrap(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Session and role, query and body validation around `route.handler` (routing.py)."""
        return wrap(route, self.sessions.require, self._check_choices, self.config.max_body_bytes)

    # --- helpers -----------------------------------------------------------------

    @staticmethod
    def _path(ctx: Ctx, name: str) -> str:
        """A path parameter (`wrap` checked its pattern)."""
        return ctx.request.match_info[name]

    def _self_or_supervisor(self, ctx: Ctx, agent_no: str) -> None:
        if agent_no != ctx.me.agent_no and not ctx.me.is_supervisor:
            raise ApiError(403, "forbidden", "agents may act only for themselves")

    def _live_call(self, ctx: Ctx) -> dict[str, Any]:
        call_id = self._path(ctx, "call_id")
        for call in self.calls.live_calls():
            if call.get("call_id") == call_id:
                if call.get("agent_id") != ctx.me.agent_no and not ctx.me.is_supervisor:
                    raise ApiError(403, "forbidden", "this call is not yours")
                return call
        raise ApiError(404, "unknown-call", f"no live call {call_id!r}")

    def _agent_state(self, agent_no: str) -> dict[str, Any]:
        state = self.agents.state(agent_no)
        if state is None:
            raise ApiError(404, "unknown-agent", f"no agent {agent_no!r} in the ACD")
        return state

    # --- auth ----------------------------------------------------------------------

    async def login(self, ctx: Ctx) -> web.Response:
        body: LoginIn = ctx.body
        now = self.clock.now()
        ip = ctx.request.remote or "?"
        attempt = self.throttle.begin(body.agent_no, ip, now)  # counted before the (slow) check
        if attempt.wait > 0:
            self._log_refused(body.agent_no, ip, now)
            wait = int(attempt.wait) + 1
            raise ApiError(429, "rate-limited", f"too many failed logins; try again in {wait} s",
                           headers={"Retry-After": str(wait)})
        user = await auth.check_password(self.engine, body.agent_no, body.password)
        if user is None:
            log.info("failed login for %s from %s", body.agent_no, ip)
            raise ApiError(401, "bad-credentials", "wrong agent number or password")
        self.throttle.succeeded(attempt, self.clock.now())
        token, expires = await auth.open_session(self.engine, user, now=now, ttl_s=self.config.session_ttl_s)
        log.info("agent %s logged in from %s", user.agent_no, ip)
        resp = json_reply({"token": token, "expires_at": expires, "user": user.public()})
        resp.set_cookie(COOKIE, token, max_age=int(self.config.session_ttl_s), httponly=True, samesite="Strict",
                        secure=self.config.cookie_secure, path="/")
        return resp

    def _log_refused(self, agent_no: str, ip: str, now: float, every_s: float = 60.0) -> None:
        """One warning per address per minute, with the count it stands for (a guesser cannot flood the log)."""
        last, since = self._refusals.pop(ip, (None, 0))
        if last is not None and now - last < every_s:
            self._refusals[ip] = (last, since + 1)
            return
        more = f" (and {since} more since the last warning)" if since else ""
        log.warning("login for %s from %s refused: rate limited%s", agent_no, ip, more)
        while len(self._refusals) >= 10_000:
            del self._refusals[next(iter(self._refusals))]
        self._refusals[ip] = (now, 0)

    async def logout(self, ctx: Ctx) -> web.Response:
        await auth.close_session(self.engine, auth.request_token(ctx.request))
        resp = json_reply({"ok": True})
        resp.del_cookie(COOKIE, path="/")
        return resp

    async def me(self, ctx: Ctx) -> dict[str, Any]:
        c = self.config

        def names(table: dict[str, Any]) -> dict[str, dict[str, str]]:
            return {code: name.model_dump() for code, name in table.items()}

        return {"user": ctx.me.public(), "not_ready_reasons": names(c.not_ready_reasons),
                "reasons": names(c.reasons), "queues": self.names.get("queues", {}),
                "tiers": self.names.get("tiers", {}),
                # a supervisor or admin who is not an ACD agent gets no agent controls
                "acd_agent": self.agents.state(ctx.me.agent_no) is not None,
                "categories": names(c.disposition_categories), "workorder_categories": sorted(c.workorders.categories),
                "units": names(c.units), "ws_epoch": self.hub.epoch}

    async def add_user(self, ctx: Ctx) -> dict[str, Any]:
        body: UserIn = ctx.body
        try:
            user = await auth.create_user(self.engine, body.agent_no, body.name, body.role, body.password,
                                          now=self.clock.now())
        except auth.UserExists as exc:
            raise ApiError(409, "user-exists", str(exc)) from None
        except ValueError as exc:
            raise ApiError(422, "invalid", str(exc)) from None
        return user.public()

    # --- agents ---------------------------------------------------------------------

    async def list_agents(self, ctx: Ctx) -> list[dict[str, Any]]:
        return self.agents.all_states()

    async def get_agent(self, ctx: Ctx) -> dict[str, Any]:
        agent_no = self._path(ctx, "agent_no")
        self._self_or_supervisor(ctx, agent_no)
        return self._agent_state(agent_no)

    async def set_agent_state(self, ctx: Ctx) -> dict[str, Any]:
        agent_no = self._path(ctx, "agent_no")
        self._self_or_supervisor(ctx, agent_no)
        body: AgentStateIn = ctx.body
        if body.action == "not_ready":
            if body.reason is None:  # a reason that is not configured: refused by wrap (schemas.Choice)
                raise ApiError(422, "unknown-reason", "not_ready needs a reason code, one of: "
                               + ", ".join(self.config.not_ready_reasons))
            await self.agents.set_not_ready(agent_no, body.reason)
        elif body.reason is not None:
            raise ApiError(422, "invalid", f"action {body.action!r} takes no reason")
        elif body.action == "ready":
            await self.agents.set_ready(agent_no)
        elif body.action == "login":
            await self.agents.login(agent_no)
        else:
            await self.agents.logout(agent_no)
            self._staffing_check(agent_no)
        state = self._agent_state(agent_no)
        self.hub.publish_state(agent_no, state)
        if agent_no != ctx.me.agent_no:
            log.info("supervisor %s set agent %s: %s", ctx.me.agent_no, agent_no, body.action)
        return state

    def _staffing_check(self, agent_no: str) -> None:
        """Shift change: an agent leaving below the minimum staffing warns the supervisors."""
        logged_in = sum(1 for s in self.agents.all_states() if s.get("state") != "logged_out")
        if logged_in < self.config.min_logged_in:
            self.hub.publish_supervisors("staffing_warning", {
                "agent_id": agent_no, "logged_in": logged_in, "minimum": self.config.min_logged_in})

    # --- calls -------------------------------------------------------------------------

    async def list_calls(self, ctx: Ctx) -> list[dict[str, Any]]:
        calls = self.calls.live_calls()
        if ctx.me.is_supervisor:
            return calls
        return [c for c in calls if c.get("agent_id") == ctx.me.agent_no]

    async def transfer(self, ctx: Ctx) -> dict[str, Any]:
        call = self._live_call(ctx)
        body: TransferIn = ctx.body
        await self.calls.transfer(call["call_id"], body.target_kind, body.target, body.kind)
        return {"ok": True, "call_id": call["call_id"]}

    async def hangup(self, ctx: Ctx) -> dict[str, Any]:
        call = self._live_call(ctx)
        await self.calls.hangup(call["call_id"])
        return {"ok": True, "call_id": call["call_id"]}

    async def escalate(self, ctx: Ctx) -> dict[str, Any]:
        call = self._live_call(ctx)
        body: EscalateIn = ctx.body
        await self.calls.transfer(call["call_id"], "queue", self.config.escalation_target, "attended",
                                  escalated=True)
        self.hub.publish_supervisors("escalation", {"call_id": call["call_id"], "agent_id": ctx.me.agent_no,
                                                    "note": body.note})
        return {"ok": True, "call_id": call["call_id"], "escalated": True}

    async def set_priority(self, ctx: Ctx) -> dict[str, Any]:
        call_id = self._path(ctx, "call_id")
        body: PriorityIn = ctx.body
        result = self.wallboard.set_priority(call_id, body.tier, ctx.me.agent_no)
        if result.get("changed"):
            log.info("supervisor %s moved waiting caller %s from %s to %s", ctx.me.agent_no, call_id,
                     result.get("previous"), body.tier)
            self.hub.publish_wallboard(await self.wallboard_snapshot())  # every board shows the new order
        return result

    # --- customers ---------------------------------------------------------------------

    async def lookup_customer(self, ctx: Ctx) -> dict[str, Any]:
        q: CustomerQuery = ctx.query  # exactly one of phone or account
        record = (await self.customers.by_phone(q.phone) if q.phone is not None
                  else await self.customers.by_account(q.account or ""))
        if record is None:
            raise ApiError(404, "unknown-customer", "no customer with that phone or account")
        return record

    # --- dispositions ---------------------------------------------------------------------

    async def add_disposition(self, ctx: Ctx) -> dict[str, Any]:
        body: DispositionIn = ctx.body
        row = await dispositions.record(self.engine, fields=body.model_dump(), agent_no=ctx.me.agent_no,
                                        now=self.clock.now())
        self.emit(dispositions.as_event(row))
        return row

    async def list_dispositions(self, ctx: Ctx) -> list[dict[str, Any]]:
        q: DispositionQuery = ctx.query
        return await dispositions.list_for(self.engine, call_id=q.call_id,
                                           agent_no=None if ctx.me.is_supervisor else ctx.me.agent_no,
                                           limit=q.limit)

    # --- work orders ------------------------------------------------------------------------

    def _wo_event(self, row: dict[str, Any], action: str, agent_no: str) -> Event:
        return Event(kind=Kind.WORKORDER, ts=self.clock.now(), call_id=row.get("call_id"), agent_id=agent_no,
                     data={"id": row["id"], "action": action, "category": row["category"],
                           "due_ts": row["due_ts"], "unit": row.get("unit")})

    async def create_workorder(self, ctx: Ctx) -> dict[str, Any]:
        body: WorkOrderIn = ctx.body
        now = self.clock.now()
        fields = body.model_dump()
        if fields["call_time"] is None:
            fields["call_time"] = now
        if fields["call_time"] > now + 300:
            raise ApiError(422, "invalid", "call_time is in the future")
        row = await workorders.create(self.engine, fields=fields, agent_no=ctx.me.agent_no, now=now,
                                      config=self.config)
        self.emit(self._wo_event(row, "open", ctx.me.agent_no))
        return workorders.visible(row, ctx.me.role, self.config, now)

    async def list_workorders(self, ctx: Ctx) -> list[dict[str, Any]]:
        q: WorkOrderQuery = ctx.query
        now = self.clock.now()
        rows = await workorders.list_for(self.engine, account=q.account, number=q.number, status=q.status,
                                         overdue_at=now if q.overdue else None, limit=q.limit,
                                         anonymous_of=ctx.me.agent_no,
                                         all_anonymous=ctx.me.role in self.config.identity_roles)
        return [workorders.visible(r, ctx.me.role, self.config, now) for r in rows]

    async def _workorder(self, ctx: Ctx) -> dict[str, Any]:
        wo_id = self._path(ctx, "wo_id")
        row = await workorders.get(self.engine, int(wo_id))
        if row is None or not workorders.may_see(row, ctx.me.agent_no, ctx.me.role, self.config):
            raise ApiError(404, "unknown-workorder", f"no work order {wo_id}")
        return row

    async def get_workorder(self, ctx: Ctx) -> dict[str, Any]:
        row = await self._workorder(ctx)
        out = workorders.visible(row, ctx.me.role, self.config, self.clock.now())
        out["history"] = await workorders.history(self.engine, row["id"])
        return out

    async def workorder_status(self, ctx: Ctx) -> dict[str, Any]:
        row = await self._workorder(ctx)
        body: WorkOrderStatusIn = ctx.body
        if body.satisfaction_callback and body.status != "closed":
            raise ApiError(422, "invalid", "satisfaction_callback goes with status 'closed'")
        if body.status == "reopened":  # the customer is not satisfied: a supervisor's decision, with the reason
            if not ctx.me.is_supervisor:
                raise ApiError(403, "forbidden", "only a supervisor reopens a work order")
            if not body.note.strip():
                raise ApiError(422, "note-required", "say why the customer is not satisfied (note)")
        if body.satisfaction_callback and self.request_callback is None:
            raise ApiError(409, "callbacks-unavailable", "satisfaction callbacks are not configured")
        now = self.clock.now()
        new, previous = await workorders.change_status(self.engine, row["id"], target=body.status,
                                                       agent_no=ctx.me.agent_no, note=body.note, unit=body.unit,
                                                       now=now, config=self.config)
        self.emit(self._wo_event(new, body.status, ctx.me.agent_no))
        if body.status == "closed" and self.request_callback is not None:
            # every closure goes to outbound, which decides (outbound.yaml callbacks: complaints always,
            # others when ticked and sampled)
            await self.request_callback(workorder_id=new["id"], number=new["incoming_number"],
                                  category=new["category"], account=new.get("customer_account"),
                                  requested=body.satisfaction_callback, anonymous=bool(new.get("anonymous")),
                                  call_id=new.get("call_id"), agent_id=new.get("created_by"))
        out = workorders.visible(new, ctx.me.role, self.config, now)
        out["previous_status"] = previous
        return out

    # --- wallboard -----------------------------------------------------------------------------

    async def wallboard_snapshot(self) -> dict[str, Any]:
        """The WallboardSource figures plus overdue work orders (from the database)."""
        now = self.clock.now()
        snap = dict(self.wallboard.snapshot())
        overdue = await workorders.list_for(self.engine, account=None, number=None, status=None,
                                            overdue_at=now, limit=20)
        snap["overdue_workorders"] = [
            {"id": r["id"], "category": r["category"], "unit": r["unit"], "status": r["status"],
             "overdue_s": round(now - r["due_ts"])} for r in overdue]
        snap["ts"] = now
        return snap

    async def get_wallboard(self, ctx: Ctx) -> dict[str, Any]:
        return await self.wallboard_snapshot()

    def ws_snapshot(self, user: User) -> dict[str, Any]:
        """Current state for a (re)connecting page: own ACD state, the live pop; for supervisors all agents."""
        snap: dict[str, Any] = {"state": self.agents.state(user.agent_no),
                                "pop": self.hub.active_pop(user.agent_no)}
        if user.is_supervisor:
            snap["agents"] = self.agents.all_states()
            snap["wallboard"] = self.hub.latest_wallboard
        return snap

    # --- OpenAPI ---------------------------------------------------------------------------------

    async def openapi_doc(self, ctx: Ctx) -> dict[str, Any]:
        """Every route of the app this handler serves in (not only the desktop's), as openapi.py builds it."""
        router = ctx.request.app.router
        if self._doc is None or self._doc[0] is not router:
            self._doc = (router, openapi(router, self.choices(), title="ctiserver"))
        return self._doc[1]
