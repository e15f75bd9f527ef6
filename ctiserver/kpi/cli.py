"""The KPI commands: `ctiserver report --config DIR --from --to --by --format` (the KPI report from the
event store) and `ctiserver facts rebuild --from --to` (re-derive the facts from the events)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ..clock import SystemClock
from ..store.clidb import db_url, open_store
from .config import load_kpi_config
from .headers import LANGS
from .render import BINARY_FORMATTERS, FORMATTERS, format_csv
from .report import ALL_DIMS, ReportError, build_report, parse_by, resolve_range, to_epoch

# A further section of the report another feature computes: (config dir, engine, from, to, now) -> a table
# {"title", "columns", "rows": [dict], "notes": [str]}. Given by whoever composes the CLI (app/cli.py).
Section = Callable[[Path, AsyncEngine, float, float, float], Awaitable[dict[str, Any]]]


def add_report_command(subparsers: argparse._SubParsersAction, sections: Mapping[str, Section] | None = None
                       ) -> None:
    """Register `ctiserver report` on the `ctiserver` CLI's subparsers (`sections`: what `--with` adds)."""
    p = subparsers.add_parser("report", help="KPI report from the event store")
    if sections:
        p.add_argument("--with", dest="sections", action="append", choices=sorted(sections), default=[],
                       help="add a section (repeatable): " + ", ".join(sorted(sections)))
    p.set_defaults(section_fns=dict(sections or {}))
    p.add_argument("--config", default="config")
    p.add_argument("--from", dest="start", help="start, local time (YYYY-MM-DD[THH:MM]); default today 00:00")
    p.add_argument("--to", dest="end", help="end (exclusive); default start + 1 day")
    p.add_argument("--by", default="", help=f"comma-separated groupings: {', '.join(ALL_DIMS)}")
    p.add_argument("--format", choices=sorted([*FORMATTERS, *BINARY_FORMATTERS]), default="table",
                   help="xlsx needs --output")
    p.add_argument("--lang", choices=LANGS, default="en", help="column headers of csv/xlsx: metric keys or Chinese")
    p.add_argument("--url", help="database URL (default: database.url from ctiserver.yaml)")
    p.add_argument("--output", help="write to this file instead of standard output")
    p.set_defaults(func=run_report_command)
    add_facts_command(subparsers)
    add_export_command(subparsers)


def add_export_command(subparsers: argparse._SubParsersAction) -> None:
    """`ctiserver export queue-log`: the ACD's events in Asterisk's queue_log format."""
    p = subparsers.add_parser("export", help="export the event store for other tools")
    sub = p.add_subparsers(dest="export_command", required=True)
    q = sub.add_parser("queue-log", help="the ACD's events as Asterisk's queue_log (for app_queue tools)")
    q.add_argument("--config", default="config")
    q.add_argument("--from", dest="start", help="start, local time (YYYY-MM-DD[THH:MM]); default today 00:00")
    q.add_argument("--to", dest="end", help="end (exclusive); default start + 1 day")
    q.add_argument("--url", help="database URL (default: database.url from ctiserver.yaml)")
    q.add_argument("-o", "--output", help="write to this file instead of standard output")
    q.set_defaults(func=run_export_queue_log)


