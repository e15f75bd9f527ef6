"""The package's import rules, read from the source (ast), so a change that breaks one fails here.

1. No import circle between ctiserver's modules. Every import counts: at module level, inside a
   function (a lazy import is still a dependency), under TYPE_CHECKING; and importing `a.b.c` also
   runs `a/__init__` and `a/b/__init__`, so those count too. Only `if __name__ == "__main__":`
   blocks are left out: there the module runs as `__main__`, a different module object.
2. Pure cores import no IO module, directly or through anything they import. IO is the network,
   databases, processes and HTTP (see IO_LIBRARIES; of asyncio only its streams, sockets and
   subprocesses: a timer on the running loop is not IO), the modules that use them, and the edges
   named in IO_MODULES (store, web, the FastAGI listener, the app: server and wiring, sandbox, the CLI).
3. Command-line code (argparse, getpass, sub-commands) lives only in CLI modules (`ctiserver/app/cli.py`,
   a feature's `cli.py` or `*_cli.py`), and no other module imports a CLI module.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import ctiserver

PACKAGE = Path(ctiserver.__file__).resolve().parent

# The deterministic cores: decisions and data, no IO. Each one was read to check that it is one.
CORES = (
    "ctiserver.clock",              # the Clock protocol, SystemClock, FakeClock
    "ctiserver.events",             # the Event record every feature emits
    "ctiserver.calendar",           # time zone, holidays, hours sets (and their YAML model)
    "ctiserver.workorders.deadlines",  # work-order deadline table and due-time arithmetic
    "ctiserver.numbers",            # the phone-number normaliser
    "ctiserver.calls.tracker",      # AMI events -> call events (sans-IO)
    "ctiserver.ami.framing",        # bytes -> AmiMessage
    "ctiserver.ami.message",
    "ctiserver.ami.actions",        # action encoding
    "ctiserver.ami.reconnect",      # reconnect backoff, restart detection
    "ctiserver.acd.engine",         # the ACD state machine (the facade over the parts below)
    "ctiserver.acd.model",
    "ctiserver.acd.states",         # agent and call states, their transition tables
    "ctiserver.acd.records",        # the agent and call records
    "ctiserver.acd.agents",         # agents, their moves, the free-agent index
    "ctiserver.acd.queues",         # calls held, the waiting index, redials, kept places
    "ctiserver.acd.timers",         # the deadline heap
    "ctiserver.acd.selection",      # pools, VIP phases, which caller for which agent
    "ctiserver.acd.offers",         # offer, ring guard, RONA
    "ctiserver.acd.door",           # queue door, overflow, escalation
    "ctiserver.acd.restore",        # agent states rebuilt from stored events
    "ctiserver.acd.resume",         # waiting callers rebuilt from stored events (HA takeover)
    "ctiserver.acd.hold",           # AMI Hold/Unhold -> the ACD's hold periods
    "ctiserver.acd.fallback",       # Asterisk's own Queue() outcomes -> ACD events
    "ctiserver.acd.servers",        # several Asterisks: a call's server, agents a lost server takes away
    "ctiserver.ivr.walker",         # the IVR state machine
    "ctiserver.ivr.steps",          # what the walker asks for and takes back
    "ctiserver.ivr.tree",           # IVR tree model and checks
    "ctiserver.ivr.template",
    "ctiserver.ivr.checks",         # whole-tree checks
    "ctiserver.outbound.rules",     # calling windows, caps, late fees
    "ctiserver.outbound.timeranges",  # daily ranges of local time
    "ctiserver.outbound.scheduler",
    "ctiserver.outbound.pacing",
    "ctiserver.callbacks.rules",    # the ACD's callback planner
    "ctiserver.outbound.contacts",  # contact list parsing and sampling
    "ctiserver.outbound.amimap",    # AMI results -> attempt outcomes
    "ctiserver.outbound.messages",
    "ctiserver.kpi.erlang",
    "ctiserver.recording.core",     # AMI events -> start/stop recording an agent leg
    "ctiserver.recording.retention",  # which recordings are past their keep time
    "ctiserver.qc.sheet",           # the QC scoring sheet and scoring a call
    "ctiserver.qc.sampling",        # the month's inspection sample, seeded
    "ctiserver.qc.figures",         # QC figures per agent, team, queue
    "ctiserver.kpi.staffing",
    "ctiserver.kpi.bands",
    "ctiserver.kpi.facts",          # the report window and the facts the SQL sums
    "ctiserver.kpi.metrics",        # roll-up, derived metrics, targets, staffing
    "ctiserver.kpi.builder",        # events -> call, leg, segment facts and agent state intervals
    "ctiserver.kpi.sums",           # facts -> per-half-hour sums (the pure path of the report)
    "ctiserver.kpi.live",           # the wallboard figures from events, with the report's functions
    "ctiserver.kpi.queuelog",       # events -> Asterisk queue_log lines
    "ctiserver.kpi.render",         # a report as a table, CSV or JSON
    "ctiserver.sms.model",          # sms.yaml: gateway, windows, retries, caps, templates
    "ctiserver.sms.encoding",       # GSM 7-bit or UCS-2, parts
    "ctiserver.sms.engine",         # a message's states, retries, contact rules
    "ctiserver.outages.model",      # what an outage is, its warnings, its notice plan
    "ctiserver.repair.engine",      # a repair order's steps, deadlines, reminders and escalations
    "ctiserver.repair.model",       # crews.yaml
    "ctiserver.sim.scenario",
    "ctiserver.sim.simulate",       # the discrete-event simulator over the ACD engine
    "ctiserver.ha.lease",           # the leader's lease as a state machine (renew results + clock -> role)
    "ctiserver.ha.config",          # the `ha:` block
    "ctiserver.wfm.history",        # ACD events -> per-queue half-hour history
    "ctiserver.wfm.forecast",       # Holt-Winters daily totals x intraday profiles, held-out accuracy
    "ctiserver.wfm.synth",          # generated history with known seasonality
    "ctiserver.wfm.shifts",         # shift patterns, roster rules and their checks
    "ctiserver.wfm.config",
    "ctiserver.wfm.report",
    "ctiserver.wfm.render",
    "ctiserver.wfm.staffing",       # Erlang C/A agents per half hour, tier targets, shrinkage
    "ctiserver.wfm.verify",         # a staffing plan played through the simulator
    "ctiserver.wfm.roster",         # the week's roster by OR-Tools CP-SAT (two stages), its saved form
    "ctiserver.wfm.export",         # a roster as CSV / xlsx bytes
    "ctiserver.wfm.adherence",      # agent states against the roster: adherence, late logins, early logouts
)

# Libraries that talk to the outside world. `asyncio` is IO only through ASYNCIO_IO.
IO_LIBRARIES = frozenset({
    "socket", "ssl", "selectors", "subprocess", "multiprocessing", "signal", "fcntl", "http", "urllib.request",
    "sqlalchemy", "alembic", "asyncpg", "aiosqlite", "psycopg", "psycopg2", "aiohttp", "pyttsx3",
})
ASYNCIO_IO = frozenset({
    "open_connection", "start_server", "open_unix_connection", "start_unix_server", "StreamReader",
    "StreamWriter", "create_subprocess_exec", "create_subprocess_shell", "Server",
})
# Edges by role, whatever they import: the event store, the desktop/HTTP side, FastAGI, the server
# and its wiring, the sandbox Asterisk's process management. CLI modules are added by name.
IO_MODULES = ("ctiserver.store", "ctiserver.web", "ctiserver.agi.server", "ctiserver.app", "ctiserver.sandbox")
CLI_SUPPORT = frozenset({"ctiserver.store.clidb"})  # the event store as the CLI commands open it
CLI_LIBRARIES = frozenset({"argparse", "getpass"})
CLI_CALLS = frozenset({"add_parser", "add_subparsers", "parse_args", "parse_known_args"})


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    imports: set[str] = field(default_factory=set)      # ctiserver modules, parent packages included
    libraries: set[str] = field(default_factory=set)    # other top-level names, plus dotted forms
    asyncio_io: set[str] = field(default_factory=set)   # asyncio stream/socket/subprocess names used
    cli_code: list[str] = field(default_factory=list)   # why this module holds command-line code


def _main_guard(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.comparators) == 1 and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value == "__main__")


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    """Every node except the bodies of `if __name__ == "__main__":`."""
    yield node
    for child in ast.iter_child_nodes(node):
        if not _main_guard(child):
            yield from _walk(child)


def _with_parents(name: str, root: str) -> Iterable[str]:
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if prefix.startswith(root):
            yield prefix


def read_package(folder: Path, root: str) -> dict[str, Module]:
    """Every module under `folder` (the package `root`) with what it imports."""
    modules: dict[str, Module] = {}
    for path in sorted(folder.rglob("*.py")):
        parts = [root, *path.relative_to(folder).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        modules[".".join(parts)] = Module(".".join(parts), path, is_package)
    for mod in modules.values():
        tree = ast.parse(mod.path.read_text(encoding="utf-8"), str(mod.path))
        here = mod.name.split(".") if mod.is_package else mod.name.split(".")[:-1]
        wanted: set[str] = set()
        for node in _walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == root:
                        wanted.add(alias.name)
                    else:
                        mod.libraries.update(_with_parents(alias.name, ""))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                if base.split(".")[0] != root:
                    mod.libraries.update(_with_parents(base, ""))
                    mod.libraries.update(f"{base}.{a.name}" for a in node.names)
                    if base == "asyncio":
                        mod.asyncio_io.update(a.name for a in node.names if a.name in ASYNCIO_IO)
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    wanted.add(sub if sub in modules else base)
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id == "asyncio" and node.attr in ASYNCIO_IO:
                    mod.asyncio_io.add(node.attr)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in CLI_CALLS:
                mod.cli_code.append(f"line {node.lineno}: .{node.func.attr}(...)")
        for lib in sorted(mod.libraries & CLI_LIBRARIES):
            mod.cli_code.append(f"imports {lib}")
        for name in wanted:
            for dep in _with_parents(name, root):
                # a module inside package P does not import P: P is loaded before it anyway
                if dep in modules and dep != mod.name and not mod.name.startswith(dep + "."):
                    mod.imports.add(dep)
    return modules


def circles(modules: dict[str, Module]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(modules):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(modules[start].imports)))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, deps = work[-1]
            for dep in deps:
                if dep not in index:
                    index[dep] = low[dep] = counter
                    counter += 1
                    stack.append(dep)
                    on_stack.add(dep)
                    work.append((dep, iter(sorted(modules[dep].imports))))
                    break
                if dep in on_stack:
                    low[node] = min(low[node], index[dep])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def cycle_in(component: list[str], modules: dict[str, Module]) -> list[str]:
    """One concrete circle through the component's first module, for the failure message."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    todo = [start]
    while todo:
        node = todo.pop(0)
        for dep in sorted(modules[node].imports & members):
            if dep == start:
                return [*paths[node], start]
            if dep not in paths:
                paths[dep] = [*paths[node], dep]
                todo.append(dep)
    return component


