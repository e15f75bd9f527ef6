"""Randomised crash-and-resume runs: whatever dies when, no contact exceeds its attempts, no number rings twice."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

from ctiserver.clock import FakeClock
from ctiserver.outbound.dialer import Dialer, OriginateRejected
from ctiserver.outbound.model import CampaignSpec, ContactIn, OutboundConfig, Outcome
from ctiserver.outbound.scheduler import Scheduler
from ctiserver.outbound.store import OutboundStore

START = datetime(2026, 11, 23, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
CFG = OutboundConfig.model_validate({
    "pacing": {"max_concurrent": 5, "calls_per_s": 3, "burst": 3},
    "templates": {"survey": {"zh": "请打分", "en": "rate"}, "outage_notice": {"zh": "{area}停电", "en": "x"}},
})
OUTCOMES = [Outcome.BUSY, Outcome.NO_ANSWER, Outcome.CONGESTION, Outcome.FAILED, Outcome.MACHINE,
            Outcome.ANSWERED]


class ChaosAsterisk:
    """Calls live until the test ends them; some Originates are refused or time out."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.live: set[str] = set()
        self.numbers: dict[str, str] = {}
        self.calls: list[str] = []
        self.max_live_per_number = 0

    async def originate(self, channel_id: str, number: str, context: str, exten: str,
                        variables: dict[str, str], timeout_s: float) -> None:
        roll = self.rng.random()
        if roll < 0.05:
            raise OriginateRejected("refused")
        self.calls.append(channel_id)
        self.live.add(channel_id)
        self.numbers[channel_id] = number
        per_number = Counter(self.numbers[c] for c in self.live)
        self.max_live_per_number = max(self.max_live_per_number, max(per_number.values()))
        if roll < 0.10:
            raise TimeoutError("no reply")

    async def is_live(self, channel_id: str) -> bool:
        if self.rng.random() < 0.1:
            raise ConnectionError("AMI blip")
        return channel_id in self.live


async def test_random_crashes_never_exceed_attempts(store: OutboundStore) -> None:
    for seed in range(2):
        rng = random.Random(seed)
        names = [f"soak{seed}a", f"soak{seed}b"]
        clock = FakeClock(START + seed * 86400)
        for k, name in enumerate(names):
            spec = CampaignSpec.model_validate({
                "name": name, "kind": "survey", "windows": ["00:00-24:00"],
                "pacing": {"max_concurrent": 3, "calls_per_s": 2, "burst": 2},
                "retry": {"max_attempts": 3, **{o: {"delay_s": rng.choice([5, 30, 90])}
                                                for o in ("busy", "no_answer", "congestion", "failed",
                                                          "machine", "lost")}}})
            await store.create_campaign(spec, clock.now())
            # Some numbers are in both campaigns' lists: they must never ring twice at once.
            shared = [ContactIn(f"1390000{i:04d}") for i in range(4)]
            own = [ContactIn(f"138{seed}{k}{i:06d}") for i in range(10)]
            await store.add_contacts(name, shared + own, clock.now())
            await store.change_state(name, "start", clock.now())
        pbx = ChaosAsterisk(rng)
        dialer = Dialer(store, Scheduler(CFG), pbx, clock, lambda e: None, config=CFG)
        await dialer.reconcile()
        for _ in range(400):
            await dialer.tick()
            for cid in list(pbx.live):  # some calls end, with a report that may get lost
                if rng.random() < 0.5:
                    pbx.live.discard(cid)
                    if rng.random() < 0.85:
                        dialer.on_result(cid, rng.choice(OUTCOMES), rng.choice(["", "1", "4", "0"]))
            await dialer.process_results()
            if rng.random() < 0.15:  # the CTI dies; queued results are lost with it
                dialer = Dialer(store, Scheduler(CFG), pbx, clock, lambda e: None, config=CFG)
                await dialer.reconcile()
            clock.jump(rng.choice([0.2, 1, 5, 40]))
            await dialer.reconcile(stale_only=True)
            states = [await store.status(n) for n in names]
            if all(s["pending"] == 0 and s["live"] == 0 for s in states):
                break
        pbx.live.clear()
        clock.jump(3600)
        await dialer.reconcile()
        rows = [r for n in names for r in await store.attempts_of(n)]
        per_contact = Counter(r["contact_id"] for r in rows)
        assert max(per_contact.values()) <= 3, seed
        assert set(pbx.calls) <= {r["channel_id"] for r in rows}  # nothing dialed unrecorded
        assert len(pbx.calls) == len(set(pbx.calls))  # no Originate sent twice
        assert pbx.max_live_per_number == 1, seed
        assert all(r["status"] == "ended" for r in rows)
        for n in names:
            status = await store.status(n)
            assert status["pending"] + status["live"] == 0, status
            assert status["done"] + status["not_reached"] == status["contacts"] == 14
