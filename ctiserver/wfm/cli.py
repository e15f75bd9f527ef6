"""`ctiserver forecast`, `ctiserver staffing` and `ctiserver roster`: workforce management commands.

The command line is where the clock is chosen (the default first day is tomorrow) and the store
is opened; everything else is the pure cores of this package.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from ..clidb import CliError, db_url, open_store
from ..clock import SystemClock
from .config import WfmConfig, load_wfm_config
from .forecast import ForecastError, QueueForecast, forecast_queue
from .history import QueueHistory
from .render import FORMATTERS
from .report import forecast_result


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a date like 2026-12-07") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="config")
    p.add_argument("--url", help="event store URL (default: database.url from ctiserver.yaml)")
    p.add_argument("--format", choices=sorted(FORMATTERS), default="table")
    p.add_argument("--output", help="write to this file instead of standard output")


def add_wfm_commands(subparsers: argparse._SubParsersAction) -> None:
    """`ctiserver forecast` (and the staffing/roster commands) on the `ctiserver` CLI."""
    p = subparsers.add_parser("forecast", help="forecast offered calls and handle time per queue and half hour")
    _common(p)
    p.add_argument("--from", dest="start", type=_date, help="first forecast day (default: tomorrow)")
    p.add_argument("--weeks", type=int, default=2, help="how many weeks to forecast (default 2)")
    p.add_argument("--queue", action="append", help="only this queue (repeatable)")
    p.add_argument("--by", choices=["halfhour", "day"], default="halfhour")
    p.add_argument("--history-weeks", type=int, help="weeks of history (default: wfm.yaml forecast.history_weeks)")
    p.set_defaults(func=run_forecast_command)


def _emit(result: dict[str, Any], fmt: str, output: str | None) -> None:
    text = FORMATTERS[fmt](result)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def load_history(config_dir: Path, url_override: str | None, cfg: WfmConfig, start: dt.date,
                 weeks: int) -> dict[str, QueueHistory]:
    from .store import history_from_store

    url = db_url(config_dir, url_override)

    async def run() -> dict[str, QueueHistory]:
        engine = await open_store(url, config_dir, create=False)
        try:
            return await history_from_store(engine, cfg.calendar, start - dt.timedelta(weeks=weeks), start)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def forecasts(args: argparse.Namespace, cfg: WfmConfig, start: dt.date, days: int) -> list[QueueForecast]:
    weeks = args.history_weeks or cfg.forecast.history_weeks
    history = load_history(Path(args.config), args.url, cfg, start, weeks)
    queues = sorted(history) if not args.queue else args.queue
    missing = [q for q in queues if q not in history]
    if missing or not queues:
        raise CliError(f"no calls in the event store for {', '.join(missing) or 'any queue'} in the "
                       f"{weeks} weeks before {start}")
    try:
        return [forecast_queue(history[q], cfg.calendar, start, days, set(cfg.forecast.outage_days))
                for q in queues]
    except ForecastError as exc:
        raise CliError(str(exc)) from None


def _start(args: argparse.Namespace, cfg: WfmConfig) -> dt.date:
    if args.start is not None:
        return args.start
    return cfg.calendar.today(SystemClock().now()) + dt.timedelta(days=1)


def run_forecast_command(args: argparse.Namespace) -> int:
    if not 1 <= args.weeks <= 8:
        raise CliError("--weeks must be between 1 and 8")
    cfg = load_wfm_config(Path(args.config))
    start = _start(args, cfg)
    _emit(forecast_result(forecasts(args, cfg, start, 7 * args.weeks), by=args.by), args.format, args.output)
    return 0