def is_cli(name: str) -> bool:
    last = name.rsplit(".", 1)[-1]
    return last in ("cli", "__main__") or last.endswith("_cli") or name in CLI_SUPPORT


def io_reasons(mod: Module) -> list[str]:
    reasons = [f"imports {lib}" for lib in sorted(mod.libraries & IO_LIBRARIES)]
    reasons += [f"uses asyncio.{name}" for name in sorted(mod.asyncio_io)]
    if any(mod.name == m or mod.name.startswith(m + ".") for m in IO_MODULES):
        reasons.append("is an IO edge by role")
    if is_cli(mod.name):
        reasons.append("is a CLI module")
    return reasons


def io_path(core: str, modules: dict[str, Module]) -> list[str] | None:
    """The import chain from `core` to the first IO module it reaches (None: it reaches none)."""
    paths = {core: [core]}
    todo = [core]
    while todo:
        node = todo.pop(0)
        if io_reasons(modules[node]):
            return paths[node]
        for dep in sorted(modules[node].imports):
            if dep not in paths:
                paths[dep] = [*paths[node], dep]
                todo.append(dep)
    return None


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    return read_package(PACKAGE, "ctiserver")


# ------------------------------------------------------------------------------------------ the rules

def test_no_import_circle(modules: dict[str, Module]) -> None:
    found = circles(modules)
    assert not found, "import circles:\n" + "\n".join(
        f"  {len(c)} modules: {' -> '.join(cycle_in(c, modules))}" for c in found)


