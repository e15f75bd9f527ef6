"""Assemble a CtiServer with its features from a configuration folder."""

from __future__ import annotations

from pathlib import Path

from .config import ServerConfig
from .server import CtiServer


async def build_server(config_dir: Path, cfg: ServerConfig, *, sandbox: bool = False) -> CtiServer:
    if sandbox:
        from . import sandbox as sb

        sb.up()
    server = CtiServer(config_dir, cfg)
    return server
