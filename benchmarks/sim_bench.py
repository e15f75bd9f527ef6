"""Simulator speed: calls simulated per second, against a naive FIFO simulator in the same run.

    .venv/bin/python benchmarks/sim_bench.py [--calls 100000] [--agents 500] [--load 0.95] [--report-calls 20000]

Runs (1) the simulator (`ctiserver.sim.simulate`, the real AcdEngine, every event kept),
(2) the same traffic through a textbook M/M/N FIFO loop written here (a heap of agent
free times and a deque, nothing else): the floor any Python simulator of this traffic
would pay, so `ratio` says what the real routing rules and the event log cost on top;
and (3) the KPI report step (`build_report` over the events, in-memory SQLite) on a
shorter run, as seconds per 1,000 calls. CPU seconds (process time) are the headline,
since other processes on a shared machine stretch wall time; both are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import random
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctiserver.acd.config import AcdConfig
from ctiserver.kpi import erlang
from ctiserver.kpi.config import KpiConfig
from ctiserver.sim.cli import sim_report
from ctiserver.sim.scenario import Scenario, ScenarioFile
from ctiserver.sim.simulate import simulate

ACD = AcdConfig.model_validate({
    "skills": ["fault"], "tiers": [{"name": "vip"}, {"name": "normal"}], "vip": {"tier": "vip", "desk_skill": None},
    "ring_guard_s": 0, "redial_window_s": 0, "queue_defaults": {"wrap_up_s": 0, "handle_time_s": 180}})
AHT = 180.0


def scenario(calls: int, agents: int, load: float) -> Scenario:
    per_hh = agents * load / AHT * 1800.0
    spec = ScenarioFile.model_validate({
        "start": "2026-11-23T00:00", "hours": calls / per_hh / 2.0, "calls_per_half_hour": per_hh,
        "skills": {"fault": 1}, "handle_time": {"dist": "exponential", "mean_s": AHT},
        "ring_time": {"dist": "fixed", "mean_s": 1e-6}, "config_agents": False,
        "agents": [{"prefix": "a", "count": agents, "skills": {"fault": 5}}]})
    return Scenario(spec, ACD, ZoneInfo("Asia/Shanghai"))


def naive_fifo(calls: int, agents: int, rate: float, seed: int) -> tuple[int, float, float]:
    """M/M/N FIFO by hand: arrivals in order, each takes the earliest-free agent. Returns (calls, SL20, ASA)."""
    rng = random.Random(seed)
    free = [0.0] * agents  # heap of times agents become free
    t = 0.0
    waits = 0.0
    within = 0
    for _ in range(calls):
        t += rng.expovariate(rate)
        start = max(t, free[0])
        wait = start - t
        waits += wait
        within += wait <= 20.0
        heapq.heapreplace(free, start + rng.expovariate(1.0 / AHT))
    return calls, within / calls, waits / calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--agents", type=int, default=500)
    ap.add_argument("--load", type=float, default=0.95, help="offered load per agent (Erlangs / agents)")
    ap.add_argument("--report-calls", type=int, default=20_000, help="calls for the KPI-step run (0: skip)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    sc = scenario(args.calls, args.agents, args.load)
    rate = args.agents * args.load / AHT
    c0, w0 = time.process_time(), time.perf_counter()
    res = simulate(sc, args.seed)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    s = res.summary(20.0)

    c0, w0 = time.process_time(), time.perf_counter()
    n_naive, sl_naive, asa_naive = naive_fifo(res.calls, args.agents, rate, args.seed)
    cpu_naive, wall_naive = time.process_time() - c0, time.perf_counter() - w0

    print(f"machine load: {Path('/proc/loadavg').read_text().split()[:3]}")
    print(f"traffic: {res.calls:,} calls, {args.agents} agents, {rate * AHT:.0f} Erlangs "
          f"(Erlang C: SL20 {erlang.service_level(args.agents, rate, AHT, 20):.4f}, "
          f"ASA {erlang.asa(args.agents, rate, AHT):.2f} s)")
    print(f"{'run':<34} {'CPU s':>7} {'wall s':>7} {'calls/s (CPU)':>14} {'SL20':>7} {'ASA s':>7}")
    print(f"{'simulator (AcdEngine + events)':<34} {cpu:>7.2f} {wall:>7.2f} {res.calls / cpu:>14,.0f} "
          f"{s['service_level'] or 0:>7.4f} {s['asa_s'] or 0:>7.2f}")
    print(f"{'naive FIFO M/M/N (baseline)':<34} {cpu_naive:>7.2f} {wall_naive:>7.2f} "
          f"{n_naive / cpu_naive:>14,.0f} {sl_naive:>7.4f} {asa_naive:>7.2f}")
    print(f"ratio simulator / naive (CPU): {cpu / cpu_naive:.1f}x; {len(res.events):,} events, "
          f"{res.engine_inputs:,} engine inputs ({res.engine_inputs / cpu:,.0f}/s)")

    if args.report_calls:
        small = scenario(args.report_calls, args.agents, args.load)
        c0 = time.process_time()
        r2 = simulate(small, args.seed)
        cpu_sim = time.process_time() - c0
        c0, w0 = time.process_time(), time.perf_counter()
        report = asyncio.run(sim_report(small, r2, KpiConfig()))
        cpu_rep, wall_rep = time.process_time() - c0, time.perf_counter() - w0
        print(f"KPI step on {r2.calls:,} calls ({len(r2.events):,} events): simulation {cpu_sim:.2f} s CPU, "
              f"report {cpu_rep:.2f} s CPU ({wall_rep:.2f} s wall) = {cpu_rep / cpu_sim:.1f}x the simulation; "
              f"report SL {report['total']['service_level']}, ASA {report['total']['asa_s']} s")


if __name__ == "__main__":
    main()
