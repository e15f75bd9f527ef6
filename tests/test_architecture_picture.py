"""docs/architecture.svg is drawn from the code: the script must keep working as the code changes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_architecture_picture_is_drawn_from_the_code(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "architecture.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    dot = (tmp_path / "architecture.dot").read_text(encoding="utf-8")
    for package in ("ami", "calls", "agi", "ivr", "acd", "web", "store", "kpi"):
        assert f'"{package}"' in dot
    assert "1. event store" in dot and "FastAGI" in dot  # the lifecycle, read from the built server
    assert (tmp_path / "architecture.svg").read_bytes().lstrip().startswith(b"<?xml")
