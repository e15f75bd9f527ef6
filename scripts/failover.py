"""Failover benchmark (issue 13 item 8): kill -9 the leading CTI node again and again on the HA rig.

Each round: callers wait on pbx1 under the leader (agents staffed but on a break, so nobody is answered),
the leader is killed with SIGKILL, the standby takes the lease over and resumes the callers; then the
callers are hung up and the killed node is started again as the standby. Printed per round and over all:

- takeover: leader kill -> the new leader's lease (`ha_epochs.acquired_ts`, the database's clock) and
  -> its first routing decision (its new term putting the waiting callers back in their order);
- callers waiting at the kill / dropped (reached Asterisk's fallback queue, or not resumed) / kept their
  order (the new leader's queue lists them in the old leader's order);
- double dials: agents rung during the round (nobody is ready, so every one would be a dial the dead
  leader's successor should not have made) plus claims refused as duplicates.

Not a test: no timed assertion; the targets (takeover <= 3 s, 0 dropped, order kept, 0 double dials) are
printed beside the figures. Needs root (network namespaces); the rig is built and removed by the script.

    .venv/bin/python scripts/failover.py [--kills 10] [--callers 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg

from tests.asterisk_fixture import event_is, originate_caller
from tests.ha.cti import RigCti, until
from tests.ha.rig import PG, Rig

CALLERS = ["13900000811", "13800000009", "13900000812", "13800000005", "13900000813", "13900000814"]


def waiting(rig: Rig, node: str, token: str) -> list[dict[str, Any]]:
    req = urllib.request.Request(rig.http(node) + "/api/wallboard", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return list(json.loads(resp.read())["waiting_calls"])


def first_decision(rig: Rig, node: str, after: float) -> float | None:
    """When the new leader released its waiting callers into its queue in their order (its log line
    "HA: n caller(s) were waiting; ..."): its first routing decision. (The resumed `acd.enqueue` events are
    not used: a caller resumed from its channel's mark may come before them, and their rows lag the flush.)"""
    for line in rig.log_path(node).read_text(errors="replace").splitlines():
        if "caller(s) were waiting" in line:
            with contextlib.suppress(ValueError):
                ts = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()  # the node's local time
                if ts > after:
                    return ts
    return None


STEPS = (("group", re.compile(r"HA: leader features started \(epoch \d+\) in ([\d.]+) s")),
         ("listed", re.compile(r"Asterisk listed and the log read in ([\d.]+) s")),
         ("back", re.compile(r"sessions back ([\d.]+) s later")))


def term_steps(rig: Rig, node: str, after: float) -> str:
    """The new term's own timings from its log: the leader group's start, Asterisk listed with the event
    log read, and the wait for the callers' sessions after that (ctiserver/ha/node.py, ha/takeover.py)."""
    found: dict[str, str] = {}
    for line in rig.log_path(node).read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            if datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp() <= after:
                continue
            for name, rx in STEPS:
                if name not in found and (m := rx.search(line)):
                    found[name] = m.group(1)
    return " ".join(f"{k} {v} s" for k, v in found.items()) or "-"


async def lease_acquired(rig: Rig) -> float:
    conn = await asyncpg.connect(host=PG[0], port=PG[1], user=PG[2], database=rig.db)
    try:
        return float(await conn.fetchval("SELECT acquired_ts FROM ha_epochs ORDER BY epoch DESC LIMIT 1"))
    finally:
        await conn.close()


def keep_evidence(rig: Rig, n: int, lost: list[str], fallback: list[Any], events: list[Any]) -> None:
    """A round lost a caller: keep both Asterisks' logs and the nodes' (the rig removes its folders) and
    print the lost callers' own lines: which hosts their AGI tried, with which CTI_RESUME, and why it ended."""
    folder = Path(f"/tmp/failover-{rig.prefix}-round{n}")
    folder.mkdir(parents=True, exist_ok=True)
    for part in rig.pbxs:
        with contextlib.suppress(OSError):
            shutil.copy(rig.pbx_messages(part), folder / f"{part}-messages.log")
    for part in rig.nodes:
        with contextlib.suppress(OSError):
            shutil.copy(rig.log_path(part), folder / f"{part}.log")
    ids = set(lost) | {str(m.get("Linkedid")) for m in fallback}
    channels = {str(m.get("Channel")) for m in events if m.get("Linkedid") in ids and m.get("Channel")}
    print(f"  round {n} lost {sorted(ids)} (fallback: {[m.get('AgiStatus') for m in fallback]}); logs in {folder}")
    log = folder / "pbx1-messages.log"
    for line in (log.read_text(errors="replace") if log.exists() else "").splitlines():
        if any(c in line for c in channels) or any(i in line for i in ids):
            print("   ", line[:220])


async def one_round(rig: Rig, cti: RigCti, n: int, k: int) -> dict[str, Any]:
    leader = await cti.leader()
    standby = next(x for x in rig.nodes if x != leader)
    await cti.reset_agents()
    await cti.agent(leader, "1003", "login")
    await cti.agent(leader, "1003", "not_ready", "lunch")
    pbx1 = cti.ami["pbx1"]
    for i, number in enumerate(CALLERS[:k], 1):
        await originate_caller(pbx1, number, keys="0", hold_s=120)
        await until(f"{i} waiting", lambda i=i: len(waiting(rig, leader, cti.token)) >= i, timeout=90)
    before = [c["call_id"] for c in waiting(rig, leader, cti.token)]
    seen = len(pbx1.events)
    killed_at = time.time()
    rig.stop(leader, signal.SIGKILL)
    await until(f"{standby} leads", lambda: rig.role(standby) == "leader", timeout=30)
    acquired = await lease_acquired(rig)
    try:
        await until("callers resumed", lambda: len(waiting(rig, standby, cti.token)) >= len(before), timeout=30)
    except AssertionError:
        pass
    after = [c["call_id"] for c in waiting(rig, standby, cti.token)]
    decided = first_decision(rig, standby, killed_at)
    since = pbx1.events[seen:]
    fallback = [m for m in since if event_is("UserEvent", UserEvent="CtiFallback")(m)]
    dials = [m for m in since if m.get("Event") == "DialBegin"]
    lost = [c for c in before if c not in after]
    if fallback or lost:
        keep_evidence(rig, n, lost, fallback, pbx1.events)
    await pbx1.hang_up_callers()
    await asyncio.to_thread(rig.start_node, leader)
    await asyncio.to_thread(rig.wait_node, leader)
    await until(f"{leader} stands by", lambda: rig.role(leader) == "standby", timeout=30)
    row = {"round": n, "killed": leader, "lease_s": acquired - killed_at,
           "decision_s": (decided - killed_at) if decided else None, "waiting": len(before),
           "dropped": len(fallback) + max(0, len(before) - len(after)), "kept_order": after == before,
           "double_dials": len(dials)}
    decision = "-" if decided is None else f"{decided - killed_at:.2f} s"
    print(f"round {n:2d}: killed {leader}; lease taken {row['lease_s']:.2f} s, first decision {decision} "
          f"({term_steps(rig, standby, killed_at)}); waiting {row['waiting']}, dropped {row['dropped']}, "
          f"order kept {row['kept_order']}, double dials {row['double_dials']}; load {os.getloadavg()[0]:.1f}",
          flush=True)
    return row


async def main(kills: int, callers: int) -> int:
    rig = Rig(ha=True)
    print(f"building the rig (prefix {rig.prefix}) ...", flush=True)
    await asyncio.to_thread(rig.up)
    rows = []
    try:
        cti = RigCti(rig)
        await cti.start()
        try:
            for n in range(1, kills + 1):
                rows.append(await one_round(rig, cti, n, callers))
        finally:
            await cti.close()
    finally:
        await asyncio.to_thread(rig.down)
    lease = [r["lease_s"] for r in rows]
    decision = [r["decision_s"] for r in rows if r["decision_s"] is not None]
    print(f"\n{len(rows)} kills of the leader (lease TTL 3 s; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})")
    print(f"takeover to the new lease:          p50 {statistics.median(lease):.2f} s, max {max(lease):.2f} s"
          f"   (target <= 3 s)")
    if decision:
        print(f"takeover to the first decision:     p50 {statistics.median(decision):.2f} s, "
              f"max {max(decision):.2f} s   ({len(decision)} rounds with a resumed caller)")
    print(f"callers waiting at the kills: {sum(r['waiting'] for r in rows)}, dropped: "
          f"{sum(r['dropped'] for r in rows)} (target 0), rounds with the order kept: "
          f"{sum(r['kept_order'] for r in rows)}/{len(rows)}, double dials: {sum(r['double_dials'] for r in rows)} "
          f"(target 0)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--callers", type=int, default=5, choices=range(1, len(CALLERS) + 1))
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.kills, args.callers)))
