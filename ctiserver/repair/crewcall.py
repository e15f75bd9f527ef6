"""A new repair order reaches its crew (issue 16): an SMS with the link to the order's page (accept, arrived,
done), and a call that reads the order out and takes 1 to accept.

    dispatch ─▶ SMS crew_order (link <page_base>/crew/<token>)
             └▶ call: AMI Originate ─▶ dialplan [crew-call] (MSG: the order in TTS; Read one key)
                   ─▶ UserEvent CrewCallResult (ChannelId, Digit) | OriginateResponse failure | Hangup
                   1 ─▶ the order is acknowledged (step ack, user crew-call)
                   else ─▶ `next_call`: again after retry_s, up to max_attempts, not past the acknowledge
                           deadline; then no more calls (the watch escalates to the shift leader)

`next_call` is the pure rule; `CrewNotifier` is the feature (`running()`): its task places the calls that
are due and settles their results. Each call is an event `repair.call` (order, attempt, outcome, digit).
On start it calls every order still waiting for its crew's acknowledgement (a restart, a new leader).
The watch's reminders go to the crew and its escalations to the shift leader by SMS (`on_alert`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ..clock import Clock
from ..events import Event, Kind
from ..lifecycle import TaskOwner
from ..outages.model import when
from ..sms.service import SmsRequest, SmsService
from ..workorders.deadlines import CrewDeadlines
from . import engine
from .engine import DISPATCHED, IllegalStep, Order
from .model import CrewsConfig
from .service import RepairService

log = logging.getLogger(__name__)

PREFIX = "crew-"  # our Originate ChannelIds: crew-<order>-<attempt>-<random>
CONTEXT = "crew-call"
SETTLE_S = 3.0  # a Hangup waits this long for the OriginateResponse or the dialplan's result
REASONS = {"5": "busy", "8": "congestion", "3": "no_answer", "1": "no_answer", "0": "no_answer"}
Prompt = Callable[[str, str], Awaitable[str]]  # (text, language) -> sound name (the IVR's TTS)
ALERT_WORDS = {
    "zh": {"reminder": "提醒", "escalation": "超期升级", "acknowledge": "接单", "arrive": "到达现场",
           "report": "30分钟报告", "restore": "恢复供电"},
    "en": {"reminder": "reminder", "escalation": "escalation", "acknowledge": "accept", "arrive": "arrival",
           "report": "30-minute report", "restore": "restoration"},
}


class Ami(Protocol):
    async def action(self, name: str, fields: dict[str, Any] | None = None, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class CallPlan:
    """One order's calls: how many were placed, the last outcome, when the next is due (None: no more)."""

    order_id: int
    attempts: int = 0
    last: str = ""
    next_ts: float | None = None


def next_call(plan: CallPlan, outcome: str, now: float, *, retry_s: float, max_attempts: int,
              ack_due_ts: float) -> CallPlan:
    """The plan after a call ended with `outcome` (accepted: done; else again if attempts and time are left)."""
    if outcome == "accepted" or plan.attempts >= max_attempts or now + retry_s >= ack_due_ts:
        return replace(plan, last=outcome, next_ts=None)
    return replace(plan, last=outcome, next_ts=now + retry_s)


def words(order: Order, team: str, arrive_by: str) -> dict[str, str]:
    return {"team": team, "order": str(order.id), "area": order.area, "area_class": order.area_class,
            "arrive_by": arrive_by}


