"""`ctiserver simulate` (`ctiserver demo`, which runs the whole server, is the app's: app/demo.py).

simulate: run a scenario through the real ACD engine on a virtual clock and print
the KPI report of those events (the same code and JSON as `ctiserver report`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..configfile import ConfigError
from ..kpi.config import KpiConfig, load_kpi_config
from ..kpi.render import FORMATTERS
from ..kpi.report import ReportError, build_report, parse_by
from .scenario import Scenario, load_scenario
from .simulate import SimResult, simulate


async def sim_report(sc: Scenario, res: SimResult, kpi: KpiConfig, by: Sequence[str] | str = ()) -> dict[str, Any]:
    """The KPI report over the simulated arrival window (calls that arrived in it, to their end)."""
    return await build_report(res.events, kpi, sc.start_ts, max(sc.end_ts, sc.start_ts + 1), by,
                              now=max(res.finished, sc.end_ts))


def run_simulate(args: argparse.Namespace) -> int:
    config_dir = Path(args.config)
    kpi = load_kpi_config(config_dir)
    try:
        by = parse_by(args.by)
        sc = load_scenario(Path(args.scenario), config_dir, kpi.zone())
    except (ConfigError, ReportError) as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.from_db:
        from ..store.clidb import CliError, db_url, open_store
        from .history import arrivals_from_store

        url = db_url(config_dir, args.from_db)

        async def from_history() -> Scenario:
            engine = await open_store(url, config_dir, create=False)
            await engine.dispose()
            try:
                return await arrivals_from_store(sc, url, kpi, days=args.history_days)
            except ValueError as exc:  # no calls in that store
                raise CliError(str(exc)) from None

        sc = asyncio.run(from_history())
    seed = sc.spec.seed if args.seed is None else args.seed
    t0 = time.perf_counter()
    res = simulate(sc, seed)
    t_sim = time.perf_counter() - t0
    report = asyncio.run(sim_report(sc, res, kpi, by))
    t_all = time.perf_counter() - t0
    print(f"simulated {sc.spec.name!r} seed {seed}: {res.calls} calls, {len(res.events)} events, "
          f"{res.unfinished} unfinished; simulation {t_sim:.2f} s, with the report {t_all:.2f} s",
          file=sys.stderr)
    text = FORMATTERS[args.format](report)
    if not text.endswith("\n"):
        text += "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def add_sim_commands(subparsers: argparse._SubParsersAction) -> None:
    """`ctiserver simulate`."""
    p = subparsers.add_parser("simulate", help="run a scenario through the ACD engine on a virtual clock")
    p.add_argument("--config", default="config")
    p.add_argument("--scenario", required=True, help="scenario YAML (see config/scenarios/)")
    p.add_argument("--seed", type=int, help="random seed (default: the scenario's)")
    p.add_argument("--by", default="", help="report groupings, e.g. halfhour or band,tier")
    p.add_argument("--format", choices=sorted(FORMATTERS), default="table")
    p.add_argument("--from-db", help="take arrivals per half hour and the queue/tier mix from this event store")
    p.add_argument("--history-days", type=int, default=28, help="with --from-db: days of history to average")
    p.add_argument("--output", help="write to this file instead of standard output")
    p.set_defaults(func=run_simulate)
