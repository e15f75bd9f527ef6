"""`ctiserver qc sample --month YYYY-MM [--seed N]`: the month's inspection tasks (docs/qc.md)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import sys
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from ..calendar import load_calendar
from ..clock import SystemClock
from ..store.clidb import CliError, db_url, open_store
from . import store
from .sampling import sample
from .sheet import QcSheet, load_qc_sheet


def add_qc_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("qc", help="quality inspection: the month's sample")
    sub = p.add_subparsers(dest="qc_command", required=True)
    s = sub.add_parser("sample", help="create the month's inspection tasks (qc.yaml sampling; again: adds none twice)")
    s.add_argument("--config", default="config")
    s.add_argument("--month", required=True, help="YYYY-MM, a month of the site's calendar")
    s.add_argument("--seed", type=int, default=None, help="the draw's seed (default: from the month: reproducible)")
    s.add_argument("--url", help="database URL (default: database.url from ctiserver.yaml)")
    s.set_defaults(func=run_sample)


def month_range(month: str, calendar: object) -> tuple[float, float]:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise CliError(f"--month {month!r}: YYYY-MM, please")
    y, m = int(month[:4]), int(month[5:])
    first, nxt = dt.date(y, m, 1), dt.date(y + m // 12, m % 12 + 1, 1)
    return calendar.at(first), calendar.at(nxt)  # type: ignore[attr-defined]


async def sample_month(engine: AsyncEngine, sheet: QcSheet, month: str, start: float, end: float, seed: int,
                       now: float) -> tuple[int, int, dict[str, int]]:
    """Sample the month and add its tasks: (calls picked, tasks new, picks per reason)."""
    calls = await store.month_calls(engine, start, end)
    picks = sample(calls, sheet.sampling, month=month, start=start, end=end, seed=seed)
    made = await store.create_tasks(engine, month, picks, now)
    reasons: dict[str, int] = {}
    for p in picks:
        reasons[p.reason] = reasons.get(p.reason, 0) + 1
    return len(picks), made, reasons


def run_sample(args: argparse.Namespace) -> int:
    config_dir = Path(args.config)
    sheet, calendar = load_qc_sheet(config_dir), load_calendar(config_dir)
    start, end = month_range(args.month, calendar)
    seed = args.seed if args.seed is not None else int(args.month.replace("-", ""))
    url = db_url(config_dir, args.url)

    async def run() -> tuple[int, int, dict[str, int]]:
        engine = await open_store(url, config_dir, create=False)
        try:
            return await sample_month(engine, sheet, args.month, start, end, seed, SystemClock().now())
        finally:
            await engine.dispose()

    picked, made, reasons = asyncio.run(run())
    detail = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "no recorded calls"
    print(f"qc sample {args.month} (seed {seed}): {picked} calls picked ({detail}); {made} new task(s)",
          file=sys.stdout)
    return 0
