"""ACD routing benchmark: decisions/s and decision latency, indexed engine vs a naive scan.

Scenario (issue 5): 2,000 agents, 50 skills (1-4 skills each, proficiency 1-10),
10,000 callers waiting (tier mix 5% vip, 15% priority, 75% normal, 5% blacklist).
All agents are talking; each step ends one agent's call (the agent picks the best
waiting call it may take: a routing decision over 10,000 waiting), the new call
is answered, and one new caller arrives (a routing decision over the agents), so
the queue stays at 10,000. Both routers see the same inputs; the first decisions
are compared so the ratio is between routers that agree.

Run: .venv/bin/python benchmarks/acd_bench.py [--steps N] [--naive-steps N]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from typing import Any

from ctiserver.acd.config import AcdConfig
from ctiserver.acd.engine import AcdEngine
from ctiserver.acd.model import Offer

N_AGENTS, N_SKILLS, N_WAITING = 2000, 50, 10000
ROUNDS = 10
WRAP_S = 5.0
TIERS = ["vip", "priority", "normal", "blacklist"]
TIER_WEIGHTS = [5, 15, 75, 5]


def build_config(rnd: random.Random) -> AcdConfig:
    skills = [f"s{i:02d}" for i in range(N_SKILLS)]
    agents = []
    for i in range(N_AGENTS):
        chosen = rnd.sample(skills, rnd.randint(1, 4))
        agents.append({"id": str(10000 + i), "skills": {s: rnd.randint(1, 10) for s in chosen}})
    return AcdConfig.model_validate({
        "skills": skills,
        "tiers": [{"name": "vip"}, {"name": "priority"}, {"name": "normal"},
                  {"name": "blacklist", "last_resort": True}],
        "vip": {"tier": "vip", "desk_skill": None},
        "queue_defaults": {"wrap_up_s": WRAP_S, "block_when_no_agents": False},
        "ring_guard_s": 3,
        "redial_window_s": 0,
        "agents": agents,
    })


class NaiveRouter:
    """The same rules by brute force: scan every waiting call / every agent for each decision."""

    def __init__(self, cfg: AcdConfig) -> None:
        self.rank = cfg.tier_rank
        self.agents = {a.id: {"skills": dict(a.skills), "state": "available", "idle": 0.0, "order": i,
                              "call": None} for i, a in enumerate(cfg.agents)}
        self.waiting: list[dict[str, Any]] = []
        self.seq = 0

    def enqueue(self, call_id: str, skill: str, tier: str, now: float) -> str | None:
        self.seq += 1
        call = {"id": call_id, "skill": skill, "rank": self.rank[tier], "t": now, "seq": self.seq}
        best = None
        for aid, a in self.agents.items():
            if a["state"] == "available" and skill in a["skills"]:
                key = (-a["skills"][skill], a["idle"], a["order"])
                if best is None or key < best[0]:
                    best = (key, aid)
        if best is None:
            self.waiting.append(call)
            return None
        self._assign(best[1], call_id)
        return best[1]

    def _assign(self, aid: str, call_id: str) -> None:
        self.agents[aid]["state"] = "busy"
        self.agents[aid]["call"] = call_id

    def agent_free(self, aid: str, now: float) -> str | None:
        a = self.agents[aid]
        skills = a["skills"]
        best = None
        for i, c in enumerate(self.waiting):
            if c["skill"] in skills:
                key = (c["rank"], c["t"], c["seq"])
                if best is None or key < best[0]:
                    best = (key, i)
        if best is None:
            a["state"], a["idle"], a["call"] = "available", now, None
            return None
        call = self.waiting.pop(best[1])
        self._assign(aid, call["id"])
        return str(call["id"])


def percentiles(ns: list[int]) -> tuple[float, float]:
    ns = sorted(ns)
    return ns[len(ns) // 2] / 1000, ns[min(len(ns) - 1, int(len(ns) * 0.99))] / 1000


def run_engine(cfg: AcdConfig, arrivals: list[tuple[str, str]], steps: int) -> tuple[list[str], dict[str, float]]:
    eng = AcdEngine(cfg)
    now = 0.0
    for a in eng.agent_ids():
        eng.login(a, now, ready=True)
    talking: list[str] = []  # agent ids, in the order they will hang up
    it = iter(arrivals)
    n = 0
    while eng.waiting_count() < N_WAITING:
        skill, tier = next(it)
        n += 1
        now += 0.001
        for cmd in eng.enqueue(f"c{n}", skill, tier, "", now):
            if isinstance(cmd, Offer):
                eng.ring_answered(cmd.call_id, now)
                talking.append(cmd.agent_id)
    free_ns: list[int] = []
    arrive_ns: list[int] = []
    other_ns: list[int] = []
    picks: list[str] = []
    perf, cpu, cpu_ns = time.perf_counter_ns, time.thread_time_ns, 0
    round_len = max(1, steps // ROUNDS)
    round_rates: list[float] = []
    round_start_ns = 0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for step in range(steps):
        if step and step % round_len == 0:  # a round's CPU rate: other processes disturb some rounds
            round_rates.append(2 * round_len / ((cpu_ns - round_start_ns) / 1e9))
            round_start_ns = cpu_ns
        now += 0.01
        aid = talking[step % len(talking)]
        call_id = eng.agent_call(aid)
        assert call_id is not None
        s = perf()
        eng.call_ended(call_id, now)  # the agent wraps up for WRAP_S
        other_ns.append(perf() - s)
        c = cpu()
        s = perf()
        cmds = eng.tick(now + WRAP_S)  # wrap-up over: the agent picks the best call it may take
        free_ns.append(perf() - s)
        cpu_ns += cpu() - c
        offer = next(c for c in cmds if isinstance(c, Offer))
        picks.append(offer.call_id)
        s = perf()
        eng.ring_answered(offer.call_id, now)
        other_ns.append(perf() - s)
        skill, tier = next(it)
        n += 1
        c = cpu()
        s = perf()
        eng.enqueue(f"c{n}", skill, tier, "", now)
        arrive_ns.append(perf() - s)
        cpu_ns += cpu() - c
    wall = time.perf_counter() - t0
    cpu_s = time.process_time() - cpu0
    result = summarize(free_ns, arrive_ns, other_ns, wall, cpu_s, eng.waiting_count(), cpu_ns)
    if round_rates:
        result["best_round_rate"] = max(round_rates)
        result["median_round_rate"] = statistics.median(round_rates)
    return picks, result


def summarize(free_ns: list[int], arrive_ns: list[int], other_ns: list[int], wall: float, cpu: float,
              waiting: int, decision_cpu_ns: int) -> dict[str, float]:
    decisions = free_ns + arrive_ns
    p50, p99 = percentiles(decisions)
    f50, f99 = percentiles(free_ns)
    a50, a99 = percentiles(arrive_ns)
    busy = sum(decisions) / 1e9
    return {"decisions": len(decisions), "busy_s": busy, "rate": len(decisions) / busy, "wall_s": wall,
            "cpu_rate": len(decisions) / (decision_cpu_ns / 1e9),
            "cpu_s": cpu, "p50_us": p50, "p99_us": p99, "free_p50_us": f50, "free_p99_us": f99,
            "arrive_p50_us": a50, "arrive_p99_us": a99,
            "all_rate": (len(decisions) + len(other_ns)) / ((sum(decisions) + sum(other_ns)) / 1e9),
            "waiting_end": waiting, "max_us": max(decisions) / 1000, "p999_us": sorted(decisions)[
                min(len(decisions) - 1, int(len(decisions) * 0.999))] / 1000}


def run_naive(cfg: AcdConfig, arrivals: list[tuple[str, str]], steps: int) -> tuple[list[str], dict[str, float]]:
    r = NaiveRouter(cfg)
    now = 0.0
    talking: list[str] = []
    it = iter(arrivals)
    n = 0
    while len(r.waiting) < N_WAITING:
        skill, tier = next(it)
        n += 1
        now += 0.001
        aid = r.enqueue(f"c{n}", skill, tier, now)
        if aid is not None:
            talking.append(aid)
    free_ns: list[int] = []
    arrive_ns: list[int] = []
    picks: list[str] = []
    perf, cpu, cpu_ns = time.perf_counter_ns, time.thread_time_ns, 0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for step in range(steps):
        now += 0.01
        aid = talking[step % len(talking)]
        c = cpu()
        s = perf()
        pick = r.agent_free(aid, now)
        free_ns.append(perf() - s)
        cpu_ns += cpu() - c
        assert pick is not None
        picks.append(pick)
        skill, tier = next(it)
        n += 1
        c = cpu()
        s = perf()
        r.enqueue(f"c{n}", skill, tier, now)
        arrive_ns.append(perf() - s)
        cpu_ns += cpu() - c
    wall = time.perf_counter() - t0
    cpu_s = time.process_time() - cpu0
    return picks, summarize(free_ns, arrive_ns, [], wall, cpu_s, len(r.waiting), cpu_ns)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50000, help="engine steps (2 decisions each)")
    ap.add_argument("--naive-steps", type=int, default=1500, help="naive-scan steps")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    cfg = build_config(rnd)
    skills = list(cfg.skills)
    total = N_WAITING + N_AGENTS + max(args.steps, args.naive_steps) + 1000
    arrivals = [(rnd.choice(skills), rnd.choices(TIERS, TIER_WEIGHTS)[0]) for _ in range(total)]

    picks_e, eng = run_engine(cfg, arrivals, args.steps)
    picks_n, naive = run_naive(cfg, arrivals, args.naive_steps)
    agree = sum(1 for a, b in zip(picks_e, picks_n, strict=False) if a == b)
    compared = min(len(picks_e), len(picks_n))

    load = os.getloadavg()[0]
    print(f"ACD routing: {N_AGENTS} agents, {N_SKILLS} skills, {N_WAITING} waiting calls "
          f"(kept at {eng['waiting_end']:.0f} / {naive['waiting_end']:.0f}); "
          f"python {platform.python_version()}, {os.cpu_count()} cpus, load {load:.1f}")
    print("decision = tick() ending a wrap-up (agent picks among the waiting calls) "
          "or enqueue() (call looks for a free agent)")
    print("decisions/s: per CPU-second of this thread (one core, immune to other load) and per wall second;"
          " latencies are wall clock")
    print(f"{'router':<8}{'decisions':>10}{'per cpu-s':>11}{'per wall-s':>11}{'p50 us':>9}{'p99 us':>9}"
          f"{'agent p50':>11}{'agent p99':>11}{'call p50':>10}{'call p99':>10}")
    for name, r in (("engine", eng), ("naive", naive)):
        print(f"{name:<8}{r['decisions']:>10.0f}{r['cpu_rate']:>11,.0f}{r['rate']:>11,.0f}"
              f"{r['p50_us']:>9.1f}{r['p99_us']:>9.1f}"
              f"{r['free_p50_us']:>11.1f}{r['free_p99_us']:>11.1f}{r['arrive_p50_us']:>10.1f}"
              f"{r['arrive_p99_us']:>10.1f}")
    print(f"ratio engine/naive: throughput {eng['cpu_rate'] / naive['cpu_rate']:,.1f}x (cpu), "
          f"p99 {naive['p99_us'] / eng['p99_us']:,.1f}x lower")
    if "best_round_rate" in eng:
        print(f"engine decisions per CPU-second over {ROUNDS} rounds: best {eng['best_round_rate']:,.0f}, "
              f"median {eng['median_round_rate']:,.0f}")
    print(f"engine tail: p99.9 {eng['p999_us']:.0f} us, max {eng['max_us']:.0f} us "
          "(includes heap compaction and any preemption by other processes)")
    print(f"same picks on the first {compared} agent decisions: {agree}/{compared}")
    print(f"engine, every input incl. call_ended/ring_answered: {eng['all_rate']:,.0f} inputs/s; "
          f"CPU {eng['cpu_s']:.2f} s of {eng['wall_s']:.2f} s wall")
    rate = eng.get("median_round_rate", eng["cpu_rate"])
    target = "met" if eng["p99_us"] < 1000 and rate >= 50000 else "NOT met"
    print(f"target p99 < 1 ms and >= 50,000 decisions/s (median round, per CPU-second): {target}")


if __name__ == "__main__":
    main()
