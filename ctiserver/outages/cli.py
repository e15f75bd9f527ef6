"""`ctiserver outage add|update|close|list`: dispatchers' outages from the command line.

Like `ctiserver campaign`, these work on the database: the running server's IVR and screen-pop read
outages per call, so a saved outage is live at once; its SMS notices are stored for the server's
sender, its notice calls as a started campaign for the dialer. Times are local (calendar.yaml).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..calendar import load_calendar
from ..clock import SystemClock
from ..store.clidb import CliError, db_url, open_store
from .model import KINDS, Outage, OutageChange, OutageIn, Scope, load_outages_config, when


def add_outage_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("outage", help="outages: add, update, close, list (dispatchers)")
    sub = p.add_subparsers(dest="outage_command", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--config", default="config", help="configuration folder")
        q.add_argument("--url", help="database URL (default: from the config)")
        q.add_argument("--user", default="cli", help="who makes the change (the audit log)")

    def where(q: argparse.ArgumentParser) -> None:
        q.add_argument("--area", action="append", default=[], help="affected area (repeat)")
        q.add_argument("--feeder", action="append", default=[], help="affected feeder (repeat)")
        q.add_argument("--transformer", action="append", default=[], help="affected transformer code (repeat)")
        q.add_argument("--accounts-file", type=Path, help="affected accounts, one a line")
        q.add_argument("--cause")
        q.add_argument("--start", help="local time, e.g. '2026-12-20 08:00'")
        q.add_argument("--restore", help="expected restoration, local time")

    q = sub.add_parser("add", help="enter an outage")
    q.add_argument("--kind", required=True, choices=KINDS)
    where(q)
    common(q)
    q.set_defaults(func=_cmd, outage_action="add")
    q = sub.add_parser("update", help="change an open outage (only what is given)")
    q.add_argument("id", help="the outage's number (outage list)")
    where(q)
    common(q)
    q.set_defaults(func=_cmd, outage_action="update")
    q = sub.add_parser("close", help="close an outage: power is back")
    q.add_argument("id", help="the outage's number (outage list)")
    q.add_argument("--end", help="when power came back, local time (default: now)")
    common(q)
    q.set_defaults(func=_cmd, outage_action="close")
    q = sub.add_parser("list", help="outages, latest start first")
    q.add_argument("--status", choices=["open", "closed"])
    q.add_argument("--json", action="store_true")
    common(q)
    q.set_defaults(func=_cmd, outage_action="list")


def _time(text: str | None, tz: Any, what: str) -> float | None:
    if text is None:
        return None
    try:
        local = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise CliError(f"{what}: {text!r} is not a local time like '2026-12-20 08:00'") from None
    return (local if local.tzinfo else local.replace(tzinfo=tz)).timestamp()


def _scope(args: argparse.Namespace) -> Scope | None:
    accounts: list[str] = []
    if args.accounts_file is not None:
        try:
            accounts = [line.strip() for line in args.accounts_file.read_text(encoding="utf-8-sig").splitlines()
                        if line.strip() and not line.startswith("#")]
        except OSError as exc:
            raise CliError(f"{args.accounts_file}: {exc.strerror}") from None
    if not (args.area or args.feeder or args.transformer or accounts):
        return None
    return Scope(areas=args.area, feeders=args.feeder, transformers=args.transformer, accounts=accounts)


def _line(o: Outage, cal: Any) -> str:
    where = ", ".join([*o.scope.areas, *o.scope.feeders, *o.scope.transformers]) or ""
    if o.scope.accounts:
        where += f"{', ' if where else ''}{len(o.scope.accounts)} accounts"
    return (f"#{o.id:<5} {o.status:<6} {o.kind:<10} {when(o.start_ts, cal, 'zh')} -> "
            f"{when(o.end_ts or o.expected_restore_ts, cal, 'zh')}  {where}  {o.cause}  reports {o.reports}")


def _cmd(args: argparse.Namespace) -> int:
    from ..outbound.model import load_outbound_config
    from ..outbound.store import OutboundStore
    from ..sms.engine import SendRules
    from ..sms.kannel import KannelGateway
    from ..sms.model import load_sms_config
    from ..sms.service import SmsService
    from ..sms.store import SmsStore
    from .notices import call_notices, sms_notices
    from .service import OutageService
    from .store import OutageClosed, OutageStore, UnknownOutage, public

    config_dir = Path(args.config)
    oid = 0
    if args.outage_action in ("update", "close"):
        if not str(args.id).isascii() or not str(args.id).isdigit() or len(str(args.id)) > 12:
            raise CliError(f"outage {str(args.id)[:20]!r}: an outage number is digits (see `ctiserver outage list`)")
        oid = int(args.id)
    cal = load_calendar(config_dir)
    cfg = load_outages_config(config_dir, cal)
    clock = SystemClock()
    write = args.outage_action != "list"

    async def run() -> int:
        engine = await open_store(db_url(config_dir, args.url), config_dir, create=write)
        try:
            sms_cfg = load_sms_config(config_dir, cal)
            sms = None
            if sms_cfg.enabled:
                sms_svc = SmsService(sms_cfg, SmsStore(engine), KannelGateway(sms_cfg.gateway), clock,
                                     SendRules.of(sms_cfg, load_outbound_config(config_dir, cal)))
                sms = sms_notices(sms_svc, cfg)
            svc = OutageService(OutageStore(engine), cfg, clock, sms=sms,
                                call_notices=call_notices(OutboundStore(engine), cfg, clock.now))
            tz = cal.zone
            if args.outage_action == "list":
                items = await svc.listing(args.status)
                if args.json:
                    print(json.dumps([public(o) for o in items], ensure_ascii=False))
                for o in [] if args.json else items:
                    print(_line(o, cal))
                return 0
            if args.outage_action == "close":
                saved = await svc.close(oid, args.user, _time(args.end, tz, "--end"))
            elif args.outage_action == "add":
                scope = _scope(args)
                start = _time(args.start, tz, "--start")
                if scope is None or args.cause is None or start is None:
                    raise CliError("outage add needs --cause, --start and an area (--area, --feeder, --transformer "
                                   "or --accounts-file)")
                saved = await svc.add(OutageIn(kind=args.kind, cause=args.cause, scope=scope, start_ts=start,
                                               expected_restore_ts=_time(args.restore, tz, "--restore")), args.user)
            else:
                saved = await svc.update(oid, OutageChange(
                    cause=args.cause, scope=_scope(args), start_ts=_time(args.start, tz, "--start"),
                    expected_restore_ts=_time(args.restore, tz, "--restore")), args.user)
            print(_line(saved.outage, cal))
            for w in saved.warnings:
                print(f"warning: {w}")
            for channel, n in saved.notices.items():
                print(f"notices: {n} by {channel}")
            return 0
        except (UnknownOutage, OutageClosed) as exc:
            raise CliError(str(exc)) from None
        except ValidationError as exc:
            e = exc.errors()[0]
            where = ".".join(str(p) for p in e["loc"])
            raise CliError(f"{where + ': ' if where else ''}{str(e['msg']).removeprefix('Value error, ')}") from None
        finally:
            await engine.dispose()

    return asyncio.run(run())
