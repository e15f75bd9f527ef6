"""The IVR tree format (`config/ivr/*.yaml`): pydantic models and a loader with `file:line:` errors.

One file is one tree (one hotline entry point). A tree is a flat mapping of node
ids to nodes; nodes name their successors by id, so ops can reorder and reuse
nodes freely and `checks.py` can see the whole graph. Node kinds:

    menu     prompt + digit -> node, retries with no-input/no-match prompts
    play     say a prompt (or a sound file), then go on
    collect  read digits (min/max, terminator, pattern) into `input.<var>`
    lookup   ask a data provider (customer, account, outages, PIN), store the result
    branch   first matching case wins: customer fields, lookup results, hours sets (calendar.yaml)
    queue    hand the caller to the ACD with a skill and the caller's tier
    record   record a voice message (complaints) into `recording.<var>`
    rating   a 1..N satisfaction rating by keypad (after an agent call)
    goto     jump
    hangup   say goodbye and end the call

The agent key (`0` by default) reaches an agent from every menu/collect/rating
node unless the node sets `agent_key: false`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from ..calendar import site_key_problems, without_site_keys
from ..configfile import ConfigError, ConfigProblem, Strict, load_data, node_line, read_text
from ..names import DisplayName
from .template import TemplateError, parse

LANGS = ("zh", "en")
Lang = Literal["zh", "en"]
KEYS = "0123456789*#"
NODE_ID = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
VAR = r"^[a-z][a-z0-9_]{0,31}$"
NodeId = Annotated[str, Field(pattern=NODE_ID)]


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """What a lookup provider takes, where its result goes, and which fields it gives."""

    args: tuple[str, ...]
    store: str
    fields: frozenset[str]
    needs_identity: bool = False


CUSTOMER_FIELDS = frozenset({"found", "account", "name", "tier", "area", "category", "important", "verified",
                             "phones", "arrears", "due_date", "last_payment", "last_payment_date"})
PROVIDERS: dict[str, ProviderSpec] = {
    # customer record of the calling number; verified=true when the number is bound to the account
    "customer_by_caller": ProviderSpec(("number",), "customer", CUSTOMER_FIELDS),
    "customer_by_account": ProviderSpec(("account",), "customer", CUSTOMER_FIELDS),
    # balance/arrears: an account query, so identity must be checked first
    "account": ProviderSpec(("account",), "account", frozenset(
        {"found", "account", "name", "arrears", "due_date", "overdue", "last_payment", "last_payment_date"}),
        needs_identity=True),
    "outages": ProviderSpec(("area",), "outage", frozenset(
        {"found", "active", "outage_id", "kind", "area", "reason", "start", "expected_restore", "expected_restore_en",
         "planned",
         "planned_start", "planned_end", "planned_start_en", "planned_end_en", "planned_reason"})),
    "verify_pin": ProviderSpec(("account", "pin"), "identity", frozenset({"found", "verified", "method",
                                                                          "attempts", "locked"})),
}

# Fields every call has, before any lookup (template/branch checks know these).
BASE_FIELDS: dict[str, frozenset[str] | None] = {
    "caller": None,  # a scalar: the calling number
    "call_id": None,
    "lang": None,
    "tree": None,
    "agent": frozenset({"id"}),
    "identity": frozenset({"verified", "method", "found", "attempts"}),
}


class Prompt(Strict):
    """Text per language (`zh`, `en`), or `text` for any language, or a sound `file` (no extension)."""

    text: str | None = None
    zh: str | None = None
    en: str | None = None
    file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"text": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _some(self) -> Prompt:
        if not (self.text or self.zh or self.en or self.file):
            raise ValueError("a prompt needs text, zh, en or file")
        for name in ("text", "zh", "en"):
            value = getattr(self, name)
            if value is not None:
                try:
                    parse(value)
                except TemplateError as exc:
                    raise ValueError(f"{name}: {exc}") from None
        if self.file is not None and (not re.fullmatch(r"[A-Za-z0-9_/.{}-]+", self.file)
                                      or ".." in self.file or self.file.startswith("/")):
            raise ValueError("file must be a sound name like cti-custom/greeting (no .., no leading /)")
        return self

    def text_for(self, lang: str) -> str | None:
        """The template to speak in `lang`, falling back to `text` then any language."""
        own = getattr(self, lang, None) if lang in LANGS else None
        if own:
            return str(own)
        if self.text:
            return self.text
        for other in LANGS:
            value = getattr(self, other)
            if value:
                return str(value)
        return None

    def templates(self) -> Iterator[tuple[str, str]]:
        for name in ("text", "zh", "en"):
            value = getattr(self, name)
            if value:
                yield name, value


def _digit_keys(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): val for k, val in v.items()}
    return v


class Option(Strict):
    """A menu choice: the next node, and call variables to set (e.g. `lang: en`)."""

    next: NodeId
    set: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"next": v} if isinstance(v, str) else v

    @field_validator("set")
    @classmethod
    def _vars(cls, v: dict[str, str]) -> dict[str, str]:
        for key, value in v.items():
            if key == "lang":
                if value not in LANGS:
                    raise ValueError(f"lang must be one of {', '.join(LANGS)}, not {value!r}")
            elif not re.fullmatch(VAR, key):
                raise ValueError(f"'{key}' is not a variable name (lower case letters, digits, _)")
        return v


class _Node(Strict):
    note: str | None = None  # what the node is for (shown in the graph)
    # what agents see for this step of the caller's path on the screen-pop ({zh: 主菜单, en: Main menu});
    # a lookup or branch without one is machinery, left out of the path shown
    title: DisplayName | None = None


class _Input(_Node):
    """Nodes that read keys: retries, no-input/no-match prompts, the agent key."""

    prompt: Prompt
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 6.0
    retries: Annotated[int, Field(ge=0, le=9)] = 2  # re-prompts after the first try
    no_input: Prompt | None = None
    no_match: Prompt | None = None
    on_exhausted: NodeId | None = None  # default: the tree's on_exhausted
    agent_key: bool = True
    barge_in: bool = True


class MenuNode(_Input):
    kind: Literal["menu"]
    options: dict[str, Option]

    @field_validator("options", mode="before")
    @classmethod
    def _keys(cls, v: Any) -> Any:
        return _digit_keys(v)

    @field_validator("options")
    @classmethod
    def _options(cls, v: dict[str, Option]) -> dict[str, Option]:
        if not v:
            raise ValueError("a menu needs at least one option")
        for key in v:
            if len(key) != 1 or key not in KEYS:
                raise ValueError(f"option key {key!r} must be one keypad key (0-9, * or #)")
        return v


class PlayNode(_Node):
    kind: Literal["play"]
    prompt: Prompt
    next: NodeId
    barge_in: bool = True


class CollectNode(_Input):
    kind: Literal["collect"]
    var: Annotated[str, Field(pattern=VAR)]
    min_digits: Annotated[int, Field(ge=1, le=64)] = 1
    max_digits: Annotated[int, Field(ge=1, le=64)] = 20
    terminator: Literal["#", "*", ""] = "#"
    pattern: str | None = None
    secret: bool = False  # PINs: logged as '*' only
    next: NodeId

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"pattern is not a regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _lengths(self) -> CollectNode:
        if self.min_digits > self.max_digits:
            raise ValueError("min_digits is greater than max_digits")
        return self


class LookupNode(_Node):
    kind: Literal["lookup"]
    provider: str
    args: dict[str, str] = Field(default_factory=dict)  # templates over call data
    store: Annotated[str, Field(pattern=VAR)] | None = None  # default: the provider's
    prompt: Prompt | None = None  # e.g. "正在查询，请稍候"
    next: NodeId
    on_not_found: NodeId | None = None
    on_error: NodeId | None = None
    on_unverified: NodeId | None = None  # account queries before the identity check

    @model_validator(mode="after")
    def _provider(self) -> LookupNode:
        spec = PROVIDERS.get(self.provider)
        if spec is None:
            raise ValueError(f"unknown provider {self.provider!r} (one of {', '.join(sorted(PROVIDERS))})")
        missing = [a for a in spec.args if a not in self.args]
        extra = [a for a in self.args if a not in spec.args]
        if missing:
            raise ValueError(f"provider {self.provider} needs args: {', '.join(missing)}")
        if extra:
            raise ValueError(f"provider {self.provider} takes no args {', '.join(extra)}")
        for name, value in self.args.items():
            try:
                parse(value)
            except TemplateError as exc:
                raise ValueError(f"args.{name}: {exc}") from None
        return self

    @property
    def spec(self) -> ProviderSpec:
        return PROVIDERS[self.provider]

    @property
    def store_as(self) -> str:
        return self.store or self.spec.store


Op = Literal["eq", "ne", "in", "not_in", "gt", "ge", "lt", "le", "true", "false", "exists", "missing",
             "matches"]


class Condition(Strict):
    """`{field: customer.tier, op: eq, value: vip}` or `{hours: business_hours, state: open}` (calendar.yaml)."""

    field: str | None = None
    op: Op = "eq"
    value: Any = None
    hours: str | None = None  # an hours set of calendar.yaml
    state: Literal["open", "closed", "holiday"] = "open"

    @field_validator("op", mode="before")
    @classmethod
    def _yaml_bool(cls, v: Any) -> Any:
        return ("true" if v else "false") if isinstance(v, bool) else v  # YAML reads `op: true` as a bool

    @model_validator(mode="after")
    def _one(self) -> Condition:
        if (self.field is None) == (self.hours is None):
            raise ValueError("a condition names either a field or an hours set (hours:)")
        if self.field is not None and not re.fullmatch(r"[a-z_][a-z0-9_]*(\.[a-z0-9_]+)*", self.field):
            raise ValueError(f"'{self.field}' is not a dotted field like customer.tier")
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op {self.op} needs a list value")
        if self.op == "matches":
            try:
                re.compile(str(self.value))
            except re.error as exc:
                raise ValueError(f"value is not a regular expression: {exc}") from None
        return self


class Case(Strict):
    when: list[Condition]  # all must hold
    next: NodeId

    @field_validator("when", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v


class BranchNode(_Node):
    kind: Literal["branch"]
    cases: list[Case]
    default: NodeId


class QueueNode(_Node):
    kind: Literal["queue"]
    skill: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    tier: str | None = None  # a template; default: the customer's tier, else the tree's default tier
    prompt: Prompt | None = None  # e.g. "正在为您转接人工服务"
    after: NodeId | None = None  # where the caller goes when the agent hangs up first (e.g. rating)


class RecordNode(_Node):
    kind: Literal["record"]
    prompt: Prompt
    var: Annotated[str, Field(pattern=VAR)]
    max_s: Annotated[int, Field(ge=1, le=600)] = 60
    silence_s: Annotated[int, Field(ge=0, le=60)] = 5
    beep: bool = True
    # File names are <prefix>-<call id>-<node>: flat, because AGI RECORD FILE does not create folders.
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")] = "cti-message"
    next: NodeId


class RatingNode(_Input):
    kind: Literal["rating"]
    scale: Annotated[int, Field(ge=2, le=9)] = 5
    thanks: Prompt | None = None
    next: NodeId | None = None  # default: end the call


class GotoNode(_Node):
    kind: Literal["goto"]
    next: NodeId


class HangupNode(_Node):
    kind: Literal["hangup"]
    prompt: Prompt | None = None
    outcome: Literal["self_service", "hangup"] = "self_service"


Node = Annotated[MenuNode | PlayNode | CollectNode | LookupNode | BranchNode | QueueNode | RecordNode
                 | RatingNode | GotoNode | HangupNode, Field(discriminator="kind")]
KINDS = ("menu", "play", "collect", "lookup", "branch", "queue", "record", "rating", "goto", "hangup")


class AgentKey(Strict):
    key: Literal["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#"] = "0"
    enabled: bool = True
    skill: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")] = "billing"
    node: NodeId | None = None  # a queue node to use instead (its prompt, skill and after)

    @field_validator("key", mode="before")
    @classmethod
    def _str(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v


class IvrTree(Strict):
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
    start: NodeId
    default_lang: Lang = "zh"
    default_tier: str = "normal"
    agent: AgentKey = Field(default_factory=AgentKey)
    on_exhausted: NodeId | None = None  # where callers go when a node's retries run out
    max_steps: Annotated[int, Field(ge=10, le=100000)] = 500  # nodes per call before we give up
    nodes: dict[NodeId, Node]

    @field_validator("nodes", mode="before")
    @classmethod
    def _keys(cls, v: Any) -> Any:
        return _digit_keys(v)


@dataclass(frozen=True)
class LoadedTree:
    """A validated tree plus where it came from (for line numbers and hot-reload versions)."""

    tree: IvrTree
    path: Path
    version: str  # first 12 hex digits of the file's sha256
    root: yaml.Node | None = field(repr=False, default=None)

    def line(self, *loc: int | str) -> int:
        return node_line(self.root, loc)

    @property
    def name(self) -> str:
        return self.tree.name


def _problem(path: Path, root: yaml.Node | None, err: Any) -> ConfigProblem:
    loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    # drop the union tag pydantic inserts after a node id: nodes.<id>.<kind>.<field>
    if len(loc) >= 3 and loc[0] == "nodes" and loc[2] in KINDS:
        del loc[2]
    where = ".".join(str(p) for p in loc) or "(top level)"
    line = node_line(root, [*loc, "kind"] if err["type"] == "union_tag_invalid" else loc)
    if err["type"] == "extra_forbidden":
        msg = f"unknown key '{loc[-1]}'" + (f" in {'.'.join(map(str, loc[:-1]))}" if len(loc) > 1 else "")
    elif err["type"] == "missing":
        msg = f"missing required key '{where}'"
    elif err["type"] == "union_tag_invalid":
        msg = f"{where}: unknown node kind (one of {', '.join(KINDS)})"
    elif err["type"] == "union_tag_not_found":
        msg = f"{where}: a node needs 'kind' (one of {', '.join(KINDS)})"
    else:
        text = str(err["msg"]).removeprefix("Value error, ")
        msg = f"{where}: {text}"
    return ConfigProblem(str(path), line, msg)


def load_tree(path: str | Path, text: str | None = None) -> LoadedTree:
    """Read and validate one tree file; raise ConfigError with every `file:line:` problem."""
    path = Path(path)
    if text is None:
        text = read_text(path)
    data, root = load_data(path, text)
    if data is None:
        raise ConfigError.at(path, 1, "file is empty")
    if not isinstance(data, dict):
        raise ConfigError.at(path, node_line(root, ()), "expected a mapping of keys at the top level")
    site = site_key_problems(path, data, root)
    data = without_site_keys(data)
    data.setdefault("name", path.stem)
    try:
        tree = IvrTree.model_validate(data)
    except ValidationError as exc:
        problems = site + [_problem(path, root, e) for e in exc.errors()]
        raise ConfigError(sorted(problems, key=lambda p: p.line)) from None
    if site:
        raise ConfigError(site)
    version = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return LoadedTree(tree, path, version, root)


def tree_files(config_dir: str | Path) -> list[Path]:
    """The tree files of a config folder: `<config_dir>/ivr/*.yaml` (and .yml) but settings.yaml, sorted."""
    folder = Path(config_dir) / "ivr"
    if not folder.is_dir():
        return []
    # A folder named like a tree file is listed too: loading it says "is a folder, not a file".
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml")
                  and p.stem != "settings" and not p.name.startswith("."))
