"""ACD routing benchmark: decisions/s and decision latency, the engine against a per-skill bucketed scan.

Scenarios (issue 18 item 2): 2,000 agents / 50 skills / 10,000 callers waiting, and 5,000 agents /
50 skills / 50,000 waiting. Agents have 1-4 skills (proficiency 1-10); the tier mix is 5% vip, 15%
priority, 75% normal, 5% blacklist. All agents are talking; each step ends one agent's call: after
its wrap-up (`tick`) the agent picks the best waiting call it may take (a routing decision over all
the waiting calls), the call is answered, and one new caller arrives (`enqueue`: a routing decision
over the free agents), so the queue stays at its size.

Baseline, measured in the same run on the same inputs: the simplest reasonable router, waiting calls
bucketed per skill and free agents per skill, each decision a linear scan of the buckets the agent
(or call) may use. The first picks of both are compared, so the ratio is between routers that agree.

Garbage collection: after setup the live objects are frozen (`gc.freeze()`, as a server does after
startup), so a collection only walks what the run itself creates; every collector pause is timed
(`gc.callbacks`) and the worst is printed. The slowest decision is explained from what was measured
during it: a collector pause, a heap compaction of the engine, or time the thread did not get the
CPU (its CPU time far below its wall time).

Run: .venv/bin/python benchmarks/acd_bench.py [--steps N] [--baseline-steps N] [--scenario small|large]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from ctiserver.acd.config import AcdConfig
from ctiserver.acd.engine import AcdEngine
from ctiserver.acd.model import Offer

SCENARIOS = {"small": (2000, 50, 10000), "large": (5000, 50, 50000)}
ROUNDS = 10
WRAP_S = 5.0
TIERS = ["vip", "priority", "normal", "blacklist"]
TIER_WEIGHTS = [5, 15, 75, 5]
TARGET_RATE, TARGET_TAIL_US, TARGET_GC_MS = 50_000, 1000.0, 10.0


def build_config(rnd: random.Random, n_agents: int, n_skills: int) -> AcdConfig:
    skills = [f"s{i:02d}" for i in range(n_skills)]
    agents = []
    for i in range(n_agents):
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


class BucketRouter:
    """The same picks with the simplest reasonable indexing: per skill, a list of waiting calls and a
    set of free agents; each decision scans the lists (or sets) it may use."""

    def __init__(self, cfg: AcdConfig) -> None:
        self.rank = cfg.tier_rank
        self.skills = {a.id: dict(a.skills) for a in cfg.agents}
        self.order = {a.id: i for i, a in enumerate(cfg.agents)}
        self.idle: dict[str, float] = {}
        self.waiting: dict[str, list[tuple[int, float, int, str]]] = {s: [] for s in cfg.skills}
        self.free: dict[str, set[str]] = {s: set() for s in cfg.skills}
        self.seq = 0

    def enqueue(self, call_id: str, skill: str, tier: str, now: float) -> str | None:
        self.seq += 1
        best: tuple[tuple[int, float, int], str] | None = None
        for aid in self.free[skill]:
            key = (-self.skills[aid][skill], self.idle[aid], self.order[aid])
            if best is None or key < best[0]:
                best = (key, aid)
        if best is None:
            self.waiting[skill].append((self.rank[tier], now, self.seq, call_id))
            return None
        aid = best[1]
        for s in self.skills[aid]:
            self.free[s].discard(aid)
        return aid

    def agent_free(self, aid: str, now: float) -> str | None:
        best: tuple[int, float, int, str] | None = None
        best_skill = ""
        for skill in self.skills[aid]:
            for c in self.waiting[skill]:
                if best is None or c < best:
                    best, best_skill = c, skill
        if best is None:
            self.idle[aid] = now
            for s in self.skills[aid]:
                self.free[s].add(aid)
            return None
        self.waiting[best_skill].remove(best)
        return best[3]

    def waiting_count(self) -> int:
        return sum(len(b) for b in self.waiting.values())


@dataclass
class GcWatch:
    """Times every collector pause through gc.callbacks: (start ns, wall ns, CPU ns, generation)."""

    pauses: list[tuple[int, int, int, int]] = field(default_factory=list)
    _start: int = 0
    _cpu: int = 0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._cpu = time.thread_time_ns()
            self._start = time.perf_counter_ns()
        else:
            self.pauses.append((self._start, time.perf_counter_ns() - self._start,
                                time.thread_time_ns() - self._cpu, info["generation"]))


@dataclass
class Run:
    """Per decision: start (perf ns), wall ns, thread-CPU ns, and whether it was an agent's pick."""

    starts: list[int] = field(default_factory=list)
    wall: list[int] = field(default_factory=list)
    cpu: list[int] = field(default_factory=list)
    is_pick: list[bool] = field(default_factory=list)
    picks: list[str] = field(default_factory=list)
    gc: GcWatch = field(default_factory=GcWatch)
    compactions: list[tuple[int, int]] = field(default_factory=list)  # (start ns, CPU ns)
    waiting_end: int = 0
    full_gc_ms: tuple[float, float] = (0.0, 0.0)  # a full collection after the run: frozen setup, nothing frozen

    def time(self, fn: Callable[[], Any], pick: bool) -> Any:
        c0 = time.thread_time_ns()
        s = time.perf_counter_ns()
        result = fn()
        e = time.perf_counter_ns()
        self.cpu.append(time.thread_time_ns() - c0)
        self.starts.append(s)
        self.wall.append(e - s)
        self.is_pick.append(pick)
        return result


