"""`ctiserver report --config DIR --from --to --by --format`: the KPI report from the event store."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from ..clidb import db_url, open_store
from ..clock import SystemClock
from .config import load_kpi_config
from .render import FORMATTERS
from .report import ALL_DIMS, ReportError, build_report, parse_by, resolve_range


def add_report_command(subparsers: argparse._SubParsersAction) -> None:
    """Register `ctiserver report` on the `ctiserver` CLI's subparsers."""
    p = subparsers.add_parser("report", help="KPI report from the event store")
    p.add_argument("--config", default="config")
    p.add_argument("--from", dest="start", help="start, local time (YYYY-MM-DD[THH:MM]); default today 00:00")
    p.add_argument("--to", dest="end", help="end (exclusive); default start + 1 day")
    p.add_argument("--by", default="", help=f"comma-separated groupings: {', '.join(ALL_DIMS)}")
    p.add_argument("--format", choices=sorted(FORMATTERS), default="table")
    p.add_argument("--url", help="database URL (default: database.url from ctiserver.yaml)")
    p.add_argument("--output", help="write to this file instead of standard output")
    p.set_defaults(func=run_report_command)


def run_report_command(args: argparse.Namespace) -> int:
    config_dir = Path(args.config)
    cfg = load_kpi_config(config_dir)
    now = SystemClock().now()  # the command line is where the clock is chosen
    try:
        t0, t1 = resolve_range(args.start, args.end, cfg, now=now)
        by = parse_by(args.by)
    except ReportError as exc:
        print(f"ctiserver report: {exc}", file=sys.stderr)
        return 2
    url = db_url(config_dir, args.url)

    async def run() -> dict[str, Any]:
        engine = await open_store(url, config_dir, create=False)
        try:
            return await build_report(engine, cfg, t0, t1, by, now=now)
        finally:
            await engine.dispose()

    try:
        report = asyncio.run(run())
    except ReportError as exc:
        print(f"ctiserver report: {exc}", file=sys.stderr)
        return 2
    text = FORMATTERS[args.format](report)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
