"""`ctiserver ivr try|graph|check` and `ctiserver tts build`: the ops tools of ivr/tools.py on the command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from ..clock import SystemClock
from .tools import check_ivr, ivr_graph, ivr_try, tts_build


def _cmd_try(args: argparse.Namespace) -> int:
    return ivr_try(args.config, args.caller, sys.stdin, sys.stdout, tree=args.tree, now=SystemClock().now())


def _cmd_graph(args: argparse.Namespace) -> int:
    out = ivr_graph(args.config, args.output, tree=args.tree)
    print(f"wrote {out}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    problems = check_ivr(args.config, SystemClock().now())
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"{args.config}: IVR trees OK")
    return 0


def _cmd_tts_build(args: argparse.Namespace) -> int:
    rendered, cached, errors = asyncio.run(tts_build(args.config))
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    print(f"{rendered} prompt(s) rendered, {cached} already cached, {len(errors)} failed")
    return 1 if errors else 0


def add_commands(sub: Any) -> None:
    """Register `ivr try|graph|check` and `tts build` on the `ctiserver` CLI's subparsers."""
    ivr = sub.add_parser("ivr", help="IVR menu trees: try one in the terminal, draw one, check them")
    isub = ivr.add_subparsers(dest="ivr_command", required=True)
    p = isub.add_parser("try", help="walk a tree in the terminal as a caller would")
    p.add_argument("--config", default="config")
    p.add_argument("--caller", default="", help="the calling number, e.g. 13800000001")
    p.add_argument("--tree", help="tree name (default: settings.yaml default_tree)")
    p.set_defaults(func=_cmd_try)
    p = isub.add_parser("graph", help="draw a tree (graphviz): -o FILE.svg, .png or .dot")
    p.add_argument("--config", default="config")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--tree")
    p.set_defaults(func=_cmd_graph)
    p = isub.add_parser("check", help="check the IVR trees only")
    p.add_argument("--config", default="config")
    p.set_defaults(func=_cmd_check)
    tts = sub.add_parser("tts", help="text to speech prompts")
    tsub = tts.add_subparsers(dest="tts_command", required=True)
    p = tsub.add_parser("build", help="render every static prompt into the TTS cache")
    p.add_argument("--config", default="config")
    p.set_defaults(func=_cmd_tts_build)