def timed(run: Run, fn: Callable[[], None]) -> Callable[[], None]:
    def wrapper() -> None:
        s = time.perf_counter_ns()
        c = time.thread_time_ns()
        fn()
        run.compactions.append((s, time.thread_time_ns() - c))
    return wrapper


GC_THRESHOLDS = [700, 10, 10]  # Python's defaults, as the server runs (it freezes its startup heap too)


def measured(run: Run, body: Callable[[], None]) -> None:
    """Run the timed part with the setup frozen and every collector pause recorded; after it, time a
    full collection with the setup still frozen and again with nothing frozen (what generation 2
    would cost without the freeze)."""
    gc.collect()
    gc.freeze()
    old = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    gc.callbacks.append(run.gc)
    try:
        body()
    finally:
        gc.callbacks.remove(run.gc)
        gc.set_threshold(*old)
        c = time.thread_time_ns()
        gc.collect()
        frozen = (time.thread_time_ns() - c) / 1e6
        gc.unfreeze()
        gc.collect()
        c = time.thread_time_ns()
        gc.collect()
        run.full_gc_ms = (frozen, (time.thread_time_ns() - c) / 1e6)


def run_engine(cfg: AcdConfig, arrivals: list[tuple[str, str]], steps: int, n_waiting: int) -> Run:
    eng = AcdEngine(cfg)
    run = Run()
    eng.queues.compact = timed(run, eng.queues.compact)  # type: ignore[method-assign]
    eng.roster.compact = timed(run, eng.roster.compact)  # type: ignore[method-assign]
    now = 0.0
    for a in eng.agent_ids():
        eng.login(a, now, ready=True)
    talking: list[str] = []  # agent ids, in the order they will hang up
    it = iter(arrivals)
    n = 0
    while eng.waiting_count() < n_waiting:
        skill, tier = next(it)
        n += 1
        now += 0.001
        for cmd in eng.enqueue(f"c{n}", skill, tier, "", now):
            if isinstance(cmd, Offer):
                eng.ring_answered(cmd.call_id, now)
                talking.append(cmd.agent_id)

    def body() -> None:
        nonlocal now, n
        for step in range(steps):
            now += 0.01
            aid = talking[step % len(talking)]
            call_id = eng.agent_call(aid)
            assert call_id is not None
            eng.call_ended(call_id, now)  # the agent wraps up for WRAP_S
            t = now + WRAP_S
            cmds = run.time(partial(eng.tick, t), True)  # wrap-up over: the agent picks a call
            offer = next(c for c in cmds if isinstance(c, Offer))
            run.picks.append(offer.call_id)
            eng.ring_answered(offer.call_id, now)
            skill, tier = next(it)
            n += 1
            run.time(partial(eng.enqueue, f"c{n}", skill, tier, "", now), False)

    measured(run, body)
    run.waiting_end = eng.waiting_count()
    return run


