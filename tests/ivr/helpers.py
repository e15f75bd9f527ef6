"""Shared helpers for the IVR tests: build trees from YAML text, pick actions by type."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from ctiserver.ivr.tree import LoadedTree, load_tree
from ctiserver.ivr.walker import Action, LogEvent

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_CONFIG = ROOT / "config"


def tree_from(text: str, name: str = "t") -> LoadedTree:
    return load_tree(Path(f"{name}.yaml"), textwrap.dedent(text))


def of(actions: list[Action], cls: type[Any]) -> list[Any]:
    return [a for a in actions if isinstance(a, cls)]


def events(actions: list[Action], kind: str | None = None) -> list[Any]:
    evs = [a.event for a in actions if isinstance(a, LogEvent)]
    return [e for e in evs if kind is None or e.kind == kind]


def nodes(actions: list[Action]) -> list[str]:
    return [e.data["node"] for e in events(actions, "ivr.node") if e.data.get("node_kind") not in
            ("exhausted", "error", "lookup_error")]