def test_pure_cores_import_no_io(modules: dict[str, Module]) -> None:
    missing = [c for c in CORES if c not in modules]
    assert not missing, f"cores listed here that do not exist (update CORES): {missing}"
    bad = {}
    for core in CORES:
        chain = io_path(core, modules)
        if chain is not None:
            bad[core] = f"{' -> '.join(chain)} ({', '.join(io_reasons(modules[chain[-1]]))})"
    assert not bad, "pure cores that reach IO:\n" + "\n".join(f"  {c}: {why}" for c, why in bad.items())


def test_command_line_code_only_in_cli_modules(modules: dict[str, Module]) -> None:
    bad = {m.name: m.cli_code for m in modules.values() if m.cli_code and not is_cli(m.name)}
    assert not bad, "command-line code outside the CLI modules:\n" + "\n".join(
        f"  {name}: {'; '.join(why)}" for name, why in sorted(bad.items()))


def test_only_cli_modules_import_cli_modules(modules: dict[str, Module]) -> None:
    bad = {m.name: sorted(d for d in m.imports if is_cli(d))
           for m in modules.values() if not is_cli(m.name)}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, "modules importing CLI modules:\n" + "\n".join(
        f"  {name} imports {', '.join(deps)}" for name, deps in sorted(bad.items()))


