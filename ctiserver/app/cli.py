"""`ctiserver` command line: serve, check, asterisk sandbox, db, and the feature commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..configfile import ConfigError, ConfigProblem

DEFAULT_CONFIG = "config"


def check_config(config_dir: Path) -> list[ConfigProblem]:
    """Validate every config file of every feature; return all problems (empty when good)."""
    from ..clock import SystemClock
    from . import settings

    return settings.check_all(config_dir, SystemClock().now())


def _cmd_check(args: argparse.Namespace) -> int:
    from . import settings

    problems = check_config(Path(args.config))
    for p in problems:
        print(p, file=sys.stderr)
    if not args.sandbox:
        for w in settings.secret_warnings(Path(args.config)):
            print(w, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"{args.config}: configuration OK")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from . import settings
    from .logsetup import setup_logging
    from .server import run_until_signalled
    from .wiring import build_server

    config_dir = Path(args.config)
    problems = check_config(config_dir)
    if problems:
        for p in problems:
            print(p, file=sys.stderr)
        return 1
    cfg = settings.load_server(config_dir)
    setup_logging(args.log_level or cfg.log_level, json_lines=args.log_json)
    if args.demo_traffic is not None:
        return _serve_demo(args, cfg)
    if not args.sandbox:
        for w in settings.secret_warnings(config_dir):
            logging.getLogger("ctiserver").warning("%s", w)

    async def main() -> None:
        server = await build_server(config_dir, cfg, sandbox=args.sandbox, sample_data=args.sample_data)
        ready = asyncio.Event()
        running = asyncio.create_task(run_until_signalled(server, ready))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait([running, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if ready.is_set():
            print(serve_banner(server, config_dir, users=await _count_users(server)), flush=True)
        await running

    asyncio.run(main())
    return 0


def _serve_demo(args: argparse.Namespace, cfg: Any) -> int:
    """`serve --demo-traffic`: the hotline working at once: `ctiserver demo` (sandbox, simulated callers and
    agents) on this config, with this config's ports."""
    from .demo import DemoOptions, run_demo_forever

    opts = DemoOptions(config_dir=Path(args.config), callers_per_minute=args.demo_traffic,
                       http_port=cfg.http.port, agi_port=cfg.agi.port)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo_forever(opts))
    return 0


async def _count_users(server: Any) -> int | None:
    """Desktop users in the store (None when it cannot tell, e.g. the database is away)."""
    from sqlalchemy import func, select

    from ..web.app import DESKTOP_KEY
    from ..web.tables import users

    try:
        async with server.http_app[DESKTOP_KEY].engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())
    except Exception:
        return None


def serve_banner(server: Any, config_dir: Path, *, users: int | None) -> str:
    """What a newcomer needs once the server is up: where to go, how to log in, how to place a first call."""
    cfg = server.cfg
    host = cfg.http.host if cfg.http.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    base = f"http://{host}:{server.http_port}"
    agi_port = server.agi.port if server.agi is not None else cfg.agi.port
    lines = ["ctiserver is serving (Ctrl-C stops it):",
             f"  {'agent desktop':<14} {base}/agent",
             f"  {'wallboard':<14} {base}/wallboard",
             f"  {'reports':<14} {base}/reports",
             f"  {'health':<14} {base}/healthz   (Prometheus: {base}/metrics)"]
    add = f"ctiserver user add 2001 --name 班长 --role supervisor --config {config_dir}"
    if users == 0:
        lines.append(f"  {'log in':<14} no desktop user yet: `{add}` (agents: --role agent, "
                     f"numbers from acd.yaml, e.g. 1001)")
    elif users is None:
        lines.append(f"  {'log in':<14} with a desktop user; create one with `{add}`")
    else:
        lines.append(f"  {'log in':<14} {users} desktop user(s); add more with `{add}`")
    info = server.features.sandbox if server.features is not None else None
    if info is not None:
        lines.append(f"  {'first call':<14} a SIP softphone registered on 127.0.0.1:{info.sip_port} as agent1001 "
                     f"(password pw1001) logs in agent 1001; call the hotline with "
                     f"`ctiserver serve --config {config_dir} --sandbox --sample-data --demo-traffic` instead "
                     f"to watch simulated callers and agents")
    else:
        lines.append(f"  {'first call':<14} Asterisk sends callers to agi://<this host>:{agi_port}/ivr "
                     f"(asterisk/extensions.conf, [hotline]); to try it here: "
                     f"`ctiserver serve --config {config_dir} --sandbox --sample-data --demo-traffic`")
    return "\n".join(lines)


