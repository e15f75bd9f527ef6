"""Collector pauses and loop lag with 50,000 callers waiting, under two collector policies, same run.

The ACD engine of benchmarks/acd_bench.py's large scenario (5,000 agents, 50 skills) is set up and frozen
(`gc.freeze()`, as `ctiserver serve` does after its start); then 50,000 callers arrive (after the freeze, as in
a server), and the timed part runs on an asyncio loop: steps of one wrap-up ending (the agent picks a call)
and one caller arriving, with a little cyclic garbage per step (asyncio's futures and tasks make some), in
slices of 25 steps between which a 10 ms ticker measures the loop's lag. Every collector pause is timed
through `gc.callbacks` (CPU time of the thread, and wall).

* startup freeze (the server today): only the startup heap is frozen; a full collection walks every
  waiting caller.
* refreeze (the server since 2026-12-04, ctiserver/app/gcpolicy.py): in addition, every `--refreeze` steps
  (standing for its one-minute timer) `CollectorPolicy.refreeze()`: a young collection (which frees the
  young cycles) and `gc.freeze()` move the survivors out of the collector's way; cyclic garbage that reached
  the old generation waits for the daily sweep (not run here).

Not a test: nothing asserts a time.

    .venv/bin/python benchmarks/gc_bench.py [--steps 40000] [--refreeze 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.acd_bench import TIER_WEIGHTS, TIERS, WRAP_S, build_config
from ctiserver.acd.engine import AcdEngine
from ctiserver.acd.model import Offer
from ctiserver.app.gcpolicy import CollectorPolicy

SLICE = 25


class Pauses:
    def __init__(self) -> None:
        self.started: tuple[int, int, int] | None = None
        self.pauses: list[tuple[int, float, float]] = []  # generation, wall ms, CPU ms

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = (time.perf_counter_ns(), time.thread_time_ns(), info["generation"])
        elif self.started is not None:
            w, c, g = self.started
            self.pauses.append((g, (time.perf_counter_ns() - w) / 1e6, (time.thread_time_ns() - c) / 1e6))
            self.started = None


async def run(policy: str, steps: int, refreeze: int, seed: int) -> dict[str, Any]:
    gc.collect()
    rnd = random.Random(seed)
    cfg = build_config(rnd, 5000, 50)
    skills = list(cfg.skills)
    arrivals = iter([(rnd.choice(skills), rnd.choices(TIERS, TIER_WEIGHTS)[0]) for _ in range(60_000 + steps)])
    eng = AcdEngine(cfg)
    now = 0.0
    for a in eng.agent_ids():
        eng.login(a, now, ready=True)
    gc.collect()
    gc.freeze()  # the server's start
    talking: list[str] = []
    n = 0
    while eng.waiting_count() < 50_000:
        skill, tier = next(arrivals)
        n += 1
        now += 0.001
        for cmd in eng.enqueue(f"c{n}", skill, tier, "", now):
            if isinstance(cmd, Offer):
                eng.ring_answered(cmd.call_id, now)
                talking.append(cmd.agent_id)
    lags: list[float] = []
    stop = False

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while not stop:
            due = loop.time() + 0.01
            await asyncio.sleep(0.01)
            lags.append((loop.time() - due) * 1e3)

    collector = CollectorPolicy()  # its refreeze() only: the steps stand for its timer
    pauses = Pauses()
    gc.callbacks.append(pauses)
    tick = asyncio.create_task(ticker())
    cpu = time.process_time()
    refreezes = []
    try:
        for step in range(steps):
            now += 0.01
            aid = talking[step % len(talking)]
            call_id = eng.agent_call(aid)
            assert call_id is not None
            eng.call_ended(call_id, now)
            offer = next(c for c in eng.tick(now + WRAP_S) if isinstance(c, Offer))
            eng.ring_answered(offer.call_id, now)
            skill, tier = next(arrivals)
            n += 1
            eng.enqueue(f"c{n}", skill, tier, "", now)
            junk: dict[str, Any] = {}
            junk["self"] = junk  # a cycle, as a finished task and its future make
            if policy == "refreeze" and step % refreeze == refreeze - 1:
                c = time.thread_time_ns()
                collector.refreeze()
                refreezes.append((time.thread_time_ns() - c) / 1e6)
            if step % SLICE == SLICE - 1:
                await asyncio.sleep(0)
        cpu = time.process_time() - cpu
    finally:
        stop = True
        await tick
        gc.callbacks.remove(pauses)
    c = time.thread_time_ns()
    gc.collect()
    full_now = (time.thread_time_ns() - c) / 1e6
    frozen = gc.get_freeze_count()
    gc.unfreeze()
    gc.collect()
    by_gen = {g: [p for p in pauses.pauses if p[0] == g] for g in (0, 1, 2)}
    lags.sort()
    return {"policy": policy, "cpu": cpu, "steps": steps, "by_gen": by_gen, "full_now": full_now,
            "frozen": frozen, "refreezes": refreezes, "lag_max": lags[-1] if lags else 0.0,
            "lag_p99": lags[int(len(lags) * 0.99)] if lags else 0.0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=40_000)
    p.add_argument("--refreeze", type=int, default=2000, help="steps between two refreezes")
    p.add_argument("--seed", type=int, default=18)
    args = p.parse_args()
    print(f"5,000 agents, 50 skills, 50,000 waiting; {args.steps:,} steps; Python {sys.version.split()[0]}; "
          f"thresholds {gc.get_threshold()}; load average {tuple(round(x, 2) for x in os.getloadavg())}")
    results = [asyncio.run(run(policy, args.steps, args.refreeze, args.seed)) for policy in ("startup", "refreeze")]
    print(f"{'policy':<16}{'CPU s':>7}{'gen0 n/worst':>15}{'gen1 n/worst':>15}{'gen2 n/worst ms CPU':>22}"
          f"{'full GC at end':>16}{'refreeze worst':>16}{'loop lag p99/max ms':>22}")
    for r in results:
        g = r["by_gen"]

        def cell(ps: list[tuple[int, float, float]]) -> str:
            return f"{len(ps)}/{max((x[2] for x in ps), default=0.0):.1f}"

        print(f"{r['policy']:<16}{r['cpu']:>7.2f}{cell(g[0]):>15}{cell(g[1]):>15}{cell(g[2]):>22}"
              f"{r['full_now']:>13.1f} ms{max(r['refreezes'], default=0.0):>13.1f} ms"
              f"{r['lag_p99']:>12.1f} /{r['lag_max']:>7.1f}")
    a, b = results
    worst = [max((x[2] for gs in r["by_gen"].values() for x in gs), default=0.0) for r in results]
    print(f"worst collector pause (CPU): {worst[0]:.1f} ms -> {worst[1]:.1f} ms; a full collection at the end: "
          f"{a['full_now']:.1f} -> {b['full_now']:.1f} ms; objects frozen at the end: {a['frozen']:,} -> "
          f"{b['frozen']:,}")


if __name__ == "__main__":
    main()
