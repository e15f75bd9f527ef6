"""Live IVR trees with hot reload: new calls get the newest good tree, calls under way keep theirs.

A call takes a `LoadedTree` (immutable) when it starts and walks only that object, so
swapping the registry's entry never disturbs it. Files are polled by (mtime, size)
every `reload_poll_s`, and SIGHUP asks for a check at once. An edit that fails to load
or fails `check_tree` is refused: the previous version stays live and every problem
is reported as `file:line: message` (logged, kept in `problems`, passed to `on_report`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..configfile import ConfigError, ConfigProblem
from .checks import check_tree, default_sound_dirs
from .tree import LoadedTree, load_tree, tree_files

log = logging.getLogger(__name__)


class UnknownTree(LookupError):
    pass


def load_checked(path: Path, sound_dirs: Sequence[Path] = (), skills: Iterable[str] | None = None,
                 tiers: Iterable[str] | None = None,
                 hours: Iterable[str] | None = None) -> tuple[LoadedTree | None, list[ConfigProblem]]:
    """Load one file and run every check: (tree, []) when it may go live, else (None, problems)."""
    try:
        lt = load_tree(path)
    except ConfigError as exc:
        return None, exc.problems
    problems = check_tree(lt, sound_dirs, skills, tiers, hours)
    return (None, problems) if problems else (lt, [])


@dataclass
class ReloadResult:
    loaded: list[str] = field(default_factory=list)  # tree names now at a new version
    problems: list[ConfigProblem] = field(default_factory=list)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


class TreeRegistry:
    """name -> the live LoadedTree, reloaded from `<config_dir>/ivr/*.yaml`."""

    def __init__(self, config_dir: str | Path, sound_dirs: Sequence[Path] | None = None,
                 skills: Iterable[str] | None = None, tiers: Iterable[str] | None = None,
                 hours: Iterable[str] | None = None,
                 on_report: Callable[[list[ConfigProblem]], None] | None = None,
                 on_loaded: Callable[[LoadedTree], None] | None = None) -> None:
        self.config_dir = Path(config_dir)
        self.sound_dirs = list(sound_dirs) if sound_dirs is not None else default_sound_dirs(self.config_dir)
        self.skills = set(skills) if skills is not None else None
        self.tiers = set(tiers) if tiers is not None else None
        self.hours = set(hours) if hours is not None else None  # calendar.yaml's hours sets
        self.on_report = on_report
        self.on_loaded = on_loaded  # e.g. pre-render the new version's static prompts
        self._trees: dict[str, LoadedTree] = {}
        self._owner: dict[str, Path] = {}  # tree name -> file
        self._stamps: dict[Path, tuple[int, int] | None] = {}
        self.problems: list[ConfigProblem] = []  # of the last check, for ops (`/status`, logs)
        self._wake = asyncio.Event()

    # --- lookups -----------------------------------------------------------------------
    def get(self, name: str) -> LoadedTree:
        try:
            return self._trees[name]
        except KeyError:
            raise UnknownTree(f"no IVR tree named {name!r} (have: {', '.join(sorted(self._trees)) or 'none'})") \
                from None

    def names(self) -> list[str]:
        return sorted(self._trees)

    def versions(self) -> dict[str, str]:
        return {n: t.version for n, t in sorted(self._trees.items())}

    # --- loading -----------------------------------------------------------------------
    def load(self) -> None:
        """First load: every file must be good, or ConfigError lists all problems."""
        result = self.check_files(force=True)
        if result.problems:
            raise ConfigError(result.problems)
        if not self._trees:
            raise ConfigError.at(self.config_dir / "ivr", 0, "no IVR tree files (*.yaml) found")

    def check_files(self, force: bool = False) -> ReloadResult:
        """Load files that changed since the last look; keep the old tree for any that fail."""
        result = ReloadResult()
        files = tree_files(self.config_dir)
        for path in files:
            stamp = _stamp(path)
            if not force and path in self._stamps and self._stamps[path] == stamp:
                continue
            self._stamps[path] = stamp
            lt, problems = load_checked(path, self.sound_dirs, self.skills, self.tiers, self.hours)
            if lt is not None:
                owner = self._owner.get(lt.name)
                if owner is not None and owner != path and owner in files:
                    problems = [ConfigProblem(str(path), lt.line("name"),
                                              f"tree name '{lt.name}' is already used by {owner}")]
                    lt = None
            if lt is None:
                result.problems.extend(problems)
                continue
            for name, owner in list(self._owner.items()):  # a file renamed its tree
                if owner == path and name != lt.name:
                    del self._owner[name]
                    self._trees.pop(name, None)
            old = self._trees.get(lt.name)
            if old is None or old.version != lt.version:
                result.loaded.append(lt.name)
            self._trees[lt.name] = lt
            self._owner[lt.name] = path
        for path in list(self._stamps):
            if path not in files:
                del self._stamps[path]
                kept = [n for n, p in self._owner.items() if p == path]
                if kept:
                    result.problems.append(ConfigProblem(str(path), 0, "file removed; tree "
                                                         f"{', '.join(kept)} stays live until restart"))
        if result.problems or force or result.loaded:
            self.problems = result.problems
        for name in result.loaded:
            log.info("IVR tree %s now at version %s", name, self._trees[name].version)
            if self.on_loaded is not None:
                self.on_loaded(self._trees[name])
        if result.problems:
            for p in result.problems:
                log.warning("IVR tree edit refused, previous version stays live: %s", p)
            if self.on_report is not None:
                self.on_report(result.problems)
        return result

    # --- background --------------------------------------------------------------------
    def request_reload(self) -> None:
        """Check the files now (SIGHUP)."""
        self._wake.set()

    def install_sighup(self) -> bool:
        """Reload on SIGHUP (Unix, main thread); False where signals are not available."""
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.request_reload)
            return True
        return False

    async def run(self, poll_s: float = 2.0) -> None:
        """Poll for edits until cancelled.

        Runs on the event loop on purpose: a poll is a few stat() calls, and a changed tree
        file is a few KB of YAML (milliseconds); the registry then needs no locking.
        """
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll_s)
            self._wake.clear()
            try:
                self.check_files()
            except Exception:  # never let a reload bug stop the hotline
                log.exception("IVR tree reload failed; previous trees stay live")
