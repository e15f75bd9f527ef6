"""The campaign scheduler: a pure core that says whom to dial now and when to ask again.

`Scheduler.plan(now, snapshot)` looks at the running campaigns, their pending
contacts, the attempts that are live and the recent deliveries, and returns the
calls to start now plus the next deadline (None: nothing will change until a
call ends or someone changes a campaign). It never touches IO; its only state
is the token buckets, so the same inputs at the same `now` give the same plan.

Order: campaign priority, then contact priority (important/VIP first), then who
has waited longest, then contact id. Limits, all enforced together: max concurrent
and calls/s per campaign and overall, calling windows, working-day calendar,
quiet hours per area and customer, frequency caps per account, one live attempt
per phone number across all campaigns, and never more than `max_attempts`.

The do-not-call list and the blacklist are checked at every dial decision, not only
at import: a due contact whose number is listed now (the snapshot says which) is
never dialled, first attempt or retry; the plan names it in `excluded` so the
adapter takes it out of the campaign.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..calendar import DaysRule
from .model import CampaignSpec, Dial, OutboundConfig, PacingConfig, State, TimeRange, parse_ranges
from .pacing import TokenBucket
from .rules import Delivery, cap_blocked_until, next_allowed


@dataclass(frozen=True, slots=True)
class CampaignView:
    name: str
    uid: str  # random per campaign: makes channel ids unique even across databases
    kind: str
    state: str
    priority: int
    windows: tuple[TimeRange, ...]
    days: DaysRule
    pacing: PacingConfig
    max_attempts: int
    hours: str | None = None  # an hours set of calendar.yaml, in place of windows and days

    @classmethod
    def from_spec(cls, spec: CampaignSpec, uid: str, state: str) -> CampaignView:
        return cls(spec.name, uid, spec.kind, state, spec.priority, spec.window_ranges, spec.days,
                   spec.pacing, spec.retry.max_attempts, spec.hours)


@dataclass(frozen=True, slots=True)
class ContactView:
    id: int
    campaign: str
    number: str
    account: str = ""
    area: str = ""
    priority: int = 0
    quiet: tuple[TimeRange, ...] = ()
    attempts: int = 0  # attempts already started (written before dialing)
    next_due: float = 0.0


@dataclass(frozen=True, slots=True)
class LiveAttempt:
    campaign: str
    contact: int
    number: str
    account: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    campaigns: Sequence[CampaignView]
    contacts: Sequence[ContactView]  # pending contacts (those due now at least)
    live: Sequence[LiveAttempt] = ()
    deliveries: Sequence[Delivery] = ()  # recent deliveries, for frequency caps
    later: float | None = None  # earliest next_due of pending contacts left out of `contacts`
    truncated: bool = False  # more due contacts exist than `contacts` holds (the store pages)
    listed: Mapping[str, str] = field(default_factory=dict)  # numbers of `contacts` on a list now: list name


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A due contact whose number is on the do-not-call list (`dnc`) or the blacklist now."""

    campaign: str
    contact: int
    number: str
    list: str


@dataclass(slots=True)
class Plan:
    dials: list[Dial]
    next_deadline: float | None
    blocked: Counter[str] = field(default_factory=Counter)  # why due contacts were not dialed
    excluded: list[Exclusion] = field(default_factory=list)  # to take out of their campaigns

    @property
    def overall_full(self) -> bool:
        """No campaign can start another call this round (overall concurrency or rate)."""
        return bool(self.blocked["max_concurrent"] or self.blocked["overall_calls_per_s"])

    def campaign_full(self) -> bool:
        """Some campaign in this plan reached its own concurrency or rate limit."""
        return bool(self.blocked["campaign_max_concurrent"] or self.blocked["calls_per_s"])


def channel_id(campaign_uid: str, contact: int, attempt_no: int) -> str:
    """Our ChannelId for an attempt: deterministic, so a replayed plan cannot make a second call."""
    return f"ob-{campaign_uid}-{contact}-{attempt_no}"