def run_export_queue_log(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from ..events import Event
    from ..store.schema import events
    from .queuelog import QUEUE_LOG_KINDS, QueueLogWriter

    config_dir = Path(args.config)
    cfg = load_kpi_config(config_dir)
    try:
        t0, t1 = resolve_range(args.start, args.end, cfg, now=SystemClock().now())
    except ReportError as exc:
        print(f"ctiserver export: {exc}", file=sys.stderr)
        return 2
    url = db_url(config_dir, args.url)

    async def run() -> list[str]:
        engine = await open_store(url, config_dir, create=False)
        e = events.c
        try:
            async with engine.connect() as conn:
                result = await conn.stream(
                    select(e.ts, e.kind, e.call_id, e.agent_id, e.queue, e.tier, e.data)
                    .where(e.ts >= t0, e.ts < t1, e.kind.in_(QUEUE_LOG_KINDS)).order_by(e.ts, e.id))
                writer = QueueLogWriter()
                out = []
                async for r in result:
                    line = writer.line(Event(r.kind, r.ts, r.call_id, r.agent_id, r.queue, r.tier, None,
                                             r.data if isinstance(r.data, dict) else {}))
                    if line is not None:
                        out.append(line)
                return out
        finally:
            await engine.dispose()

    text = "".join(line + "\n" for line in asyncio.run(run()))
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def add_facts_command(subparsers: argparse._SubParsersAction) -> None:
    """`ctiserver facts rebuild`: after a definition change, or once after upgrading a database."""
    p = subparsers.add_parser("facts", help="KPI facts (the per-call rows reports are computed from)")
    sub = p.add_subparsers(dest="facts_command", required=True)
    r = sub.add_parser("rebuild", help="re-derive the facts of a range from the events")
    r.add_argument("--config", default="config")
    r.add_argument("--from", dest="start", required=True, help="start, local time (YYYY-MM-DD[THH:MM])")
    r.add_argument("--to", dest="end", help="end (exclusive); default start + 1 day")
    r.add_argument("--url", help="database URL (default: database.url from ctiserver.yaml)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=run_facts_rebuild)


def progress_bar(fraction: float, width: int = 30) -> str:
    """`[#########---------]  45%` for a fraction done."""
    done = max(0, min(width, round(fraction * width)))
    return f"[{'#' * done}{'-' * (width - done)}] {fraction * 100:3.0f}%"


def run_facts_rebuild(args: argparse.Namespace) -> int:
    from .factstore import rebuild

    config_dir = Path(args.config)
    cfg = load_kpi_config(config_dir)
    now = SystemClock().now()
    try:
        t0, t1 = resolve_range(args.start, args.end, cfg, now=now)
    except ReportError as exc:
        print(f"ctiserver facts: {exc}", file=sys.stderr)
        return 2
    if t1 <= t0:
        print("ctiserver facts: the end of the range must be after its start", file=sys.stderr)
        return 2
    url = db_url(config_dir, args.url)

    def show(fraction: float) -> None:
        if not args.quiet:
            sys.stderr.write(f"\rrebuilding facts {progress_bar(fraction)}")
            sys.stderr.flush()

    async def run() -> dict[str, int]:
        from sqlalchemy import inspect

        from ..store.clidb import CliError

        engine = await open_store(url, config_dir, create=False)
        try:
            async with engine.connect() as conn:
                if not await conn.run_sync(lambda c: inspect(c).has_table("call_facts")):
                    raise CliError(f"the event store has no facts tables yet: run `ctiserver db upgrade "
                                   f"--config {config_dir}`")
            return await rebuild(engine, t0, t1, show)
        finally:
            await engine.dispose()

    done = asyncio.run(run())
    if not args.quiet:
        sys.stderr.write("\n")
    print(f"facts rebuilt: {done['calls']} calls, {done['agent_intervals']} agent state intervals")
    return 0


def run_report_command(args: argparse.Namespace) -> int:
    config_dir = Path(args.config)
    cfg = load_kpi_config(config_dir)
    now = SystemClock().now()  # the command line is where the clock is chosen
    try:
        t0, t1 = resolve_range(args.start, args.end, cfg, now=now)
        by = parse_by(args.by)
        if args.format in BINARY_FORMATTERS and not args.output:
            raise ReportError(f"--format {args.format} needs --output FILE")
    except ReportError as exc:
        print(f"ctiserver report: {exc}", file=sys.stderr)
        return 2
    url = db_url(config_dir, args.url)

    async def run() -> dict[str, Any]:
        engine = await open_store(url, config_dir, create=False)
        try:
            report = await build_report(engine, cfg, t0, t1, by, now=now)
            start, end = to_epoch(t0, cfg), to_epoch(t1, cfg)
            for name in getattr(args, "sections", []):
                report.setdefault("sections", {})[name] = await args.section_fns[name](config_dir, engine, start,
                                                                                       end, now)
            return report
        finally:
            await engine.dispose()

    try:
        report = asyncio.run(run())
    except ReportError as exc:
        print(f"ctiserver report: {exc}", file=sys.stderr)
        return 2
    names = {k: v.model_dump() for k, v in cfg.metric_names.items()}
    if args.format in BINARY_FORMATTERS:
        Path(args.output).write_bytes(BINARY_FORMATTERS[args.format](report, args.lang, names))
        return 0
    text = format_csv(report, args.lang, names) if args.format == "csv" else FORMATTERS[args.format](report)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
