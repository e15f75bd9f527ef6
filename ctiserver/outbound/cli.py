"""`ctiserver campaign ...`: import, start, pause, resume, stop, status, results, dnc.

These commands work on the database only; the running server's dialer reads
campaign states every `poll_s` seconds, so `start` or `pause` takes effect within
that time without any other channel to the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.exc import DBAPIError

from ..clock import SystemClock
from ..configfile import ConfigError
from ..customers.targets import SqlCustomerSource
from ..numbers import normalise_number
from .contacts import (
    CustomerTarget,
    ImportRejected,
    apply_class_windows,
    parse_csv,
    stratified_sample,
    targets_to_contacts,
)
from .export import not_reached_csv
from .model import CampaignSpec, load_campaign_spec, load_outbound_config
from .store import OutboundError, OutboundStore, UnknownCampaign

DONE_STATES = ("finished", "stopped")


def progress_bar(done: int, total: int, width: int = 30) -> str:
    """`[##########--------------------]  12/40  30%` (an empty campaign shows 0%)."""
    frac = done / total if total else 0.0
    filled = min(width, int(frac * width))
    return f"[{'#' * filled}{'-' * (width - filled)}] {done:>{len(str(total))}}/{total} {int(frac * 100):3d}%"


def status_line(s: dict[str, Any]) -> str:
    bar = progress_bar(s["finished_contacts"], s["contacts"])
    late = "  OVERDUE" if s.get("overdue") else ""
    return (f"{s['campaign']:<24} {s['state']:<9} {bar}  reached {s['done']}  not reached {s['not_reached']}"
            f"  live {s['live']}  pending {s['pending']}{late}")


def add_campaign_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("campaign",
                              help="outbound campaigns: import, start, pause, resume, stop, status")
    sub = p.add_subparsers(dest="campaign_command", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--config", default="config", help="configuration folder")
        q.add_argument("--url", help="database URL (default: from the config)")

    q = sub.add_parser("import", help="create a campaign from its file (if new) and import contacts "
                                      "from CSV or from the customer tables")
    q.add_argument("name", help="campaign name (config/campaigns/<name>.yaml) or a path to a campaign file")
    q.add_argument("csv", type=Path, nargs="?", help="CSV file of contacts")
    q.add_argument("--from-customers", action="store_true",
                   help="targets from the customer tables: the outage areas, or customers in arrears")
    q.add_argument("--skip-bad", action="store_true", help="import the good rows, report the bad ones")
    q.add_argument("--sample", type=float, metavar="FRACTION",
                   help="keep only this fraction (e.g. 0.05), spread over the areas, at least one per area")
    common(q)
    q.set_defaults(func=cmd_import)
    for action in ("start", "pause", "resume", "stop"):
        q = sub.add_parser(action, help=f"{action} a campaign")
        q.add_argument("name")
        common(q)
        q.set_defaults(func=cmd_state, action=action)
    q = sub.add_parser("status", help="progress of one or all campaigns")
    q.add_argument("name", nargs="?")
    q.add_argument("--watch", type=float, metavar="SECONDS", help="refresh until the campaign ends")
    q.add_argument("--json", action="store_true")
    common(q)
    q.set_defaults(func=cmd_status)
    q = sub.add_parser("results", help="results of a campaign, and the not-reached export")
    q.add_argument("name")
    q.add_argument("--json", action="store_true")
    q.add_argument("--not-reached-csv", type=Path, metavar="FILE", help="write the not-reached list here")
    common(q)
    q.set_defaults(func=cmd_results)
    q = sub.add_parser("dnc", help="add numbers to the do-not-call list or the blacklist")
    q.add_argument("numbers", nargs="+")
    q.add_argument("--blacklist", action="store_true")
    q.add_argument("--reason", default="")
    common(q)
    q.set_defaults(func=cmd_dnc)


def _db_url(args: argparse.Namespace) -> str:
    from ..store.clidb import db_url

    return db_url(Path(args.config), args.url)


READ_ONLY = ("status", "results")  # these never create the database; the others create and migrate it


def _run(args: argparse.Namespace, body: Callable[[OutboundStore], Awaitable[int]],
         out: TextIO | None = None) -> int:
    from ..store.clidb import open_store

    err = sys.stderr

    async def main() -> int:
        create = getattr(args, "campaign_command", None) not in READ_ONLY
        engine = await open_store(_db_url(args), Path(args.config), create=create)
        try:
            return await body(OutboundStore(engine))
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except (OutboundError, ImportRejected, ConfigError) as exc:
        print(f"error: {exc}", file=err)
        return 1
    except DBAPIError as exc:
        print(f"error: database: {exc.orig!s}".splitlines()[0], file=err)
        return 1


def _spec_for(name: str, config_dir: Path) -> CampaignSpec:
    path = Path(name)
    if not path.suffix:
        path = config_dir / "campaigns" / f"{name}.yaml"
    return load_campaign_spec(path)


def cmd_import(args: argparse.Namespace) -> int:
    if (args.csv is None) == (not args.from_customers):
        print("error: give either a CSV file or --from-customers", file=sys.stderr)
        return 2
    data = b""
    if args.csv is not None:
        try:
            data = Path(args.csv).read_bytes()
        except OSError as exc:
            print(f"error: cannot read {args.csv}: {exc.strerror}", file=sys.stderr)
            return 1
    source = str(args.csv) if args.csv is not None else "customers"

    async def body(store: OutboundStore) -> int:
        # Validate everything first; the campaign (if new) and its contacts are then written in one
        # transaction, so a rejected import leaves no empty draft campaign behind.
        spec = _spec_for(args.name, Path(args.config))
        try:
            existing = await store.numbers_in(spec.name)
        except UnknownCampaign:
            existing = set()
        excluded = await store.excluded_numbers()
        try:
            if args.from_customers:
                today = load_outbound_config(Path(args.config)).calendar.today(SystemClock().now())
                targets = await _customer_targets(store, spec, today)
                report = targets_to_contacts(targets, spec.kind, excluded=excluded, existing=existing,
                                             skip_bad=args.skip_bad)
            else:
                report = parse_csv(data, spec.kind, excluded=excluded, existing=existing,
                                   skip_bad=args.skip_bad)
        except ValueError as exc:
            print(f"error: {source}: {exc}", file=sys.stderr)
            return 1
        accepted = apply_class_windows(report.accepted, {str(k): v for k, v in spec.class_windows.items()})
        if args.sample is not None:
            try:
                accepted = stratified_sample(accepted, args.sample)
            except ValueError as exc:
                print(f"error: --sample: {exc}", file=sys.stderr)
                return 2
            print(f"sampled {len(accepted)} of {len(report.accepted)} contact(s) across the areas")
        for p in report.errors:
            print(f"{source}: skipped {p}", file=sys.stderr)
        for p in report.excluded:
            print(f"{source}: excluded {p}")
        if not accepted and not existing and await _is_new(store, spec.name):
            print(f"error: {source}: no contact to import; campaign {spec.name} was not created",
                  file=sys.stderr)
            return 1
        if await store.import_contacts(spec, accepted, SystemClock().now()):
            print(f"created campaign {spec.name} ({spec.kind})")
        print(f"imported {len(accepted)} contact(s) into {spec.name}; {len(report.excluded)} excluded, "
              f"{len(report.errors)} bad row(s) skipped")
        return 0

    return _run(args, body)


async def _is_new(store: OutboundStore, name: str) -> bool:
    try:
        await store.campaign(name)
    except UnknownCampaign:
        return True
    return False


async def _customer_targets(store: OutboundStore, spec: CampaignSpec, today: date) -> Sequence[CustomerTarget]:
    source = SqlCustomerSource(store.engine)
    if spec.outage is not None:
        return await source.customers_in_areas(spec.outage.areas)
    if spec.kind == "arrears_reminder":
        minimum = spec.arrears.min_arrears if spec.arrears else Decimal("0")
        return await source.customers_in_arrears(minimum, today)
    raise ValueError(f"a {spec.kind} campaign cannot take its targets from the customer tables; "
                     "import a CSV (e.g. of closed work orders)")


def cmd_state(args: argparse.Namespace) -> int:
    async def body(store: OutboundStore) -> int:
        new = await store.change_state(args.name, args.action, SystemClock().now())
        print(f"campaign {args.name} is now {new}")
        return 0

    return _run(args, body)


def cmd_status(args: argparse.Namespace) -> int:
    cfg = load_outbound_config(Path(args.config))

    async def collect(store: OutboundStore) -> list[dict[str, Any]]:
        names = [args.name] if args.name else [c.name for c in await store.campaigns()]
        return [await store.status(n, cfg.calendar, SystemClock().now()) for n in names]

    async def body(store: OutboundStore) -> int:
        tty = sys.stdout.isatty()
        while True:
            rows = await collect(store)
            if args.json:
                print(json.dumps(rows, ensure_ascii=False))
            elif not rows:
                print("no campaigns")
            else:
                text = "\n".join(status_line(r) for r in rows)
                if tty and args.watch:
                    sys.stdout.write("\x1b[2J\x1b[H" + text + "\n")
                    sys.stdout.flush()
                else:
                    print(text)
            if not args.watch or all(r["state"] in DONE_STATES for r in rows):
                return 0
            await asyncio.sleep(args.watch)

    return _run(args, body)


def cmd_results(args: argparse.Namespace) -> int:
    async def body(store: OutboundStore) -> int:
        r = await store.results(args.name)
        if args.json:
            print(json.dumps(r, ensure_ascii=False, indent=2))
        else:
            print(f"{r['campaign']} ({r['kind']}, {r['state']}): {r['contacts']} contacts, "
                  f"{r['attempts']} attempts")
            for key in ("reached", "confirmed", "to_agent", "rated", "not_reached", "pending", "cancelled",
                        "excluded", "machine", "busy", "no_answer", "congestion", "failed", "lost"):
                print(f"  {key.replace('_', ' '):<14}{r[key]:>7}")
            per = r["attempts_per_contact"].items()
            print("  attempts per contact: " + ", ".join(f"{k}: {v}" for k, v in per))
            if r["average_rating"] is not None:
                print(f"  average rating: {r['average_rating']}")
            for m in r["important_not_reached"]:
                print(f"  IMPORTANT not reached: {m['name']} {m['number']} "
                      f"({m['status']}, {m['last_outcome']})")
        if args.not_reached_csv:
            rows = await store.not_reached(args.name)
            args.not_reached_csv.write_text(not_reached_csv(rows), encoding="utf-8")
            print(f"wrote {len(rows)} not-reached contact(s) to {args.not_reached_csv}")
        return 0

    return _run(args, body)


def cmd_dnc(args: argparse.Namespace) -> int:
    numbers = []
    for raw in args.numbers:
        try:
            numbers.append(normalise_number(raw))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    async def body(store: OutboundStore) -> int:
        list_name = "blacklist" if args.blacklist else "dnc"
        n = await store.add_to_list(numbers, list_name, args.reason, SystemClock().now())
        print(f"added {n} number(s); {len(numbers) - n} were already listed")
        return 0

    return _run(args, body)
