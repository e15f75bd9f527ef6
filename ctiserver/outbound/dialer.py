"""The asyncio edge of outbound: asks the scheduler whom to call, writes, dials, records outcomes.

Order per call: scheduler picks -> attempt committed as `dialing` -> `outbound.attempt`
emitted -> Originate with our ChannelId. If the process dies anywhere after the
commit, restart finds the attempt in flight and asks Asterisk (`is_live`): a live
call is left to finish and report; a dead one is recorded as `lost`, which counts
as an attempt. So a crash can cost an attempt, never add one.

Originate failures: `OriginateRejected` means Asterisk refused it (no call: outcome
`failed`); any other error or timeout leaves the call's fate unknown, so the attempt
stays `dialing` until `is_live` says otherwise. We never send an Originate twice.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Protocol

from ..clock import Clock
from ..events import Event, Kind
from ..lifecycle import TaskOwner
from .messages import MessageError, message_language, render, sound_name
from .model import ContactStatus, Dial, OutboundConfig, Outcome
from .rules import classify
from .scheduler import Plan, Scheduler
from .store import AttemptConflict, CampaignRecord, Claim, Finished, OutboundStore

log = logging.getLogger(__name__)

STOP_GRACE_S = 5.0  # how long a stop waits for the round under way


class Originator(Protocol):
    """What the dialer needs from AMI (the lead's adapter implements it over the AMI client)."""

    async def originate(self, channel_id: str, number: str, context: str, exten: str,
                        variables: dict[str, str], timeout_s: float) -> None:
        """Send one async Originate with ChannelId=channel_id (and ActionID=channel_id); never retry it."""
        ...

    async def is_live(self, channel_id: str) -> bool:
        """Whether Asterisk has a channel with this id now (raise if Asterisk cannot be asked)."""
        ...

# An Originator may also offer `ready() -> bool` (e.g. the AMI link is up); while it says
# False the dialer starts no attempt, so an outage of the link costs no contact an attempt. And
# `room() -> float`: how many calls it can start now (a pool's channel limits); the plan stops there.


class OriginateRejected(Exception):
    """Asterisk answered the Originate with an error: no call was placed; the attempt counts as failed."""


class OriginateNotSent(Exception):
    """The Originate certainly never reached a working Asterisk (link down, shutting down): the attempt
    is voided and the contact keeps its count, as if the dialer had not picked it."""


PromptFn = Callable[[str, str], Awaitable[str]]  # (text, language) -> sound name such as "cti/ab12"
Emit = Callable[[Event], None]

_UNSAFE = re.compile(r"[\x00-\x1f\x7f,|]")


def safe_value(value: str) -> str:
    """Strip what could break an AMI header or a dialplan argument (CR/LF, commas, pipes)."""
    return _UNSAFE.sub(" ", value).strip()[:200]


async def _default_prompt(text: str, lang: str) -> str:
    return sound_name(text, lang)


class Dialer:
    def __init__(self, store: OutboundStore, scheduler: Scheduler, originator: Originator, clock: Clock,
                 emit: Emit, *, config: OutboundConfig | None = None, prompt: PromptFn | None = None,
                 originate_timeout_s: float = 10.0, page: int = 500, claim: Claim | None = None) -> None:
        self.store = store
        self.claim = claim  # HA: each Originate claimed under the leader's epoch with its attempt row
        self.scheduler = scheduler
        self.originator = originator
        self.clock = clock
        self.emit = emit
        self.cfg = config or scheduler.cfg
        self.prompt = prompt or _default_prompt
        self.originate_timeout_s = originate_timeout_s
        self.page = page
        self._results: asyncio.Queue[tuple[str, str, str, bool]] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tasks = TaskOwner("outbound dialer", grace_s=STOP_GRACE_S)
        self._task: asyncio.Task[None] | None = None  # the loop, while it runs
        self._uncertain: dict[str, float] = {}  # channel id -> when its Originate failed uncertainly
        self.last_plan: Plan | None = None
        self._kinds: dict[str, str] = {}  # campaign uid -> kind
        self._campaigns: dict[str, CampaignRecord] = {}  # name -> record (specs never change)
        self._reconcile_all = False

    # --- inputs -------------------------------------------------------------------------------
    def on_result(self, channel_id: str, outcome: str, dtmf: str = "", ended: bool = True) -> None:
        """Called from the AMI reader (plain function, never blocks): queue and wake the loop.
        `ended=False`: a verdict while the call goes on (it stays a live call until a report ends it)."""
        self._results.put_nowait((channel_id, outcome, dtmf, ended))
        self._wake.set()

    def wake(self) -> None:
        """Something changed (a campaign was started or resumed): plan again now."""
        self._wake.set()

    def request_reconcile(self) -> None:
        """After an AMI (re)connect: check every in-flight attempt with Asterisk in the next round."""
        self._reconcile_all = True
        self._wake.set()

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Check the attempts a previous run left in flight, then dial. With the database away the check is
        left to the loop's first round (which retries every poll): the server starts and waits for it."""
        try:
            await self.reconcile()
        except Exception as exc:
            log.warning("outbound dialer: cannot check the attempts in flight yet (%s); retrying", exc)
            self._reconcile_all = True
        self._task = self._tasks.spawn(self._run(), name="outbound-dialer")

    async def stop(self) -> None:
        """A round under way finishes first (up to STOP_GRACE_S; a dial is never cut half-way through its
        database writes), then the loop ends."""
        await self._tasks.aclose(STOP_GRACE_S)
        self._task = None

    async def _run(self) -> None:
        last_check = self.clock.now()
        while True:
            try:
                await self.process_results()  # what Asterisk told us first: it beats a reconcile's "lost"
                if self._reconcile_all:  # cleared only once it went through (the database may be away)
                    await self.reconcile()
                    self._reconcile_all = False
                plan = await self.tick()
                now = self.clock.now()
                if now - last_check >= self.cfg.poll_s * 5:
                    last_check = now
                    await self.reconcile(stale_only=True)
                    await self.store.finish_campaigns(now)
                wait = self.cfg.poll_s
                if plan.next_deadline is not None:
                    wait = min(wait, max(0.01, plan.next_deadline - now))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbound dialer round failed; retrying")
                wait = self.cfg.poll_s
            self._wake.clear()
            if self._results.empty() and not await self._tasks.idle(wait, self._wake):
                return  # stopping: what Asterisk reported meanwhile was handled in this last round

    # --- one round ----------------------------------------------------------------------------
    async def tick(self) -> Plan:
        """Plan at the clock's now and dial what the plan says (attempt written first).

        Campaigns are taken in priority order, each a page of due contacts at a
        time; the next page is read only while the campaign could still dial
        (its due contacts so far were all in quiet hours, capped or busy), so a
        large campaign costs one page per round, not a scan of every contact.
        """
        async with self._lock:
            now = self.clock.now()
            total = Plan([], None)
            ready = getattr(self.originator, "ready", None)
            if callable(ready) and not ready():  # AMI down: do not spend attempts on calls that cannot start
                total.blocked["originator_down"] += 1
                total.next_deadline = now + self.cfg.poll_s
                self.last_plan = total
                return total
            deadlines: list[float] = []
            for name in await self.store.running():
                offset = 0
                while True:
                    snap = await self.store.snapshot(now, self.cfg.caps, campaign=name, limit=self.page,
                                                     offset=offset)
                    plan = self.scheduler.plan(now, snap, self._room())  # dials placed so far are counted there
                    if plan.excluded:
                        await self._exclude(plan)
                    for dial in plan.dials:
                        await self._dial(dial)
                    total.dials += plan.dials
                    total.blocked.update(plan.blocked)
                    if plan.next_deadline is not None:
                        deadlines.append(plan.next_deadline)
                    if plan.overall_full or plan.campaign_full() or not snap.truncated:
                        break
                    offset += self.page
                if total.overall_full:
                    break
            total.next_deadline = min(deadlines) if deadlines else None
            self.last_plan = total
            return total

    def _room(self) -> float:
        """How many calls the originator can still start (a pool's channel limits); unbounded if it
        does not say."""
        room = getattr(self.originator, "room", None)
        return float(room()) if callable(room) else float("inf")

    async def _exclude(self, plan: Plan) -> None:
        """Due contacts whose number went on the do-not-call list or the blacklist since the import."""
        moved = await self.store.exclude_contacts(plan.excluded, self.clock.now())
        by_list = Counter(x.list for x in plan.excluded)
        log.info("%d contact(s) taken out of their campaigns before dialling: %s", moved,
                 ", ".join(f"{n} on the {'do-not-call list' if k == 'dnc' else k}" for k, n in sorted(by_list.items())))

    async def _dial(self, dial: Dial) -> None:
        now = self.clock.now()
        camp = self._campaigns.get(dial.campaign)
        if camp is None:  # a campaign's spec never changes once created
            camp = self._campaigns[dial.campaign] = await self.store.campaign(dial.campaign)
        variables, name, account, area, tier = await self.store.contact_variables(dial.contact)
        lang = message_language(camp.spec, variables)  # the contact's own language when known
        try:
            text = render(camp.spec, self.cfg, name=name, account=account, area=area, variables=variables,
                          today=self.cfg.calendar.today(now), lang=lang)
            sound = await self.prompt(text, lang)
        except MessageError as exc:
            log.error("campaign %s contact %s: cannot build the message: %s",
                      dial.campaign, dial.contact, exc)
            return
        except Exception:
            log.exception("campaign %s: the prompt for contact %s could not be rendered",
                          dial.campaign, dial.contact)
            return
        try:
            await self.store.begin_attempt(dial, now, self.claim)
        except AttemptConflict as exc:
            log.info("not dialing %s: %s", dial.channel_id, exc)
            return
        attempt_event = Event(kind=Kind.OUT_ATTEMPT, ts=now, call_id=dial.channel_id, tier=tier or None,
                              data={"campaign": dial.campaign, "contact": dial.contact, "number": dial.number,
                                    "attempt": dial.attempt_no})
        chan_vars = {
            "MSG": safe_value(sound), "MSG_LANG": lang, "OUT_CAMPAIGN": dial.campaign,
            "OUT_KIND": camp.kind, "OUT_CONTACT": str(dial.contact), "OUT_ATTEMPT": str(dial.attempt_no),
            "OUT_SKILL": self.cfg.dial.agent_skill, "OUT_TIER": safe_value(tier or "normal"),
        }
        try:
            await asyncio.wait_for(
                self.originator.originate(dial.channel_id, dial.number, self.cfg.dial.context,
                                          self.cfg.dial.exten, chan_vars, self.cfg.dial.ring_timeout_s),
                self.originate_timeout_s)
        except OriginateNotSent as exc:
            log.warning("originate %s not sent (%s): the attempt is void", dial.channel_id, exc)
            await self.store.void_attempt(dial.channel_id)
            return
        except OriginateRejected as exc:
            log.warning("originate %s rejected: %s", dial.channel_id, exc)
            self.emit(attempt_event)
            await self._finish(dial.channel_id, Outcome.FAILED, "")
            return
        except Exception as exc:
            log.warning("originate %s: outcome unknown (%s); will ask Asterisk", dial.channel_id, exc)
            self._uncertain[dial.channel_id] = self.clock.now()
        self.emit(attempt_event)

    # --- outcomes -----------------------------------------------------------------------------
    async def process_results(self) -> int:
        """Write every queued outcome; returns how many were new."""
        n = 0
        while not self._results.empty():
            channel_id, outcome, dtmf, ended = self._results.get_nowait()
            if await self._finish(channel_id, outcome, dtmf, ended=ended) is not None:
                n += 1
        return n

    async def _finish(self, channel_id: str, outcome: str, dtmf: str, *, ended: bool = True) -> Finished | None:
        kind = await self._kind_of(channel_id)
        if kind is None:
            return None
        final = classify(kind, outcome, dtmf)
        now = self.clock.now()
        done = await self.store.finish_attempt(channel_id, final, dtmf, now, ended=ended)
        self._uncertain.pop(channel_id, None)
        if done is None:
            self._wake.set()  # perhaps a call ended: a line is free for the next one
            return None
        self.emit(Event(kind=Kind.OUT_RESULT, ts=now, call_id=channel_id, tier=done.tier or None,
                        data={"campaign": done.campaign, "contact": done.contact, "outcome": done.outcome,
                              "attempt": done.attempt_no, "dtmf": done.dtmf, "status": done.contact_status}))
        if done.outcome == Outcome.RATED:
            v = done.variables
            self.emit(Event(kind=Kind.SURVEY_RATING, ts=now, call_id=str(v.get("call_id") or channel_id),
                            agent_id=str(v["agent_id"]) if v.get("agent_id") else None,
                            queue=str(v["queue"]) if v.get("queue") else None, tier=done.tier or None,
                            data={"rating": int(done.dtmf[-1]), "campaign": done.campaign,
                                  "contact": done.contact, "channel_id": channel_id, "source": "campaign"}))
        self._workorder_callback_end(done, now)
        self._wake.set()
        return done

    def _workorder_callback_end(self, done: Finished, now: float) -> None:
        """A satisfaction-survey contact made for a closed work order reached its end: say so (回访率)."""
        v = done.variables
        ends = {ContactStatus.DONE: "done", ContactStatus.NOT_REACHED: "not_reached"}
        if not v.get("workorder_id") or done.contact_status == done.previous_status \
                or done.contact_status not in ends:
            return
        self.emit(Event(kind=Kind.WORKORDER_CALLBACK, ts=now, call_id=str(v["call_id"]) if v.get("call_id") else None,
                        agent_id=str(v["agent_id"]) if v.get("agent_id") else None,
                        queue=str(v["queue"]) if v.get("queue") else None,
                        data={"id": str(v["workorder_id"]), "action": ends[done.contact_status],
                              "category": v.get("category"), "mode": "survey", "campaign": done.campaign}))

    async def _kind_of(self, channel_id: str) -> str | None:
        parts = channel_id.split("-")
        if len(parts) != 4 or parts[0] != "ob":
            return None
        if parts[1] not in self._kinds:
            self._kinds.update({c.uid: c.kind for c in await self.store.campaigns()})
        return self._kinds.get(parts[1])

    # --- crash recovery -----------------------------------------------------------------------
    async def reconcile(self, *, stale_only: bool = False) -> int:
        """Ask Asterisk about attempts still `dialing`; record the dead ones as `lost`.

        At start (and after an AMI reconnect) every in-flight attempt is checked;
        in the periodic sweep only those whose Originate failed uncertainly or that
        have run past ring timeout + max call length.
        """
        async with self._lock:
            now = self.clock.now()
            grace = self.cfg.dial.ring_timeout_s + 5
            lost = 0
            for a in await self.store.in_flight():
                if stale_only:
                    age = now - a.started_ts
                    uncertain = a.channel_id in self._uncertain and age > grace
                    if not (uncertain or age > grace + self.cfg.dial.max_call_s):
                        continue
                try:
                    live = await self.originator.is_live(a.channel_id)
                except Exception as exc:
                    log.warning("cannot ask Asterisk about %s (%s); keeping it in flight", a.channel_id, exc)
                    continue
                if not live and await self._finish(a.channel_id, Outcome.LOST, "") is not None:
                    lost += 1
            return lost