# The package root holds only the vocabulary every feature shares; a feature's code lives in its package.
ROOT_MODULES = frozenset({
    "__init__", "__main__", "clock", "events", "calendar", "configfile", "config", "names", "numbers", "lograte",
    "lifecycle", "metrics", "fencing", "dialplan",
})


def test_the_package_root_holds_only_the_shared_vocabulary() -> None:
    loose = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in ROOT_MODULES)
    assert not loose, f"modules at the package root that belong in a feature's package: {loose}"


DOCS = PACKAGE.parent / "docs" / "packages"


def declared_imports(page: Path) -> set[str]:
    """The packages a page's `May import:` line allows (backquoted names; none when it says no other)."""
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("May import:"):
            return set(re.findall(r"`(\w+)`", line))
    raise AssertionError(f"{page} has no 'May import:' line")


def test_each_package_imports_only_what_its_page_allows(modules: dict[str, Module]) -> None:
    packages = {m.name.split(".")[1] for m in modules.values() if m.is_package and m.name.count(".") == 1}
    missing = sorted(p for p in packages if not (DOCS / f"{p}.md").exists())
    assert not missing, f"packages without a page in docs/packages/ (what it owns, what it may import): {missing}"
    actual: dict[str, set[str]] = {p: set() for p in packages}
    for mod in modules.values():
        parts = mod.name.split(".")
        if len(parts) > 1 and parts[1] in packages:
            actual[parts[1]].update(d.split(".")[1] for d in mod.imports
                                    if d.count(".") >= 1 and d.split(".")[1] in packages - {parts[1]})
    extra = {p: sorted(actual[p] - declared_imports(DOCS / f"{p}.md")) for p in sorted(packages)}
    extra = {p: e for p, e in extra.items() if e}
    assert not extra, "imports that docs/packages/<package>.md does not allow (allow them there, saying why, " \
        "or import less):\n" + "\n".join(f"  {p} imports {', '.join(e)}" for p, e in extra.items())


def test_io_modules_named_by_role_exist(modules: dict[str, Module]) -> None:
    assert [m for m in IO_MODULES if m not in modules] == []
    assert [m for m in CLI_SUPPORT if m not in modules] == []


# ------------------------------------------------------------------------------------- the reader itself

def _package(tmp_path: Path, files: dict[str, str]) -> dict[str, Module]:
    root = tmp_path / "pkg"
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return read_package(root, "pkg")


def test_reader_sees_lazy_relative_and_package_imports(tmp_path: Path) -> None:
    mods = _package(tmp_path, {
        "a.py": "def f():\n    from .sub import b\n",
        "sub/__init__.py": "from . import c\n",
        "sub/b.py": "import asyncio\nasync def g():\n    await asyncio.open_connection('h', 1)\n",
        "sub/c.py": "from .. import a\n",
        "d.py": "if __name__ == '__main__':\n    from . import a\n    import argparse\n",
        "e.py": "import argparse\nfrom sqlalchemy import select\n",
    })
    assert mods["pkg.a"].imports == {"pkg.sub", "pkg.sub.b"}  # importing sub.b runs sub/__init__
    assert mods["pkg.sub.c"].imports == {"pkg.a"}
    assert mods["pkg.d"].imports == set() and mods["pkg.d"].cli_code == []  # __main__ blocks left out
    assert mods["pkg.e"].cli_code == ["imports argparse"]
    assert circles(mods) == [["pkg.a", "pkg.sub", "pkg.sub.c"]]
    assert cycle_in(["pkg.a", "pkg.sub", "pkg.sub.c"], mods) == ["pkg.a", "pkg.sub", "pkg.sub.c", "pkg.a"]
    assert io_path("pkg.a", mods) == ["pkg.a", "pkg.sub.b"]
    assert io_reasons(mods["pkg.sub.b"]) == ["uses asyncio.open_connection"]
    assert io_reasons(mods["pkg.e"]) == ["imports sqlalchemy"]


def test_reader_passes_a_clean_package(tmp_path: Path) -> None:
    mods = _package(tmp_path, {
        "core.py": "import asyncio\nimport time\nfrom .util import x\n",  # a loop timer is not IO
        "util.py": "x = 1\n",
        "edge.py": "from .core import *\nimport aiohttp\n",
    })
    assert circles(mods) == []
    assert io_path("pkg.core", mods) is None
    assert io_path("pkg.edge", mods) == ["pkg.edge"]
