"""Whole-tree checks that pydantic cannot do field by field, each a `file:line: message` problem.

    unknown node references       a `next`/option/case/`on_*` naming no node
    unreachable nodes             nodes no caller can get to from `start`
    digit collisions              the same key twice in a menu, an option hiding the agent key
    loops with no exit            nodes from which no path ends the call or reaches an agent,
                                  and loops that go round without ever asking the caller
    unknown template fields       {account.arrearz}, {input.acount}, fields no lookup provides
    missing sound files           `file:` prompts not found in the sound folders
    identity                      account lookups without `on_unverified`

Run at load (a tree with problems never goes live) and by `ctiserver check`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..configfile import ConfigProblem
from .template import fields
from .tree import (
    BASE_FIELDS,
    LANGS,
    BranchNode,
    CollectNode,
    HangupNode,
    LoadedTree,
    LookupNode,
    MenuNode,
    Prompt,
    QueueNode,
    RatingNode,
    RecordNode,
)

SOUND_EXTS = (".wav", ".gsm", ".ulaw", ".alaw", ".sln", ".sln16", ".g722", ".g729", ".WAV")
Loc = tuple[int | str, ...]


def edges(lt: LoadedTree, node_id: str) -> Iterator[tuple[str, Loc]]:
    """Every node a node can lead to, with the location of the reference (explicit edges only)."""
    node = lt.tree.nodes[node_id]
    base: Loc = ("nodes", node_id)
    for key in ("next", "default", "on_not_found", "on_error", "on_unverified", "on_exhausted", "after"):
        target = getattr(node, key, None)
        if isinstance(target, str):
            yield target, (*base, key)
    if isinstance(node, MenuNode):
        for key, option in node.options.items():
            yield option.next, (*base, "options", key)
    if isinstance(node, BranchNode):
        for i, case in enumerate(node.cases):
            yield case.next, (*base, "cases", i, "next")


def _implicit(lt: LoadedTree, node_id: str) -> list[str]:
    """Where the walker may go without a reference in the node: exhaustion, the agent key, the end."""
    tree, node = lt.tree, lt.tree.nodes[node_id]
    out: list[str] = []
    if isinstance(node, RatingNode):  # no answer: on to `next` (an explicit edge) or the end
        if tree.agent.enabled and tree.agent.node and node.agent_key:
            out.append(tree.agent.node)
    elif isinstance(node, (MenuNode, CollectNode)):
        if node.on_exhausted is None and tree.on_exhausted:
            out.append(tree.on_exhausted)
        if tree.agent.enabled and tree.agent.node and (node.agent_key or node.on_exhausted is None):
            out.append(tree.agent.node)
    if isinstance(node, LookupNode) and node.on_error is None and tree.agent.enabled and tree.agent.node:
        out.append(tree.agent.node)
    return out


def _exits(lt: LoadedTree, node_id: str) -> bool:
    """A node that ends the walk (or hands the caller to a person) by itself."""
    tree, node = lt.tree, lt.tree.nodes[node_id]
    if isinstance(node, (HangupNode, QueueNode)):
        return True
    if isinstance(node, RatingNode) and node.next is None:
        return True
    if isinstance(node, (MenuNode, CollectNode)) and tree.agent.enabled and not tree.agent.node and (
            node.agent_key or (node.on_exhausted is None and tree.on_exhausted is None)):
        return True
    return isinstance(node, LookupNode) and node.on_error is None and tree.agent.enabled \
        and not tree.agent.node


def _successors(lt: LoadedTree, node_id: str) -> list[str]:
    nodes = lt.tree.nodes
    return [t for t, _ in edges(lt, node_id) if t in nodes] + [t for t in _implicit(lt, node_id) if t in nodes]


def _problem(lt: LoadedTree, loc: Loc, message: str) -> ConfigProblem:
    return ConfigProblem(str(lt.path), lt.line(*loc), message)


def check_refs(lt: LoadedTree) -> list[ConfigProblem]:
    tree, problems = lt.tree, []
    names = set(tree.nodes)
    for key in ("start", "on_exhausted"):
        target = getattr(tree, key)
        if target is not None and target not in names:
            problems.append(_problem(lt, (key,), f"{key}: unknown node '{target}'"))
    if tree.agent.node is not None:
        if tree.agent.node not in names:
            problems.append(_problem(lt, ("agent", "node"), f"agent.node: unknown node '{tree.agent.node}'"))
        elif not isinstance(tree.nodes[tree.agent.node], QueueNode):
            problems.append(_problem(lt, ("agent", "node"), f"agent.node '{tree.agent.node}' is not a queue node"))
    for node_id in tree.nodes:
        for target, loc in edges(lt, node_id):
            if target not in names:
                hint = _close(target, names)
                problems.append(_problem(lt, loc, f"node '{node_id}' refers to unknown node '{target}'{hint}"))
    return problems


def _close(name: str, names: Iterable[str]) -> str:
    import difflib

    match = difflib.get_close_matches(name, list(names), n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def check_reachable(lt: LoadedTree) -> list[ConfigProblem]:
    tree = lt.tree
    if tree.start not in tree.nodes:
        return []
    seen: set[str] = set()
    todo = [tree.start] + [n for n in (tree.agent.node, tree.on_exhausted) if n in tree.nodes]
    while todo:
        node_id = todo.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        todo.extend(_successors(lt, node_id))
    return [_problem(lt, ("nodes", n), f"node '{n}' cannot be reached from start '{tree.start}'")
            for n in tree.nodes if n not in seen]


def _key_lines(lt: LoadedTree, node_id: str) -> list[tuple[str, int]]:
    """Option keys as written in the file (duplicates included: YAML keeps only the last)."""
    root = lt.root
    for part in ("nodes", node_id, "options"):
        if not isinstance(root, yaml.MappingNode):
            return []
        root = next((v for k, v in root.value if str(k.value) == part), None)
    if not isinstance(root, yaml.MappingNode):
        return []
    return [(str(k.value), k.start_mark.line + 1) for k, _ in root.value]


def check_keys(lt: LoadedTree) -> list[ConfigProblem]:
    tree, problems = lt.tree, []
    agent = tree.agent
    for node_id, node in tree.nodes.items():
        if isinstance(node, MenuNode):
            seen: dict[str, int] = {}
            for key, line in _key_lines(lt, node_id):
                if key in seen:
                    problems.append(ConfigProblem(str(lt.path), line,
                                                  f"menu '{node_id}': key '{key}' is used twice "
                                                  f"(also on line {seen[key]})"))
                seen.setdefault(key, line)
            if agent.enabled and node.agent_key and agent.key in node.options:
                problems.append(_problem(lt, ("nodes", node_id, "options", agent.key),
                                         f"menu '{node_id}': option '{agent.key}' hides the agent key "
                                         "(set agent_key: false on the node, or use another key)"))
        if isinstance(node, RatingNode) and agent.enabled and node.agent_key and agent.key.isdigit() \
                and 1 <= int(agent.key) <= node.scale:
            problems.append(_problem(lt, ("nodes", node_id, "scale"),
                                     f"rating '{node_id}': the agent key '{agent.key}' is also a rating"))
        if isinstance(node, CollectNode) and node.terminator and agent.enabled and node.terminator == agent.key:
            problems.append(_problem(lt, ("nodes", node_id, "terminator"),
                                     f"collect '{node_id}': the terminator is the agent key '{agent.key}'"))
    return problems


def _sccs(graph: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative: trees can be deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on.add(v)
            recurse = False
            for j in range(i, len(graph[v])):
                w = graph[v][j]
                if w not in index:
                    work.append((v, j + 1))
                    work.append((w, 0))
                    recurse = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if recurse:
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return out


def check_loops(lt: LoadedTree) -> list[ConfigProblem]:
    tree, problems = lt.tree, []
    graph = {n: _successors(lt, n) for n in tree.nodes}
    # 1. nodes from which no path ends the call or reaches an agent
    can_exit = {n for n in tree.nodes if _exits(lt, n)}
    changed = True
    while changed:
        changed = False
        for n, succ in graph.items():
            if n not in can_exit and any(s in can_exit for s in succ):
                can_exit.add(n)
                changed = True
    trapped = [n for n in tree.nodes if n not in can_exit]
    for n in trapped:
        problems.append(_problem(lt, ("nodes", n), f"node '{n}' is in a loop with no exit: no path from it "
                                                   "hangs up or reaches an agent"))
    # 2. loops that never ask the caller anything (and have no branch that could count visits)
    quiet = {n: [s for s in succ if not isinstance(tree.nodes[s], (MenuNode, CollectNode, RatingNode,
                                                                    RecordNode, QueueNode))]
             for n, succ in graph.items()
             if not isinstance(tree.nodes[n], (MenuNode, CollectNode, RatingNode, RecordNode, QueueNode))}
    for comp in _sccs(quiet):
        if len(comp) == 1 and comp[0] not in quiet[comp[0]]:
            continue
        if any(isinstance(tree.nodes[n], BranchNode) for n in comp) or any(n in trapped for n in comp):
            continue
        first = sorted(comp, key=lambda n: lt.line("nodes", n))[0]
        problems.append(_problem(lt, ("nodes", first), "loop without caller input: "
                                 + " -> ".join(sorted(comp, key=lambda n: lt.line("nodes", n)))))
    return problems


def known_fields(lt: LoadedTree) -> dict[str, frozenset[str] | None]:
    """Top-level names a template may use, each with its known sub-fields (None: any or a scalar)."""
    tree = lt.tree
    known: dict[str, frozenset[str] | None] = dict(BASE_FIELDS)
    inputs: set[str] = set()
    recordings: set[str] = set()
    variables: set[str] = set()
    for node in tree.nodes.values():
        if isinstance(node, LookupNode):
            prior = known.get(node.store_as)
            fields_ = node.spec.fields | (prior or frozenset())
            known[node.store_as] = fields_
        elif isinstance(node, CollectNode):
            inputs.add(node.var)
        elif isinstance(node, RecordNode):
            recordings.add(node.var)
        elif isinstance(node, MenuNode):
            for option in node.options.values():
                variables.update(k for k in option.set if k != "lang")
    known["input"] = frozenset(inputs)
    known["recording"] = frozenset(recordings)
    known["vars"] = frozenset(variables)
    known["visits"] = frozenset(tree.nodes)
    return known


def _field_problem(path: str, known: dict[str, frozenset[str] | None]) -> str | None:
    head, _, rest = path.partition(".")
    if head not in known:
        return f"unknown field '{path}' ('{head}' is none of: {', '.join(sorted(known))})"
    sub = known[head]
    if not rest:
        return None
    if sub is None:
        return None if head not in ("caller", "call_id", "lang", "tree") else f"'{head}' has no fields ('{path}')"
    name = rest.split(".")[0]
    if name not in sub:
        hint = _close(name, sub)
        where = {"input": "no collect node sets it", "recording": "no record node sets it",
                 "vars": "no menu option sets it", "visits": "no such node"}.get(head, "not a field of it")
        return f"unknown field '{path}': '{name}' ({where}){hint}"
    return None


def _prompts(node: Any) -> Iterator[tuple[str, Prompt]]:
    for key in ("prompt", "no_input", "no_match", "thanks"):
        value = getattr(node, key, None)
        if isinstance(value, Prompt):
            yield key, value


def check_fields(lt: LoadedTree) -> list[ConfigProblem]:
    tree, problems = lt.tree, []
    known = known_fields(lt)
    for node_id, node in tree.nodes.items():
        base: Loc = ("nodes", node_id)
        for key, prompt in _prompts(node):
            for lang, template in prompt.templates():
                for f in fields(template):
                    msg = _field_problem(f, known)
                    if msg:
                        problems.append(_problem(lt, (*base, key, lang), f"node '{node_id}' {key}: {msg}"))
        if isinstance(node, LookupNode):
            for arg, template in node.args.items():
                for f in fields(template):
                    msg = _field_problem(f, known)
                    if msg:
                        problems.append(_problem(lt, (*base, "args", arg), f"node '{node_id}' args.{arg}: {msg}"))
            if node.spec.needs_identity and node.on_unverified is None:
                problems.append(_problem(lt, (*base, "provider"),
                                         f"node '{node_id}': provider '{node.provider}' is an account query; set "
                                         "on_unverified (where callers go before the identity check)"))
        if isinstance(node, QueueNode) and node.tier:
            for f in fields(node.tier):
                msg = _field_problem(f, known)
                if msg:
                    problems.append(_problem(lt, (*base, "tier"), f"node '{node_id}' tier: {msg}"))
        if isinstance(node, BranchNode):
            for i, case in enumerate(node.cases):
                for j, cond in enumerate(case.when):
                    loc = (*base, "cases", i, "when", j)
                    if cond.field is not None:
                        msg = _field_problem(cond.field, known)
                        if msg:
                            problems.append(_problem(lt, loc, f"node '{node_id}': {msg}"))
    return problems


def check_hours(lt: LoadedTree, hours: Iterable[str]) -> list[ConfigProblem]:
    """Every hours branch names an hours set of calendar.yaml."""
    known = sorted(hours)
    problems = []
    for node_id, node in lt.tree.nodes.items():
        if isinstance(node, BranchNode):
            for i, case in enumerate(node.cases):
                for j, cond in enumerate(case.when):
                    if cond.hours is not None and cond.hours not in known:
                        problems.append(_problem(lt, ("nodes", node_id, "cases", i, "when", j, "hours"),
                                                 f"node '{node_id}': unknown hours set '{cond.hours}' (calendar.yaml "
                                                 f"hours: {', '.join(known) or 'none'})" + _close(cond.hours, known)))
    return problems


def default_sound_dirs(config_dir: Path | None = None) -> list[Path]:
    dirs = [config_dir / "sounds"] if config_dir is not None else []
    return [*dirs, Path("/usr/share/asterisk/sounds"), Path("/var/lib/asterisk/sounds")]


def _sound_exists(name: str, dirs: Sequence[Path]) -> bool:
    for d in dirs:
        for sub in ("", *LANGS, "en"):
            base = d / sub / name if sub else d / name
            if any(base.with_name(base.name + ext).is_file() for ext in SOUND_EXTS):
                return True
    return False


def check_sounds(lt: LoadedTree, sound_dirs: Sequence[Path]) -> list[ConfigProblem]:
    problems = []
    for node_id, node in lt.tree.nodes.items():
        for key, prompt in _prompts(node):
            if not prompt.file:
                continue
            names = {prompt.file.replace("{lang}", lang) for lang in LANGS}
            for name in sorted(names):
                if not _sound_exists(name, sound_dirs):
                    problems.append(_problem(lt, ("nodes", node_id, key, "file"),
                                             f"node '{node_id}': sound file '{name}' not found in "
                                             + ", ".join(str(d) for d in sound_dirs)))
    return problems


def check_tree(lt: LoadedTree, sound_dirs: Sequence[Path] = (), skills: Iterable[str] | None = None,
               tiers: Iterable[str] | None = None, hours: Iterable[str] | None = None) -> list[ConfigProblem]:
    """All whole-tree problems of one loaded tree, in file order (skills/tiers: the ACD's, hours: the names of
    calendar.yaml's hours sets, if known)."""
    problems = check_refs(lt) + check_keys(lt) + check_fields(lt)
    if hours is not None:
        problems += check_hours(lt, hours)
    if not any("unknown node" in p.message for p in problems):
        problems += check_reachable(lt) + check_loops(lt)
    problems += check_sounds(lt, sound_dirs)
    if skills is not None:
        allowed = set(skills)
        for node_id, node in lt.tree.nodes.items():
            if isinstance(node, QueueNode) and node.skill not in allowed:
                problems.append(_problem(lt, ("nodes", node_id, "skill"),
                                         f"node '{node_id}': skill '{node.skill}' is not an ACD skill"))
        if lt.tree.agent.skill not in allowed and lt.tree.agent.node is None:
            problems.append(_problem(lt, ("agent", "skill"),
                                     f"agent.skill '{lt.tree.agent.skill}' is not an ACD skill"))
    if tiers is not None:
        known = set(tiers)
        if lt.tree.default_tier not in known:
            problems.append(_problem(lt, ("default_tier",), f"default_tier '{lt.tree.default_tier}' is not an ACD "
                                     f"tier ({', '.join(sorted(known))})"))
        for node_id, node in lt.tree.nodes.items():
            if isinstance(node, QueueNode) and node.tier and not fields(node.tier) and node.tier not in known:
                problems.append(_problem(lt, ("nodes", node_id, "tier"),
                                         f"node '{node_id}': tier '{node.tier}' is not an ACD tier "
                                         f"({', '.join(sorted(known))})"))
    return sorted(problems, key=lambda p: p.line)