class CrewNotifier:
    def __init__(self, repair: RepairService, cfg: CrewsConfig, table: CrewDeadlines, clock: Clock,
                 emit: Callable[[Event], None], *, sms: SmsService | None, ami: Ami | None, prompt: Prompt | None,
                 channel: str, caller_id: str) -> None:
        self.repair, self.cfg, self.table, self.clock, self.emit = repair, cfg, table, clock, emit
        self.sms, self.ami, self.prompt = sms, ami, prompt
        self.channel, self.caller_id = channel, caller_id
        self.plans: dict[int, CallPlan] = {}
        self._live: dict[str, tuple[int, float | None]] = {}  # channel id -> (order, hung up at)
        self._results: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()  # (channel id, outcome, digit)
        self._wake = asyncio.Event()
        self._running = False

    def _arrive_by(self, order: Order) -> str:
        due = self.table.arrive_for(order.area_class).due_ts(order.dispatched_ts)
        return when(due, self.cfg.calendar, self.cfg.call.lang)

    def _ack_due(self, order: Order) -> float:
        return self.table.acknowledge.due_ts(order.dispatched_ts)

    # --- the dispatch hook (RepairService on_dispatch) ------------------------------------------------
    async def on_dispatch(self, order: Order, row: dict[str, Any]) -> None:
        crew = self.cfg.crew(order.crew)
        if crew is None:
            return
        if self.cfg.call.enabled:
            self.plans[order.id] = CallPlan(order.id, next_ts=self.clock.now())
            self._wake.set()
        if self.sms is not None and self.sms.cfg.enabled:
            link = f"{self.cfg.page_base.rstrip('/')}/crew/{row['token']}"
            await self.sms.send(SmsRequest("crew_order", crew.phone, {
                **words(order, crew.team, self._arrive_by(order)), "link": link},
                lang=self.cfg.call.lang, area=order.area, ref=f"crew:{order.id}"))

    # --- the watch's reminders and escalations (RepairService on_alert) --------------------------------
    async def on_alert(self, alert: engine.Alert, order: Order, who: str) -> None:
        """A reminder to the crew, an escalation to the shift leader (or the crew when there is none): an SMS."""
        crew = self.cfg.crew(order.crew)
        leader = self.cfg.shift_leader
        phone = leader.phone if alert.level == "escalation" and leader is not None else (crew.phone if crew else "")
        if not phone or self.sms is None or not self.sms.cfg.enabled:
            return
        lang = self.cfg.call.lang
        _, row = await self.repair.store.get(order.id)
        words_ = ALERT_WORDS[lang]
        await self.sms.send(SmsRequest("crew_alert", phone, {
            "level": words_[alert.level], "team": crew.team if crew else order.crew, "order": str(order.id),
            "area": order.area, "step": words_[alert.step], "due": when(alert.due_ts, self.cfg.calendar, lang),
            "link": f"{self.cfg.page_base.rstrip('/')}/crew/{row['token']}"},
            lang=lang, area=order.area, ref=f"crew:{order.id}"))

    # --- AMI events (a plain listener: never blocks) --------------------------------------------------
    def on_ami(self, server: str, msg: Any) -> None:
        """Only our crew calls' events wake the loop (every hang-up on the PBX once did)."""
        if not self._live:
            return
        event = msg.get("Event")
        if event == "UserEvent" and msg.get("UserEvent") == "CrewCallResult":
            cid = str(msg.get("ChannelId") or "")
            if cid in self._live:
                digit = str(msg.get("Digit") or "").strip()
                self._results.put_nowait((cid, "accepted" if digit == "1" else "no_key", digit))
                self._wake.set()
        elif event == "OriginateResponse":
            cid = str(msg.get("Uniqueid") or msg.get("ChannelId") or "")
            if cid in self._live and str(msg.get("Response") or "").lower() != "success":
                self._results.put_nowait((cid, REASONS.get(str(msg.get("Reason") or ""), "failed"), ""))
                self._wake.set()
        elif event == "Hangup":
            cid = str(msg.get("Uniqueid") or "")
            if cid in self._live and self._live[cid][1] is None:
                self._live[cid] = (self._live[cid][0], time.monotonic())
                self._wake.set()

    # --- calls ---------------------------------------------------------------------------------------
    async def _place(self, order: Order, plan: CallPlan) -> None:
        crew = self.cfg.crew(order.crew)
        assert crew is not None and self.ami is not None and self.prompt is not None
        lang = self.cfg.call.lang
        text = getattr(self.cfg.call.say, lang).format_map(words(order, crew.team, self._arrive_by(order)))
        attempt = plan.attempts + 1
        self.plans[order.id] = replace(plan, attempts=attempt, next_ts=None)
        cid = f"{PREFIX}{order.id}-{attempt}-{secrets.token_hex(4)}"
        self._live[cid] = (order.id, None)
        self._event(order.id, attempt, "dialing", number=crew.phone)
        try:
            sound = await self.prompt(text, lang)
            reply = await self.ami.action("Originate", {
                "Channel": self.channel.format(number=crew.phone), "Context": CONTEXT, "Exten": "s",
                "Priority": "1", "Timeout": str(int(self.cfg.call.ring_s * 1000)), "CallerID": self.caller_id,
                "Async": "true", "ChannelId": cid,
                "Variable": [f"MSG={sound}", f"CREW_ORDER={order.id}", f"CREW_CALL={cid}"]})
            if not reply.success:
                self._results.put_nowait((cid, "failed", ""))
        except Exception as exc:  # no call was placed, or its fate is unknown: count it as failed
            log.warning("repair order %s: crew call not placed: %s", order.id, exc)
            self._results.put_nowait((cid, "failed", ""))

    async def _settle(self, cid: str, outcome: str, digit: str) -> None:
        entry = self._live.pop(cid, None)
        if entry is None:
            return  # settled already (a late partner of the same call)
        order_id = entry[0]
        plan = self.plans.get(order_id, CallPlan(order_id))
        self._event(order_id, plan.attempts, outcome, digit=digit)
        try:
            order, _ = await self.repair.store.get(order_id)
        except LookupError:
            self.plans.pop(order_id, None)
            return
        if outcome == "accepted":
            try:
                await self.repair.act(order_id, "ack", user="crew-call")
            except IllegalStep:
                pass  # the crew accepted on its page meanwhile
        after = next_call(plan, outcome, self.clock.now(), retry_s=self.cfg.call.retry_s,
                          max_attempts=self.cfg.call.max_attempts, ack_due_ts=self._ack_due(order))
        if after.next_ts is None:
            self.plans.pop(order_id, None)
            if outcome != "accepted":
                log.warning("repair order %s: crew %s not reached by phone after %d call(s) (%s)", order_id,
                            order.crew, plan.attempts, outcome)
                self._event(order_id, plan.attempts, "given_up", last=outcome)
        else:
            self.plans[order_id] = after

    def _event(self, order_id: int, attempt: int, outcome: str, **data: Any) -> None:
        self.emit(Event(Kind.REPAIR_CALL, self.clock.now(), data={"id": order_id, "attempt": attempt,
                                                                  "outcome": outcome, **data}))

    async def round(self) -> float:
        """Settle the results in, place the calls due; seconds until the next round should run."""
        while not self._results.empty():
            await self._settle(*self._results.get_nowait())
        mono = time.monotonic()
        for cid, (_, hung_up) in list(self._live.items()):
            if hung_up is not None and mono - hung_up >= SETTLE_S:
                await self._settle(cid, "no_key", "")  # ended with no result from the dialplan
        now = self.clock.now()
        wait = self.cfg.poll_s
        busy = {order_id for order_id, _ in self._live.values()}
        for plan in list(self.plans.values()):
            if plan.next_ts is None or plan.order_id in busy:
                continue
            if plan.next_ts > now:
                wait = min(wait, plan.next_ts - now)
                continue
            order, _ = await self.repair.store.get(plan.order_id)
            if order.stage != DISPATCHED or self.ami is None or self.prompt is None:
                self.plans.pop(plan.order_id, None)  # acknowledged meanwhile (or no way to call)
                continue
            await self._place(order, plan)
        if any(h is not None for _, h in self._live.values()):
            wait = min(wait, SETTLE_S)
        return max(wait, 0.05)

    async def _resume(self) -> None:
        """Orders still waiting for their crew when this node starts leading: called again."""
        now = self.clock.now()
        for order in await self.repair.store.open_orders():
            if order.stage == engine.DISPATCHED and now < self._ack_due(order) and order.id not in self.plans:
                self.plans[order.id] = CallPlan(order.id, next_ts=now)

    async def _run(self, tasks: TaskOwner) -> None:
        if self.cfg.call.enabled:
            try:
                await self._resume()
            except Exception as exc:
                log.warning("crew calls: open orders not read: %s", exc)
        while True:
            self._wake.clear()
            try:
                wait = await self.round()
            except Exception as exc:
                log.warning("crew call round failed: %s", exc)
                wait = self.cfg.poll_s
            if not await tasks.idle(wait, self._wake):
                return

    @asynccontextmanager
    async def running(self) -> AsyncIterator[CrewNotifier]:
        async with TaskOwner("crew calls", grace_s=5.0) as tasks:
            tasks.spawn(self._run(tasks), name="crew-calls")
            yield self
