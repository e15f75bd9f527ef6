"""`ctiserver ha status --config config`: the lease as the database has it (who leads, under which epoch).

One line per fact, or one line saying why it cannot tell (no `ha:` block, the database away): never a
traceback."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from ..config import load_server_config
from ..store.clidb import CliError, db_url


def add_ha_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("ha", help="high availability: who leads (docs/ha.md)")
    p.add_argument("action", choices=["status"])
    p.add_argument("--config", default="config")
    p.add_argument("--url", help="override the database URL from the config")
    p.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    p.set_defaults(func=_cmd_status)


async def lease_status(url: str, node: str | None, timeout_s: float = 5.0) -> dict[str, Any]:
    """role (of `node`), epoch, leader, leader address and how long the lease still runs, from the database."""
    from ..store.engine import make_engine
    from .pg import read_lease

    engine = make_engine(url, connect_timeout_s=timeout_s, statement_timeout_s=timeout_s)
    try:
        row = await asyncio.wait_for(read_lease(engine), timeout_s * 2)
    finally:
        await engine.dispose()
    live = row is not None and row.live()
    leader = row.holder if row is not None and live else None
    return {"node": node, "role": "leader" if node is not None and leader == node else "standby",
            "epoch": row.epoch if row is not None else 0, "leader": leader,
            "leader_address": row.address if row is not None and live else "",
            "expires_in_s": round(row.expires_ts - row.db_now, 2) if row is not None and live else None}


def _cmd_status(args: argparse.Namespace) -> int:
    config_dir = Path(args.config)
    cfg = load_server_config(config_dir)
    if cfg.ha is None and not args.url:
        raise CliError(f"{config_dir / 'ctiserver.yaml'}: no `ha:` block: this node runs alone and always leads")
    url = db_url(config_dir, args.url)
    if not url.startswith("postgresql"):
        raise CliError("high availability requires PostgreSQL; the database is " + url.split(":", 1)[0])
    try:
        st = asyncio.run(lease_status(url, cfg.ha.node if cfg.ha else None))
    except Exception as exc:
        orig = getattr(exc, "orig", None) or exc
        text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        raise CliError(f"cannot read the lease: the database is not answering ({text})") from None
    if args.json:
        print(json.dumps(st))
        return 0
    for key in ("node", "role", "epoch", "leader", "leader_address", "expires_in_s"):
        value = st[key]
        print(f"{key:<15} {'-' if value in (None, '') else value}")
    return 0