class Scheduler:
    def __init__(self, cfg: OutboundConfig) -> None:
        self.cfg = cfg
        self.calendar = cfg.calendar
        self.default_quiet = tuple(TimeRange.parse(r) for r in cfg.quiet_hours.default)
        self.area_quiet = {area: tuple(TimeRange.parse(r) for r in ranges)
                           for area, ranges in cfg.quiet_hours.areas.items()}
        self._buckets: dict[str, TokenBucket] = {}

    def _bucket(self, key: str, pacing: PacingConfig, now: float) -> TokenBucket:
        b = self._buckets.get(key)
        if b is None or not b.same_shape(pacing.calls_per_s, pacing.burst):
            b = TokenBucket(pacing.calls_per_s, pacing.burst, now)
            self._buckets[key] = b
        return b

    def quiet_for(self, area: str, own: tuple[TimeRange, ...]) -> tuple[TimeRange, ...]:
        return self.default_quiet + self.area_quiet.get(area, ()) + own

    def plan(self, now: float, snap: Snapshot, room: float = float("inf")) -> Plan:
        """`room`: how many more calls the Asterisk servers can take now (their channel limits), beside
        the campaigns' own pacing."""
        blocked: Counter[str] = Counter()
        deadlines: list[float] = [snap.later] if snap.later is not None else []
        running = {c.name: c for c in snap.campaigns if c.state == State.RUNNING}
        live_per_campaign = Counter(a.campaign for a in snap.live)
        live_total = len(snap.live)
        busy_numbers = {a.number for a in snap.live}
        busy_contacts = {(a.campaign, a.contact) for a in snap.live}
        kinds = {c.name: c.kind for c in snap.campaigns}
        history: dict[tuple[str, str], list[Delivery]] = defaultdict(list)
        for d in snap.deliveries:
            history[(d.account, d.kind)].append(d)
        for a in snap.live:
            if a.account:
                kind = kinds.get(a.campaign, "")
                history[(a.account, kind)].append(Delivery(a.account, kind, now))

        excluded: list[Exclusion] = []
        open_cache: dict[tuple[str, str, tuple[TimeRange, ...]], float | None] = {}
        candidates: list[tuple[tuple[int, int, float, int], ContactView, CampaignView]] = []
        for c in snap.contacts:
            camp = running.get(c.campaign)
            if camp is None:
                continue
            if c.attempts >= camp.max_attempts:
                blocked["max_attempts"] += 1
                continue
            if (c.campaign, c.id) in busy_contacts:
                blocked["in_call"] += 1
                continue
            if c.next_due > now:
                deadlines.append(c.next_due)
                continue
            listed = snap.listed.get(c.number)
            if listed is not None:
                blocked["dnc" if listed == "dnc" else "blacklist"] += 1
                excluded.append(Exclusion(c.campaign, c.id, c.number, listed))
                continue
            key = (camp.name, c.area, c.quiet)
            if key not in open_cache:
                open_cache[key] = next_allowed(now, camp.windows, self.quiet_for(c.area, c.quiet),
                                               camp.days, self.calendar, camp.hours)
            opens = open_cache[key]
            if opens is None:
                blocked["no_window"] += 1
                continue
            if opens > now:
                blocked["outside_window"] += 1
                deadlines.append(opens)
                continue
            candidates.append(((-camp.priority, -c.priority, c.next_due, c.id), c, camp))
        candidates.sort(key=lambda t: t[0])

        glob = self._bucket("*", self.cfg.pacing, now)
        dials: list[Dial] = []
        picked_per_campaign: Counter[str] = Counter()
        picked_numbers: set[str] = set()
        full: dict[str, str] = {}  # campaign -> why it can take no more calls this round
        for i, (_, c, camp) in enumerate(candidates):
            if live_total + len(dials) >= self.cfg.pacing.max_concurrent:
                blocked["max_concurrent"] += len(candidates) - i
                break  # nothing more can start until a call ends
            if len(dials) >= room:
                blocked["servers_full"] += len(candidates) - i
                break  # no server has a channel for it: no token spent, no attempt voided
            if not glob.ready(now):
                blocked["overall_calls_per_s"] += len(candidates) - i
                deadlines.append(now + glob.wait(now))
                break
            if camp.name in full:
                blocked[full[camp.name]] += 1
                continue
            if c.number in busy_numbers or c.number in picked_numbers:
                blocked["number_busy"] += 1
                continue
            until = cap_blocked_until(c.account, camp.kind, now, self.cfg.caps,
                                      history.get((c.account, camp.kind), ()))
            if until is not None:
                blocked["frequency_cap"] += 1
                deadlines.append(until)
                continue
            if live_per_campaign[camp.name] + picked_per_campaign[camp.name] >= camp.pacing.max_concurrent:
                full[camp.name] = "campaign_max_concurrent"
                blocked["campaign_max_concurrent"] += 1
                continue
            bucket = self._bucket(camp.name, camp.pacing, now)
            if not bucket.ready(now):
                full[camp.name] = "calls_per_s"
                blocked["calls_per_s"] += 1
                deadlines.append(now + bucket.wait(now))
                continue
            bucket.take(now)
            glob.take(now)
            attempt_no = c.attempts + 1
            dials.append(Dial(camp.name, c.id, c.number, attempt_no, channel_id(camp.uid, c.id, attempt_no)))
            picked_per_campaign[camp.name] += 1
            picked_numbers.add(c.number)
            if c.account:
                history[(c.account, camp.kind)].append(Delivery(c.account, camp.kind, now))
        future = [d for d in deadlines if d > now]
        return Plan(dials, min(future) if future else None, blocked, excluded)


def contact_view(row_id: int, campaign: str, number: str, account: str, area: str, priority: int,
                 quiet: str, attempts: int, next_due: float) -> ContactView:
    """Build a ContactView from stored columns (quiet hours as text)."""
    try:
        ranges = parse_ranges(quiet)
    except ValueError:
        ranges = (TimeRange(0, 1440),)  # unreadable quiet hours: respect them by never calling
    return ContactView(row_id, campaign, number, account or "", area or "", priority, ranges, attempts,
                       next_due)
