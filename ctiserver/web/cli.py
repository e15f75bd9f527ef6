"""`ctiserver user add AGENT_NO --name N --role R`: a desktop user (password from a prompt or --password-stdin)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path
from typing import Any

from ..clock import SystemClock
from ..store.clidb import db_url, open_store
from .auth import create_user
from .config import ROLES


def add_user_command(subparsers: Any) -> None:
    """`ctiserver user add AGENT_NO --name N --role R` (password from a prompt or --password-stdin)."""
    p = subparsers.add_parser("user", help="desktop users (agents, supervisors, admins)")
    p.add_argument("action", choices=["add"])
    p.add_argument("agent_no")
    p.add_argument("--name", required=True)
    p.add_argument("--role", choices=list(ROLES), default="agent")
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.add_argument("--config", default="config")
    p.add_argument("--url", help="override the database URL from the config")
    p.set_defaults(func=_cmd_user)


def _cmd_user(args: argparse.Namespace) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("passwords differ", file=sys.stderr)
            return 1
    config_dir = Path(args.config)
    url = db_url(config_dir, args.url)

    async def run() -> None:
        engine = await open_store(url, config_dir, create=True)
        try:
            await create_user(engine, args.agent_no, args.name, args.role, password, now=SystemClock().now())
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    except ValueError as exc:  # includes UserExists
        print(exc, file=sys.stderr)
        return 1
    print(f"user {args.agent_no} added")
    return 0
