"""Dependencies: runtime needs only what runtime code imports, every install is pinned, and setup fails loudly."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _name(requirement: str) -> str:
    from packaging.requirements import Requirement

    return Requirement(requirement).name.lower()


def _imports(folder: Path) -> set[str]:
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_panoramisk_is_a_test_and_bench_dependency_only() -> None:
    runtime = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "panoramisk" not in runtime
    assert "panoramisk" in {_name(r) for r in extras["test"]} and "panoramisk" in {_name(r) for r in extras["bench"]}
    assert "panoramisk" not in _imports(REPO / "ctiserver")


def test_every_installed_requirement_is_pinned_in_constraints() -> None:
    """constraints.txt pins ctiserver's and its test tools' whole dependency tree, at the versions installed here."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version
    todo = [Requirement(r) for r in [*PYPROJECT["project"]["dependencies"],
                                     *PYPROJECT["project"]["optional-dependencies"]["test"]]]
    seen: set[tuple[str, str]] = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} is needed but not pinned in constraints.txt"
        assert metadata.version(name) == pins[name], f"{name}: installed {metadata.version(name)}, pinned {pins[name]}"
        for extra in {"", *req.extras}:
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            for sub in map(Requirement, metadata.requires(name) or []):
                if sub.marker is None or sub.marker.evaluate({"extra": extra}):
                    todo.append(sub)
    assert len(seen) > 20


def test_setup_stops_with_a_message_when_pip_fails(tmp_path: Path) -> None:
    """A pin that cannot be met: setup.sh exits non-zero and says so (no `|| true` hiding it)."""
    site = tmp_path / "site"
    (site / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup.sh", site / "scripts" / "setup.sh")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, site / name)
    shutil.copytree(REPO / "ctiserver", site / "ctiserver", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "constraints.txt").write_text("PyYAML==0.0.1\n", encoding="utf-8")  # no such release
    env = {**os.environ, "SETUP_STEPS": "python", "PYTHON": sys.executable, "PIP_NO_INDEX": "1"}
    proc = subprocess.run(["bash", "scripts/setup.sh"], cwd=site, capture_output=True, text=True, timeout=300,
                          env=env)
    assert proc.returncode != 0
    assert "[setup] FAILED: pip could not install" in proc.stderr
    assert "[setup] done" not in proc.stdout