def run_baseline(cfg: AcdConfig, arrivals: list[tuple[str, str]], steps: int, n_waiting: int) -> Run:
    r = BucketRouter(cfg)
    run = Run()
    now = 0.0
    talking: list[str] = []
    for a in cfg.agents:
        r.agent_free(a.id, now)
    it = iter(arrivals)
    n = 0
    while r.waiting_count() < n_waiting:
        skill, tier = next(it)
        n += 1
        now += 0.001
        aid = r.enqueue(f"c{n}", skill, tier, now)
        if aid is not None:
            talking.append(aid)

    def body() -> None:
        nonlocal now, n
        for step in range(steps):
            now += 0.01
            aid = talking[step % len(talking)]
            pick = run.time(partial(r.agent_free, aid, now), True)
            assert pick is not None
            run.picks.append(pick)
            skill, tier = next(it)
            n += 1
            run.time(partial(r.enqueue, f"c{n}", skill, tier, now), False)

    measured(run, body)
    run.waiting_end = r.waiting_count()
    return run


def pct(sorted_ns: list[int], q: float) -> float:
    return sorted_ns[min(len(sorted_ns) - 1, int(len(sorted_ns) * q))] / 1000


def summarize(run: Run) -> dict[str, float]:
    ns = sorted(run.wall)
    cpu_s = sum(run.cpu) / 1e9
    picks = sorted(w for w, p in zip(run.wall, run.is_pick, strict=True) if p)
    arrivals = sorted(w for w, p in zip(run.wall, run.is_pick, strict=True) if not p)
    cpu = sorted(run.cpu)
    out = {"decisions": len(ns), "cpu_rate": len(ns) / cpu_s, "wall_rate": len(ns) / (sum(ns) / 1e9),
           "p50": pct(ns, 0.5), "p99": pct(ns, 0.99), "p999": pct(ns, 0.999), "max": ns[-1] / 1000,
           "cpu_p99": pct(cpu, 0.99), "cpu_p999": pct(cpu, 0.999), "cpu_max": cpu[-1] / 1000,
           "pick_p99": pct(picks, 0.99), "arrive_p99": pct(arrivals, 0.99)}
    per_round = max(1, len(ns) // ROUNDS)
    rates = [per_round / (sum(run.cpu[i:i + per_round]) / 1e9) for i in range(0, len(ns) - per_round + 1, per_round)]
    out["median_round_rate"] = statistics.median(rates)
    out["gc_worst_ms"] = max((d for _, d, _, _ in run.gc.pauses), default=0) / 1e6
    out["gc_worst_cpu_ms"] = max((c for _, _, c, _ in run.gc.pauses), default=0) / 1e6
    out["gc_pauses"] = len(run.gc.pauses)
    return out


def explain_max(run: Run) -> str:
    """What the slowest decision spent its time on, from what was measured during it: its own CPU time
    (of which the collector's and a heap compaction's), and the rest of its wall time, when this
    thread did not have the CPU (other processes ran)."""
    i = max(range(len(run.wall)), key=run.wall.__getitem__)
    start, wall, cpu = run.starts[i], run.wall[i], run.cpu[i]
    end = start + wall
    during = [(d, c, g) for s, d, c, g in run.gc.pauses if start <= s < end]
    gc_cpu = sum(c for _, c, _ in during)
    comp = sum(d for s, d in run.compactions if start <= s < end)
    waited = max(0, wall - cpu)
    gens = "/".join(str(g) for g in sorted({g for _, _, g in during}))
    parts = [(f"the collector (generation {gens})", gc_cpu), ("a heap compaction", comp),
             ("the decision's own work", max(0, cpu - gc_cpu - comp)),
             ("waiting for the CPU while other processes ran", waited)]
    cause = max(parts, key=lambda p: p[1])[0]
    return (f"max {wall / 1000:,.0f} us ({'an agent pick' if run.is_pick[i] else 'an arrival'}): {cpu / 1000:,.0f} us "
            f"of CPU (collector {gc_cpu / 1000:,.0f} us, compaction {comp / 1000:,.0f} us), {waited / 1000:,.0f} us "
            f"without the CPU; mostly {cause}")


def scenario(name: str, steps: int, baseline_steps: int, seed: int) -> bool:
    n_agents, n_skills, n_waiting = SCENARIOS[name]
    rnd = random.Random(seed)
    cfg = build_config(rnd, n_agents, n_skills)
    skills = list(cfg.skills)
    total = n_waiting + n_agents + max(steps, baseline_steps) + 1000
    arrivals = [(rnd.choice(skills), rnd.choices(TIERS, TIER_WEIGHTS)[0]) for _ in range(total)]
    eng_run = run_engine(cfg, arrivals, steps, n_waiting)
    base_run = run_baseline(cfg, arrivals, baseline_steps, n_waiting)
    eng, base = summarize(eng_run), summarize(base_run)
    compared = min(len(eng_run.picks), len(base_run.picks))
    agree = sum(1 for a, b in zip(eng_run.picks, base_run.picks, strict=False) if a == b)

    print(f"\n== {n_agents:,} agents, {n_skills} skills, {n_waiting:,} waiting "
          f"(kept at {eng_run.waiting_end:,} / {base_run.waiting_end:,}); load {os.getloadavg()[0]:.1f}")
    print(f"{'router':<12}{'decisions':>10}{'per cpu-s':>11}{'median rnd':>11}{'p50 us':>8}{'p99 us':>9}"
          f"{'p99.9 us':>10}{'max us':>9}{'cpu p99':>9}{'cpu p99.9':>10}{'cpu max':>9}{'GC worst ms wall/cpu':>22}")
    for label, r in (("engine", eng), ("bucket scan", base)):
        print(f"{label:<12}{r['decisions']:>10,.0f}{r['cpu_rate']:>11,.0f}{r['median_round_rate']:>11,.0f}"
              f"{r['p50']:>8.1f}{r['p99']:>9.1f}{r['p999']:>10.1f}{r['max']:>9,.0f}{r['cpu_p99']:>9.1f}"
              f"{r['cpu_p999']:>10.1f}{r['cpu_max']:>9,.0f}{r['gc_worst_ms']:>14.2f}/{r['gc_worst_cpu_ms']:.2f}")
    print(f"engine / bucket scan: {eng['cpu_rate'] / base['cpu_rate']:,.1f}x decisions per CPU-second, "
          f"p99 {base['p99'] / eng['p99']:,.1f}x lower, p99.9 {base['p999'] / eng['p999']:,.1f}x lower "
          f"(wall clock); agent picks p99 {eng['pick_p99']:.1f} vs {base['pick_p99']:.1f} us")
    print(f"same picks on the first {compared:,} agent decisions: {agree:,}/{compared:,}")
    print(f"engine {explain_max(eng_run)}")
    frozen_ms, unfrozen_ms = eng_run.full_gc_ms
    print(f"engine collector during the run: {eng['gc_pauses']:.0f} pauses, worst {eng['gc_worst_ms']:.2f} ms wall / "
          f"{eng['gc_worst_cpu_ms']:.2f} ms CPU (setup frozen with gc.freeze(); thresholds {tuple(GC_THRESHOLDS)}); "
          f"a full collection after the run: {frozen_ms:.1f} ms CPU with the setup frozen, {unfrozen_ms:.1f} ms CPU "
          "with nothing frozen")
    cpu_ok = eng["cpu_p99"] < TARGET_TAIL_US and eng["cpu_p999"] < TARGET_TAIL_US
    wall_ok = eng["p99"] < TARGET_TAIL_US and eng["p999"] < TARGET_TAIL_US
    ok = (eng["median_round_rate"] >= TARGET_RATE and cpu_ok and eng["gc_worst_cpu_ms"] <= TARGET_GC_MS
          and agree == compared)
    print(f"target >= {TARGET_RATE:,} decisions per CPU-second (median round), p99 and p99.9 < 1 ms of CPU, "
          f"no collector pause > {TARGET_GC_MS:.0f} ms of CPU, same picks: {'met' if ok else 'NOT met'}; "
          f"p99 and p99.9 < 1 ms wall clock: {'met' if wall_ok else 'NOT met (see max: other processes)'}")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--steps", type=int, default=50000, help="engine steps per scenario (2 decisions each)")
    ap.add_argument("--baseline-steps", type=int, default=5000, help="bucket-scan steps per scenario")
    ap.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--gc-thresholds", default="700,10,10",
                    help="gc.set_threshold for the timed part (default: Python's, as the server runs)")
    args = ap.parse_args()
    GC_THRESHOLDS[:] = [int(x) for x in args.gc_thresholds.split(",")]
    print(f"ACD routing; python {platform.python_version()}, {os.cpu_count()} cpus")
    print("decision = tick() ending a wrap-up (the agent picks among the waiting calls) or enqueue() (the call "
          "looks for a free agent); per cpu-s: decisions per CPU-second of this thread (immune to other load); "
          "latencies are wall clock")
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    results = [scenario(name, args.steps, args.baseline_steps, args.seed) for name in names]
    raise SystemExit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
