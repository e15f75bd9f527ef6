"""The live wallboard's refresh: `LiveFigures.figures` with its kept sums, against a pass over every call.

A simulated weekday (config/scenarios/weekday.yaml, seed 7) is folded up to a given hour; then for the next
2,000 events a refresh follows every 10th (the wallboard refreshes after each burst of events). Timed, CPU
of the process, same run:

* kept sums (the server since ac35f62): the refresh redoes only the calls that changed, those still waiting
  and the calls whose caller's next call moved;
* a pass over every call (the baseline: what every refresh cost before, the code as it was): every call's
  fact finished from its fold and `call_sums` over all of them, then the same figures.

Both give the same figures (checked at each refresh; tests/kpi/test_kpi_live.py checks every sum).

    .venv/bin/python benchmarks/live_figures_bench.py [--hours 10 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from typing import Any  # noqa: E402

from ctiserver.kpi.builder import FactBuilder  # noqa: E402
from ctiserver.kpi.config import KpiConfig, load_kpi_config  # noqa: E402
from ctiserver.kpi.facts import Window  # noqa: E402
from ctiserver.kpi.live import LiveFigures, _add, figures_of  # noqa: E402
from ctiserver.kpi.sums import call_sums, half_hour  # noqa: E402
from ctiserver.sim.scenario import load_scenario  # noqa: E402
from ctiserver.sim.simulate import simulate  # noqa: E402


def full_pass(cfg: KpiConfig, builder: FactBuilder, now: float) -> dict[str, Any]:
    """LiveFigures.figures before ac35f62: every call of the day finished and summed."""
    start, end = LiveFigures(cfg).day_range(now)
    facts = builder.call_facts()
    win = Window.build(start, end, now, cfg.zone(), 86400.0)
    rows = call_sums(facts, cfg, win, ["queue", "tier"])
    hh_now = half_hour(now, win)
    out: dict[str, Any] = {}
    for label, keep in (("today", lambda r: True), ("halfhour", lambda r: r["hh"] == hh_now)):
        total: dict[str, Any] = {}
        tiers: dict[str, dict[str, Any]] = {}
        queues: dict[str, dict[str, Any]] = {}
        for r in rows:
            if keep(r):
                _add(total, r)
                if r["d_tier"] is not None:
                    _add(tiers.setdefault(r["d_tier"], {}), r)
                if r["d_queue"] is not None:
                    _add(queues.setdefault(r["d_queue"], {}), r)
        out[label] = {"total": figures_of(cfg, total or None),
                      "tiers": {t: figures_of(cfg, v, cfg.tier_targets.for_tier(t).threshold_s)
                                for t, v in sorted(tiers.items())},
                      "queues": {q: figures_of(cfg, v) for q, v in sorted(queues.items())}}
    fresh = now - cfg.window.max_call_s
    waits = [now - (f.t_enq if f.t_enq is not None else f.t0) for f in facts
             if not f.is_out and start <= f.t0 < end and f.t_ans is None and f.t_ab is None and f.t_ovf is None
             and f.t_cb is None and f.t_end is None and f.t0 >= fresh and f.t_enq is not None]
    out["waiting"] = len(waits)
    out["longest_wait_s"] = round(max(waits), 1) if waits else 0.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=int, nargs="+", default=[10, 16])
    ap.add_argument("--refreshes", type=int, default=200)
    args = ap.parse_args()
    cfg = load_kpi_config(ROOT / "config")
    sc = load_scenario(ROOT / "config" / "scenarios" / "weekday.yaml", ROOT / "config", cfg.zone())
    evs = sorted(simulate(sc, 7).events, key=lambda e: e.ts)
    print(f"weekday scenario, {len(evs):,} events; load average {os.getloadavg()}")
    print(f"{'from':>6} {'calls so far':>13} {'kept sums ms':>13} {'full pass ms':>13} {'ratio':>6}")
    for hour in args.hours:
        t_at = sc.start_ts + hour * 3600
        live = LiveFigures(cfg)
        builder = FactBuilder()  # one day: no calls of the day before to forget
        seen = [e for e in evs if e.ts < t_at]
        live.add_all(seen)
        builder.add_all(e for e in seen if e.call_id is not None)
        live.figures(t_at)
        kept = full = 0.0
        n = 0
        for ev in evs[len(seen):len(seen) + args.refreshes * 10]:
            live.add(ev)
            if ev.call_id is not None:
                builder.add(ev)
            seen.append(ev)
            n += 1
            if n % 10:
                continue
            t = time.process_time()
            got = live.figures(ev.ts)
            kept += time.process_time() - t
            t = time.process_time()
            want = full_pass(cfg, builder, ev.ts)
            full += time.process_time() - t
            assert got == want, f"figures differ at {ev.ts}"
        k = args.refreshes
        calls = len({e.call_id for e in evs if e.ts < t_at and e.call_id})
        ratio = full / max(kept, 1e-9)
        print(f"{hour:>4}:00 {calls:>13,} {kept / k * 1000:>13.2f} {full / k * 1000:>13.2f} {ratio:>5.1f}x")


if __name__ == "__main__":
    main()
