"""The SMS feature: messages accepted (rendered, checked, stored), sent by one loop, settled by reports.

    send() ─▶ store (queued) ─▶ wake the sender
    sender round: due messages ─▶ engine.plan (DNC, windows, quiet hours, caps) ─▶ gateway.submit
                  ─▶ engine.after_submit ─▶ store (conditional on what was read)
    /api/sms/dlr ─▶ on_dlr ─▶ engine.after_dlr ─▶ store ─▶ fallback (a call) when it gave up

`running()` is the feature (ctiserver/lifecycle.py): the sender task and the gateway's connections.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ..clock import Clock
from ..ivr.template import render
from ..lifecycle import TaskOwner
from ..numbers import NumberError, normalise_number
from . import engine
from .encoding import encode
from .engine import SendRules, State
from .kannel import Outgoing, SubmitResult
from .model import SmsConfig
from .store import NewSms, SmsRow, SmsStore

log = logging.getLogger(__name__)


class SmsError(ValueError):
    """A message that cannot be sent as asked (bad number, unknown kind or language, too long)."""


class Gateway(Protocol):
    async def submit(self, msg: Outgoing) -> SubmitResult: ...
    async def aclose(self) -> None: ...


Listed = Callable[[Sequence[str]], Awaitable[Mapping[str, str]]]
Fallback = Callable[[SmsRow], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SmsRequest:
    kind: str
    number: str
    fields: Mapping[str, Any]
    lang: str = "zh"
    account: str = ""
    area: str = ""
    quiet: str = ""
    ref: str = ""
    due: float | None = None  # not before this (None: now)


async def _nobody_listed(numbers: Sequence[str]) -> Mapping[str, str]:
    return {}


class SmsService:
    def __init__(self, cfg: SmsConfig, store: SmsStore, gateway: Gateway, clock: Clock, rules: SendRules, *,
                 listed: Listed = _nobody_listed, fallback: Fallback | None = None,
                 on_final: Callable[[SmsRow, str], None] | None = None) -> None:
        self.cfg, self.store, self.gateway, self.clock, self.rules = cfg, store, gateway, clock, rules
        self.listed = listed
        self.fallback = fallback
        self.on_final = on_final  # a message reached a final state (the event log: KPIs)
        self._wake = asyncio.Event()
        self.rounds = 0  # sender rounds completed (tests wait on it)
        self.settled = asyncio.Condition()  # notified after every round and report

    # --- accepting messages -------------------------------------------------------------------
    def compose(self, req: SmsRequest) -> NewSms:
        """Render and check one message (SmsError saying what is wrong); nothing is stored."""
        if req.lang not in ("zh", "en"):
            raise SmsError(f"unknown language {req.lang!r}: zh or en")
        tpl = self.cfg.templates.text(req.kind, req.lang) if self.cfg.templates is not None else None
        if tpl is None:
            raise SmsError(f"no SMS template for {req.kind!r} (sms.yaml templates)")
        try:
            number = normalise_number(req.number)
        except NumberError as exc:
            raise SmsError(f"{req.number!r}: {exc}") from None
        text = render(tpl, dict(req.fields)).strip()
        enc = encode(text)
        if enc.parts > self.cfg.max_parts:
            raise SmsError(f"{req.kind} message is {enc.parts} parts long (sms.yaml max_parts: {self.cfg.max_parts})")
        return NewSms(kind=req.kind, number=number, text=text, coding=enc.coding, parts=enc.parts, lang=req.lang,
                      account=req.account, area=req.area, quiet=req.quiet, ref=req.ref, due=req.due)

    async def send(self, req: SmsRequest) -> int:
        """Store one message for sending; its id."""
        return (await self.send_many([req]))[0]

    async def send_many(self, reqs: Sequence[SmsRequest]) -> list[int]:
        """All or none: every message is checked before any is stored."""
        if not self.cfg.enabled:
            raise SmsError("SMS is disabled (sms.yaml enabled: false, or no sms.yaml)")
        items = [self.compose(r) for r in reqs]
        ids = await self.store.add(items, self.clock.now())
        self._wake.set()
        return ids

    # --- delivery reports -----------------------------------------------------------------------
    async def on_dlr(self, msg_id: int, token: str, status: int, answer: str = "") -> bool:
        """A report from Kannel. False: no such message (or a wrong token); nothing changes."""
        for _ in range(5):  # the sender may move the row between our read and our write: read again
            row = await self.store.get(msg_id)
            if row is None or not hmac.compare_digest(row.token, token):
                return False
            if row.msg.state not in engine._ALLOWED["dlr"]:
                return True
            now = self.clock.now()
            after = engine.after_dlr(row.msg, status, now, self.cfg, answer)
            if after == row.msg:
                return True
            if await self.store.save(row.msg, after, now, dlr=status):
                await self._settle(row, after)
                return True
        log.warning("SMS %s: delivery report %s not applied (the row kept changing)", msg_id, status)
        return True

    async def _settle(self, row: SmsRow, after: engine.Message) -> None:
        if after.state in engine.FINAL and after.state != row.msg.state and self.on_final is not None:
            self.on_final(row, after.state)
        if after.state == State.FALLBACK and self.fallback is not None:
            try:
                await self.fallback(row)
            except Exception:
                log.exception("SMS %s: the fallback call could not be arranged", row.id)
        if after.state in (State.FALLBACK, State.FAILED):
            log.info("SMS %s to %s (%s) not delivered after %d attempt(s): %s; %s", row.id, row.msg.number,
                     row.msg.kind, after.attempts, after.error,
                     "a call is placed instead" if after.state == State.FALLBACK else "given up")
        async with self.settled:
            self.settled.notify_all()

    # --- the sender -------------------------------------------------------------------------------
    async def round(self) -> float:
        """Send what is due; the seconds until the next round should run."""
        now = self.clock.now()
        rows = await self.store.due(now, self.cfg.batch)
        wait = self.cfg.poll_s
        queued = [r for r in rows if r.msg.state == State.QUEUED]
        listed = await self.listed([r.msg.number for r in queued]) if queued else {}
        span = max((c.per_days for c in self.cfg.caps), default=0) * 86400
        history = await self.store.history([r.msg.account for r in queued], now - span) if span else []
        for row in rows:
            now = self.clock.now()
            if row.msg.state == State.ACCEPTED:  # no final report in time
                after = engine.after_report_timeout(row.msg, now, self.cfg)
                if await self.store.save(row.msg, after, now):
                    await self._settle(row, after)
                continue
            verdict = engine.plan(row.msg, now, self.rules, self.cfg, listed.get(row.msg.number), history)
            if verdict.action == "exclude":
                after = replace(row.msg, state=State.EXCLUDED, error=verdict.why)
                if await self.store.save(row.msg, after, now):
                    await self._settle(row, after)
                continue
            if verdict.action == "wait":
                assert verdict.until is not None
                await self.store.save(row.msg, replace(row.msg, due=verdict.until), now)
                continue
            result = await self.gateway.submit(Outgoing(row.id, row.token, row.msg.number, row.text, row.coding))
            now = self.clock.now()
            after = engine.after_submit(row.msg, result.outcome, now, self.cfg, result.detail)
            if await self.store.save(row.msg, after, now):
                await self._settle(row, after)
            if result.outcome == "down":  # the rest would fail too: wait for the gateway
                wait = self.cfg.retry.gateway_down_s
                break
        self.rounds += 1
        async with self.settled:
            self.settled.notify_all()
        return wait

    async def _run(self, tasks: TaskOwner) -> None:
        while True:
            self._wake.clear()
            try:
                wait = await self.round()
                nxt = await self.store.next_due()
                if nxt is not None:
                    wait = min(wait, max(0.0, nxt - self.clock.now()))
            except Exception as exc:  # the database may be away for a moment: the messages are still stored
                log.warning("SMS sender round failed: %s", exc)
                wait = self.cfg.poll_s
            if not await tasks.idle(max(wait, 0.05), self._wake):
                return

    @asynccontextmanager
    async def running(self) -> AsyncIterator[SmsService]:
        """The feature: the sender loop (a round under way may finish, up to 5 s) and the gateway client."""
        try:
            async with TaskOwner("SMS", grace_s=5.0) as tasks:
                if self.cfg.enabled:
                    tasks.spawn(self._run(tasks), name="sms-sender")
                yield self
        finally:
            await self.gateway.aclose()

    async def wait_for(self, check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
        """Until `check()` holds, re-checked after every sender round and report (tests, tools)."""
        async def loop() -> None:
            while not await check():
                async with self.settled:
                    await self.settled.wait()
        await asyncio.wait_for(loop(), timeout)

