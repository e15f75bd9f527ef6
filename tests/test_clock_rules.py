"""Time comes from the injected clock (ctiserver/clock.py): nothing else in the package reads the wall clock.

A core that reads the wall clock itself cannot be driven by a FakeClock, and an event stamped by
the wall clock in a test on a FakeClock lands on another timeline. So the package reads wall time
in one place, `SystemClock.now`; the server, the CLI commands and the demo choose that clock and
hand it (or its `now()`) to everything below them. Monotonic clocks for timeouts and log-rate
windows at the IO edges are not wall time and are not checked here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ctiserver
from ctiserver.events import Event, Kind

PACKAGE = Path(ctiserver.__file__).resolve().parent
WALL_CLOCK = {("time", "time"), ("time", "time_ns"), ("datetime", "now"), ("datetime", "utcnow"),
              ("datetime", "today"), ("date", "today")}
ALLOWED = {"clock.py"}  # SystemClock.now: the one place


def wall_clock_reads(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    """`time.time`, `datetime.now`, `date.today`... referenced (called or passed as a default) in `path`."""
    found: list[tuple[int, str]] = []
    where = path.relative_to(root)
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Attribute) and (_last_name(node.value), node.attr) in WALL_CLOCK:
            found.append((node.lineno, f"{where}:{node.lineno}: {ast.unparse(node)}"))
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            found += [(node.lineno, f"{where}:{node.lineno}: from time import {a.name}")
                      for a in node.names if ("time", a.name) in WALL_CLOCK]
    return [text for _, text in sorted(found, key=lambda hit: hit[0])]


def _last_name(node: ast.expr) -> str | None:
    """`dt.datetime` -> 'datetime', `time` -> 'time'."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def test_only_the_clock_module_reads_the_wall_clock() -> None:
    found = [hit for path in sorted(PACKAGE.rglob("*.py")) if path.relative_to(PACKAGE).as_posix() not in ALLOWED
             for hit in wall_clock_reads(path)]
    assert not found, "wall-clock reads outside ctiserver/clock.py (take a Clock or `now`):\n  " + "\n  ".join(found)


def test_the_clock_module_is_where_the_wall_clock_is_read() -> None:
    assert wall_clock_reads(PACKAGE / "clock.py") == ["ctiserver/clock.py:19: time.time"]


def test_the_reader_sees_every_spelling(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import time, datetime as dt\nfrom time import time as now\n"
                      "def f(clock=time.time):\n    return dt.datetime.now(), dt.date.today(), time.monotonic()\n",
                      encoding="utf-8")
    assert wall_clock_reads(sample, tmp_path) == ["sample.py:2: from time import time", "sample.py:3: time.time",
                                                  "sample.py:4: dt.datetime.now", "sample.py:4: dt.date.today"]


def test_an_event_has_no_wall_clock_default() -> None:
    with pytest.raises(TypeError):
        Event(Kind.CALL_NEW)  # type: ignore[call-arg]
    assert Event(Kind.CALL_NEW, 12.5).ts == 12.5
