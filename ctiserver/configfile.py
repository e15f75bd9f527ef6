"""Load YAML into pydantic models, reporting every mistake as `file:line: what is wrong`.

Ops staff edit these files by hand; a traceback helps nobody. We compose the YAML
to a node tree (which keeps line marks), validate the plain data with pydantic,
and map each error's location back to the node it came from.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)


class Strict(BaseModel):
    """Base for config models: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ConfigProblem:
    __slots__ = ("file", "line", "message")

    def __init__(self, file: str, line: int, message: str) -> None:
        self.file, self.line, self.message = file, line, message

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"

    def __repr__(self) -> str:
        return f"ConfigProblem({self})"


class ConfigError(Exception):
    """One or more problems in config files; str() is one `file:line: message` per line."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def at(cls, file: str | Path, line: int, message: str) -> ConfigError:
        return cls([ConfigProblem(str(file), line, message)])


# Config files are small and flat; anything deeper or larger is a mistake (or an attack on `check`).
MAX_DEPTH = 64
MAX_ALIAS_EXPANSION = 10  # values reached through aliases, per node written
_SAFE_TAGS = frozenset(t for t in yaml.SafeLoader.yaml_constructors if t) | {"tag:yaml.org,2002:merge"}
_FAST_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10x faster, nesting bounded


def _construct(path: Path, node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError.at(path, mark.line + 1 if mark else 1, f"YAML error: {exc.problem or exc}") from None
    finally:
        loader.dispose()


def read_text(path: str | Path, encoding: str = "utf-8") -> str:
    """A config file's text, or ConfigError saying in one line why it cannot be read."""
    path = Path(path)
    try:
        return path.read_text(encoding=encoding)
    except FileNotFoundError:
        raise ConfigError.at(path, 0, "file not found") from None
    except IsADirectoryError:
        raise ConfigError.at(path, 0, "is a folder, not a file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError.at(path, 1, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ConfigError.at(path, 0, f"cannot be read ({exc.strerror or exc})") from None


def _syntax_error(path: Path, text: str, exc: yaml.MarkedYAMLError) -> ConfigError:
    mark = exc.problem_mark or exc.context_mark
    what = exc.problem or str(exc)
    if exc.context_mark is not None and "<stream end>" in what:
        mark = exc.context_mark  # an unclosed bracket/quote: point at where it opened
    last_line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    line = min(mark.line + 1, last_line) if mark else 1
    if exc.context and exc.context_mark is not None and exc.context_mark.line + 1 <= last_line \
            and exc.context_mark.line + 1 != line:
        what = f"{what} ({exc.context} on line {exc.context_mark.line + 1})"
    return ConfigError.at(path, line, f"YAML syntax error: {what}")


def compose(path: str | Path, text: str | None = None) -> yaml.Node | None:
    """Parse a YAML file to a node tree, turning every problem into ConfigError (`file:line: message`).

    Besides syntax: duplicate keys, tags other than YAML's plain types (`!!python/...`), nesting
    deeper than MAX_DEPTH and aliases that multiply the data are errors. Time is linear in the
    file's size (libyaml when present; one pass over the nodes).
    """
    path = Path(path)
    if text is None:
        text = read_text(path)
    try:
        root = yaml.compose(text, Loader=_FAST_LOADER)
    except yaml.MarkedYAMLError as fast_error:
        raise _syntax_error(path, text, _worded(text, fast_error)) from None
    except RecursionError:
        raise ConfigError.at(path, _deep_line(text), f"nested deeper than {MAX_DEPTH} levels") from None
    except yaml.YAMLError as exc:
        raise ConfigError.at(path, 1, f"YAML error: {exc}") from None
    if root is not None:
        problems = _structure_problems(path, root, aliases="&" in text)
        if problems:
            raise ConfigError(problems)
    return root


def _worded(text: str, exc: yaml.MarkedYAMLError) -> yaml.MarkedYAMLError:
    """The same error from the pure-Python parser, which words it better (libyaml found it fast)."""
    if _FAST_LOADER is yaml.SafeLoader:
        return exc
    try:
        yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as slow:
        return slow
    except (yaml.YAMLError, RecursionError):
        pass
    return exc


def _deep_line(text: str) -> int:
    """The line where nesting first passes MAX_DEPTH (the event parser does not recurse)."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return event.start_mark.line + 1 if event.start_mark is not None else 1
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        pass
    return 1


def _structure_problems(path: Path, root: yaml.Node, aliases: bool = True) -> list[ConfigProblem]:
    """One iterative pass: duplicate keys, unsafe tags, depth, alias blow-up. Each node is visited once."""
    problems: list[ConfigProblem] = []
    seen: set[int] = set()
    order: list[yaml.Node] = []
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            continue  # an alias of a node already checked
        seen.add(id(node))
        order.append(node)
        line = node.start_mark.line + 1
        if node.tag not in _SAFE_TAGS:
            problems.append(ConfigProblem(str(path), line, f"tag {node.tag.replace('tag:yaml.org,2002:', '!!')} "
                                                           f"is not allowed (plain YAML values only)"))
            continue
        if depth > MAX_DEPTH:
            problems.append(ConfigProblem(str(path), line, f"nested deeper than {MAX_DEPTH} levels"))
            return problems
        if isinstance(node, yaml.MappingNode):
            first: dict[object, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    k = (key.tag, key.value)
                    if k in first:
                        problems.append(ConfigProblem(str(path), key.start_mark.line + 1,
                                                      f"duplicate key '{key.value}' (first on line {first[k]})"))
                    else:
                        first[k] = key.start_mark.line + 1
                stack.append((value, depth + 1))
                stack.append((key, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in reversed(node.value))
    if aliases and not problems and len(order) > 1000 and _expanded_size(root, MAX_ALIAS_EXPANSION * len(order)) \
            > MAX_ALIAS_EXPANSION * len(order):
        problems.append(ConfigProblem(str(path), 1, "aliases expand to too many values "
                                                    f"(more than {MAX_ALIAS_EXPANSION}x what is written)"))
    return problems


def _expanded_size(root: yaml.Node, cap: int) -> int:
    """How many values the data holds once aliases are expanded (capped), each node counted once: linear."""
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in size:
            continue
        children = [c for kv in node.value for c in kv] if isinstance(node, yaml.MappingNode) \
            else list(node.value) if isinstance(node, yaml.SequenceNode) else []
        if done:
            size[id(node)] = min(cap + 1, 1 + sum(size[id(c)] for c in children))
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in size)
    return size[id(root)]


# Per tree, each mapping's keys (built on first use), so looking up many locations in one tree
# costs one pass over it, not one per location. Keyed weakly: a tree's index goes with the tree.
_KEY_INDEX: weakref.WeakKeyDictionary[yaml.Node, dict[int, dict[str, tuple[yaml.Node, yaml.Node]]]] = \
    weakref.WeakKeyDictionary()


def node_line(root: yaml.Node | None, loc: Sequence[int | str]) -> int:
    """The 1-based line of the deepest node along `loc` (a key's line for unknown keys)."""
    if root is None:
        return 1
    index = _KEY_INDEX.setdefault(root, {})
    node: yaml.Node = root
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            keys = index.get(id(node))
            if keys is None:
                keys = index[id(node)] = {}
                for key, value in node.value:
                    keys.setdefault(str(key.value), (key, value))
            found = keys.get(str(part))
            if found is None:
                return line
            line = found[0].start_mark.line + 1
            node = found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        else:
            return line
    if isinstance(node, yaml.ScalarNode):
        line = node.start_mark.line + 1
    return line


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        parent = ".".join(map(str, err["loc"][:-1]))
        return f"unknown key '{err['loc'][-1]}'" + (f" in {parent}" if parent else "")
    if err["type"] == "missing":
        return f"missing required key '{loc}'"
    return f"{loc}: {err['msg']}"


def validation_problems(path: str | Path, root: yaml.Node | None, exc: ValidationError,
                        prefix: Sequence[int | str] = ()) -> list[ConfigProblem]:
    problems = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        # pydantic inserts union/tag names in loc; keep only the parts that exist in the data
        line = node_line(root, [*prefix, *loc])
        problems.append(ConfigProblem(str(path), line, _describe({**err, "loc": tuple(loc)})))
    return problems


def load_data(path: str | Path, text: str | None = None) -> tuple[Any, yaml.Node | None]:
    """Plain data plus its node tree (for line lookups by callers doing their own checks)."""
    root = compose(path, text)
    data = _construct(Path(path), root) if root is not None else None
    return data, root


def load_model(path: str | Path, model: type[M], text: str | None = None, *,
               default_empty: bool = False) -> M:
    """Read `path` and validate it as `model`, or raise ConfigError with file:line problems."""
    data, root = load_data(path, text)
    if data is None:
        if default_empty:
            data = {}
        else:
            raise ConfigError.at(path, 1, "file is empty")
    if not isinstance(data, dict):
        raise ConfigError.at(path, node_line(root, ()), "expected a mapping of keys at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(path, root, exc)) from None
