"""Tools for ops staff: check trees, walk one in the terminal, draw it, pre-render its prompts.

    check_ivr(config_dir, now)          every problem as `file:line: message` (for `ctiserver check`)
    ivr_try(config_dir, caller, i, o, now=)  `ctiserver ivr try --caller N`: the same walker, keys from stdin
    ivr_graph(config_dir, out_path)     `ctiserver ivr graph -o FILE.svg`: DOT through graphviz `dot`
    tts_build(config_dir)               `ctiserver tts build`: render every static prompt once

The `ctiserver ivr ...` and `tts build` commands that run them are in ivr/cli.py.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from ..configfile import ConfigError, ConfigProblem
from ..customers.data import DataProvider, MemoryDataProvider, read_sample_data
from .checks import _implicit, default_sound_dirs, edges
from .reload import load_checked
from .settings import IvrSettings, load_ivr_settings
from .template import fields
from .tree import LoadedTree, Prompt, load_tree, tree_files
from .tts import Tts
from .walker import (
    Collect,
    Digits,
    Hangup,
    HungUp,
    Input,
    IvrWalker,
    LogEvent,
    Lookup,
    LookupResult,
    PlayFile,
    Queue,
    Queued,
    Record,
    Recorded,
    Say,
    Timeout,
)


def sound_dirs_for(config_dir: Path, settings: IvrSettings) -> list[Path]:
    project = config_dir.resolve().parent
    extra = [Path(d) if Path(d).is_absolute() else project / d for d in settings.sound_dirs]
    return [*extra, *default_sound_dirs(config_dir)]


def acd_names(config_dir: Path) -> tuple[list[str] | None, list[str] | None]:
    """The ACD's skills and tiers, to cross-check queue nodes ((None, None) when acd.yaml is absent
    or broken: its own check reports that)."""
    if not (config_dir / "acd.yaml").exists():
        return None, None
    try:
        from ..acd.config import load_acd_config

        cfg = load_acd_config(config_dir)
    except Exception:
        return None, None
    return list(cfg.skills), [t.name for t in cfg.tiers]


def check_ivr(config_dir: str | Path, now: float) -> list[ConfigProblem]:
    """Settings, every tree (load + whole-tree checks) and the sample data (its offsets counted from `now`);
    all problems."""
    config_dir = Path(config_dir)
    problems: list[ConfigProblem] = []
    try:
        settings = load_ivr_settings(config_dir)
    except ConfigError as exc:
        problems.extend(exc.problems)
        settings = None
    hours = list(settings.calendar.hours) if settings is not None else None  # else: calendar.yaml's own problem
    settings = settings or IvrSettings()
    files = tree_files(config_dir)
    if not files:
        problems.append(ConfigProblem(str(config_dir / "ivr"), 0, "no IVR tree files (*.yaml) found"))
    dirs = sound_dirs_for(config_dir, settings)
    skills, tiers = acd_names(config_dir)
    names: dict[str, Path] = {}
    for path in files:
        lt, found = load_checked(path, dirs, skills, tiers, hours)
        problems.extend(found)
        if lt is not None:
            if lt.name in names:
                problems.append(ConfigProblem(str(path), lt.line("name"),
                                              f"tree name '{lt.name}' is already used by {names[lt.name]}"))
            names.setdefault(lt.name, path)
    if files and not problems and settings.default_tree not in names:
        problems.append(ConfigProblem(str(config_dir / "ivr" / "settings.yaml"), 1,
                                      f"default_tree '{settings.default_tree}' is none of: {', '.join(sorted(names))}"))
    if (config_dir / "data").is_dir():
        try:
            read_sample_data(config_dir, now, settings.timezone)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems


def _tree(config_dir: Path, name: str | None) -> LoadedTree:
    settings = load_ivr_settings(config_dir)
    wanted = name or settings.default_tree
    for path in tree_files(config_dir):
        lt = load_tree(path)
        if lt.name == wanted:
            return lt
    raise ConfigError.at(config_dir / "ivr", 0, f"no IVR tree named {wanted!r}")


# --- ivr try --------------------------------------------------------------------------------------
def ivr_try(config_dir: str | Path, caller: str, inp: TextIO, out: TextIO, *, tree: str | None = None,
            now: float, data: DataProvider | None = None) -> int:
    """Walk a tree in the terminal with the sample data: prints what the caller hears, reads keys.

    Input lines: keys (`1`, `9100000001#`), an empty line = no input (timeout), `q` or EOF = hang up.
    At a queue node: the id of the agent who answers (empty: the call ends there). The call happens at `now`
    (hours, holidays, the sample data's offsets).
    """
    config_dir = Path(config_dir)
    when = now
    lt = _tree(config_dir, tree)
    settings = load_ivr_settings(config_dir)
    provider = data or MemoryDataProvider(read_sample_data(config_dir, when, settings.timezone), settings.timezone)
    walker = IvrWalker(lt, {"call_id": "try", "caller": caller}, when, settings.calendar)
    print(f"== {lt.name} (version {lt.version}), caller {caller or 'unknown'} ==", file=out)

    def ask(prompt: str) -> str | None:
        print(prompt, end="", file=out, flush=True)
        line = inp.readline()
        if line and not (hasattr(inp, "isatty") and inp.isatty()):
            print(line.rstrip("\r\n"), file=out)  # piped keys: show them so the transcript reads well
        if not line or line.strip().lower() in ("q", "quit", "h", "hangup"):
            return None
        return line.rstrip("\r\n")

    actions = walker.start()
    while True:
        nxt: Input | None = None
        for a in actions:
            if isinstance(a, LogEvent):
                if a.event.data.get("node_kind") in ("exhausted", "error", "lookup_error"):
                    print(f"   [{a.event.data.get('node_kind')}: {a.event.data.get('node')}]", file=out)
            elif isinstance(a, Say):
                print(f"🔊 [{a.lang}] {a.text}", file=out)
            elif isinstance(a, PlayFile):
                print(f"🔊 (sound file {a.name})", file=out)
            elif isinstance(a, Collect):
                term = f", end with {a.terminator}" if a.terminator else ""
                line = ask(f"⌨  keys (up to {a.max_digits}{term}; empty = no input): ")
                if line is None:
                    return _hang_up(walker, out)
                keys = line.strip()
                if a.terminator and a.terminator in keys:
                    keys = keys[:keys.index(a.terminator)]
                nxt = Digits(keys[:a.max_digits]) if line.strip() else Timeout()
            elif isinstance(a, Lookup):
                result = asyncio.run(provider.lookup(a.provider, a.args, when))
                print(f"   [lookup {a.provider}({', '.join(f'{k}={v}' for k, v in a.args.items())}) -> "
                      f"{'found' if result else 'not found'}]", file=out)
                nxt = LookupResult(result)
            elif isinstance(a, Record):
                print(f"   [recording {a.name}.wav, up to {a.max_s}s]", file=out)
                nxt = Recorded(f"{a.name}.wav", 5.0)
            elif isinstance(a, Queue):
                print(f"→ to the ACD: skill={a.skill} tier={a.tier} path={' > '.join(walker.path)}", file=out)
                agent = ask("   agent who answered (empty: the call ends with the agent): ")
                nxt = Queued(agent.strip() if agent else "")
            elif isinstance(a, Hangup):
                print(f"☎  hang up ({walker.outcome})", file=out)
                return 0
        if nxt is None:
            print(f"☎  call ends ({walker.outcome})", file=out)
            return 0
        actions = walker.on_input(nxt)


def _hang_up(walker: IvrWalker, out: TextIO) -> int:
    walker.on_input(HungUp())
    print(f"☎  caller hung up at {walker.node}", file=out)
    return 0


# --- ivr graph ----------------------------------------------------------------------------------------
_SHAPES = {"menu": "box", "play": "note", "collect": "parallelogram", "lookup": "cylinder", "branch": "diamond",
           "queue": "doubleoctagon", "record": "tab", "rating": "box3d", "goto": "circle", "hangup": "doublecircle"}
_COLOURS = {"queue": "#ffe0b2", "hangup": "#e0e0e0", "menu": "#e3f2fd", "lookup": "#e8f5e9", "branch": "#fff9c4"}


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _snippet(prompt: Prompt | None, limit: int = 18) -> str:
    if prompt is None:
        return ""
    text = prompt.text_for("zh") or (f"file: {prompt.file}" if prompt.file else "")
    return text if len(text) <= limit else text[:limit] + "…"


def to_dot(lt: LoadedTree) -> str:
    tree = lt.tree
    lines = [f"digraph {_q(lt.name)} {{", "  rankdir=LR;", '  node [fontname="Noto Sans CJK SC,sans-serif" '
             'fontsize=10 style=filled fillcolor=white];', '  edge [fontname="sans-serif" fontsize=9];',
             f'  label={_q(f"{lt.name} (version {lt.version})")}; labelloc=t;',
             '  "__start" [shape=point width=0.15];', f"  \"__start\" -> {_q(tree.start)};"]
    for node_id, node in tree.nodes.items():
        label = f"{node_id}\n[{node.kind}]"
        snippet = _snippet(getattr(node, "prompt", None))
        if snippet:
            label += f"\n{snippet}"
        if node.kind == "queue":
            label += f"\nskill={getattr(node, 'skill', '')}"
        lines.append(f"  {_q(node_id)} [shape={_SHAPES[node.kind]} fillcolor={_q(_COLOURS.get(node.kind, 'white'))} "
                     f"label={_q(label)}];")
    for node_id in tree.nodes:
        for target, loc in edges(lt, node_id):
            key = str(loc[-1])
            if loc[-2:-1] == ("options",):
                label = key
            elif "cases" in loc:
                label = f"case {int(loc[loc.index('cases') + 1]) + 1}"
            else:
                label = {"next": "", "default": "else"}.get(key, key)
            style = " style=dashed" if key.startswith("on_") or key == "after" else ""
            lines.append(f"  {_q(node_id)} -> {_q(target)} [label={_q(label)}{style}];")
        for target in dict.fromkeys(_implicit(lt, node_id)):
            lines.append(f"  {_q(node_id)} -> {_q(target)} [style=dotted color=gray50 arrowsize=0.6];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def ivr_graph(config_dir: str | Path, out_path: str | Path, tree: str | None = None) -> Path:
    """Draw a tree: `.dot` writes the DOT source, anything else goes through graphviz (`.svg`, `.png`)."""
    lt = _tree(Path(config_dir), tree)
    out = Path(out_path)
    dot_text = to_dot(lt)
    if out.suffix == ".dot":
        out.write_text(dot_text, encoding="utf-8")
        return out
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("graphviz is not installed (apt-get install graphviz); use -o FILE.dot for the source")
    fmt = out.suffix.lstrip(".") or "svg"
    proc = subprocess.run([dot, f"-T{fmt}", "-o", str(out)], input=dot_text.encode("utf-8"), capture_output=True,
                          timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"dot failed: {proc.stderr.decode('utf-8', 'replace').strip()}")
    return out


# --- tts build --------------------------------------------------------------------------------------
def static_prompts(lt: LoadedTree, langs: list[str]) -> Iterator[tuple[str, str]]:
    """(text, lang) of every prompt with no template fields: rendered ahead of the first call."""
    from .template import render

    for node in lt.tree.nodes.values():
        for key in ("prompt", "no_input", "no_match", "thanks"):
            prompt = getattr(node, key, None)
            if not isinstance(prompt, Prompt):
                continue
            for which, template in prompt.templates():
                if fields(template):
                    continue
                text = render(template, {})
                for lang in (langs if which == "text" else [which]):
                    yield text, lang


async def tts_build(config_dir: str | Path, project_dir: str | Path | None = None) -> tuple[int, int, list[str]]:
    """Render every static prompt of every tree; returns (rendered, already cached, errors)."""
    config_dir = Path(config_dir)
    settings = load_ivr_settings(config_dir)
    project = Path(project_dir) if project_dir else config_dir.resolve().parent
    tts = Tts.from_settings(settings.tts, project)
    langs = list(settings.tts.voices)
    try:
        prompts = [p for path in tree_files(config_dir) for p in static_prompts(load_tree(path), langs)]
        return await tts.render_all(prompts)
    finally:
        await tts.close()