def _cmd_asterisk(args: argparse.Namespace) -> int:
    from ..sandbox.cli import run

    return run(args.action, args.root, args.sounds)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import DemoOptions, run_demo_forever

    opts = DemoOptions(config_dir=Path(args.config), minutes=args.minutes,
                       callers_per_minute=args.callers_per_minute, seed=args.seed, http_port=args.http_port,
                       agi_port=args.agi_port)
    try:
        asyncio.run(run_demo_forever(opts))
    except KeyboardInterrupt:
        return 0
    return 0


def _cmd_db(args: argparse.Namespace) -> int:
    from ..store.clidb import db_url, sqlite_file
    from ..store.engine import migrate

    config_dir = Path(args.config)
    url = db_url(config_dir, args.url)
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    async def run() -> None:
        await migrate(url)
        if args.sample_data:
            from ..clock import SystemClock
            from ..customers.data import load_sample_data
            from ..store.engine import make_engine

            engine = make_engine(url)
            try:
                await load_sample_data(engine, config_dir, SystemClock().now())
            finally:
                await engine.dispose()

    asyncio.run(run())
    print("database schema is up to date" + (" (sample data loaded)" if args.sample_data else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ctiserver", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the CTI server")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--log-json", action="store_true", help="one JSON object per log line")
    p.add_argument("--sandbox", action="store_true", help="bring up the sandbox Asterisk first")
    p.add_argument("--sample-data", action="store_true",
                   help="load the sample customers and outages from config/data (demo hotline)")
    p.add_argument("--demo-traffic", nargs="?", type=float, const=6.0, metavar="CALLERS_PER_MINUTE",
                   help="the hotline working at once: sandbox Asterisk, sample data, simulated callers "
                        "(default 6 a minute) and agents, as `ctiserver demo` on this config")
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("check", help="validate the configuration without starting anything")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--sandbox", action="store_true", help="the config is for the sandbox (a literal secret is fine)")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("asterisk", help="the sandbox Asterisk (Debian's Asterisk 22 in a chroot)")
    p.add_argument("action", choices=["up", "down", "status", "restart", "build"])
    p.add_argument("--root", help="chroot folder (default /var/cache/ctiserver/asterisk-root)")
    p.add_argument("--sounds", help="host folder of TTS prompts, shown to Asterisk as sounds/cti")
    p.set_defaults(func=_cmd_asterisk)

    p = sub.add_parser("db", help="database schema")
    p.add_argument("action", choices=["upgrade"])
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--url", help="override the database URL from the config")
    p.add_argument("--sample-data", action="store_true", help="also load config/data (sample customers, outages)")
    p.set_defaults(func=_cmd_db)

    p = sub.add_parser("demo", help="a live demo hotline: sandbox Asterisk, simulated callers and agents")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--minutes", type=float, default=math.inf, help="stop after this long (default: Ctrl-C)")
    p.add_argument("--callers-per-minute", type=float, default=6.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--http-port", type=int, default=None, help="default: the config's")
    p.add_argument("--agi-port", type=int, default=None, help="default: the config's")
    p.set_defaults(func=_cmd_demo)

    for add in _feature_commands():
        add(sub)
    return parser


def _feature_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    """Each feature's own CLI module adds its sub-commands."""
    from ..ha.cli import add_ha_commands
    from ..ivr.cli import add_commands as add_ivr_commands
    from ..kpi.cli import add_report_command
    from ..outages.cli import add_outage_commands
    from ..outbound.cli import add_campaign_commands
    from ..qc.cli import add_qc_commands
    from ..sim.cli import add_sim_commands
    from ..web.cli import add_user_command
    from ..wfm.cli import add_wfm_commands
    from ..wfm.report_section import adherence_section

    def add_report(sub: argparse._SubParsersAction) -> None:  # the KPI report, with WFM's adherence section
        add_report_command(sub, sections={"adherence": adherence_section})

    return [add_ivr_commands, add_report, add_campaign_commands, add_user_command, add_sim_commands,
            add_wfm_commands, add_ha_commands, add_outage_commands, add_qc_commands]


def main(argv: list[str] | None = None) -> int:
    """Run one command. A user never sees a traceback: every error is one line (`--debug` shows it whole)."""
    from ..store.clidb import CliError

    parser = build_parser()
    args = parser.parse_args(argv)
    config = getattr(args, "config", None)
    if config is not None and not Path(config).is_dir():
        print(f"{config}: configuration folder not found (run from the folder that holds it, or pass --config DIR)",
              file=sys.stderr)
        return 1
    try:
        return int(args.func(args) or 0)
    except (ConfigError, CliError) as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"ctiserver {args.command}: {describe_error(exc)} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1


def describe_error(exc: BaseException) -> str:
    """One line for an unexpected error: the driver's message for database errors, else type and text."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    orig = getattr(exc, "orig", None)  # sqlalchemy wraps the driver's error
    text = str(orig if orig is not None else exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
