"""Load YAML into pydantic models, reporting every mistake as `file:line: what is wrong`.

Ops staff edit these files by hand; a traceback helps nobody. We compose the YAML
to a node tree (which keeps line marks), validate the plain data with pydantic,
and map each error's location back to the node it came from.
"""

from __future__ import annotations

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


def _construct(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def compose(path: str | Path, text: str | None = None) -> yaml.Node | None:
    """Parse a YAML file to a node tree, turning syntax errors into ConfigError."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError.at(path, 0, "file not found") from None
        except UnicodeDecodeError as exc:
            raise ConfigError.at(path, 1, f"not UTF-8 text ({exc.reason})") from None
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or str(exc)
        if exc.context_mark is not None and "<stream end>" in what:
            mark = exc.context_mark  # an unclosed bracket/quote: point at where it opened
        last_line = max(1, len(text.splitlines()))
        line = min(mark.line + 1, last_line) if mark else 1
        if exc.context and exc.context_mark is not None and exc.context_mark.line + 1 <= last_line \
                and exc.context_mark.line + 1 != line:
            what = f"{what} ({exc.context} on line {exc.context_mark.line + 1})"
        raise ConfigError.at(path, line, f"YAML syntax error: {what}") from None
    except yaml.YAMLError as exc:
        raise ConfigError.at(path, 1, f"YAML error: {exc}") from None


def node_line(root: yaml.Node | None, loc: Sequence[int | str]) -> int:
    """The 1-based line of the deepest node along `loc` (a key's line for unknown keys)."""
    if root is None:
        return 1
    node: yaml.Node = root
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if str(key.value) == str(part):
                    line = key.start_mark.line + 1
                    node = value
                    break
            else:
                return line
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
    data = _construct(root) if root is not None else None
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
