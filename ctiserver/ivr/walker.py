"""The IVR walker: a pure engine. A tree and inputs in, actions out.

No sockets, files, clocks or event loop here: the FastAGI runtime (runtime.py), the
terminal walker (`ctiserver ivr try`) and the tests all drive the same engine.
Each call to `start()` / `on_input()` returns the actions to carry out in order;
the last one says what the walker waits for:

    Collect  -> Digits(...) or Timeout()     Lookup -> LookupResult(...)
    Record   -> Recorded(path)               Queue  -> Queued(agent_id) (handoff done)
    Hangup   -> nothing more                 HungUp() is accepted at any time

Prompts before a Collect may be cut short by a key press (barge-in): the runtime
stops speaking and hands the key to the Collect. Every node entered and every key
pressed comes out as a `LogEvent` (ivr.start / ivr.node / ivr.dtmf / ivr.end).
An input the walker is not waiting for raises `IllegalInput` naming both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..calendar import Calendar
from ..events import Event, Kind
from .steps import (
    Action,
    Collect,
    Digits,
    Hangup,
    HungUp,
    IllegalInput,
    Input,
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
from .template import lookup, render
from .tree import (
    KEYS,
    BranchNode,
    CollectNode,
    Condition,
    GotoNode,
    HangupNode,
    IvrTree,
    LoadedTree,
    LookupNode,
    MenuNode,
    PlayNode,
    Prompt,
    QueueNode,
    RatingNode,
    RecordNode,
)

__all__ = ["MAX_KEYS", "MAX_STEPS_WITHOUT_INPUT", "Action", "Collect", "Digits", "Hangup", "HungUp", "IllegalInput",
           "Input", "IvrWalker", "LogEvent", "Lookup", "LookupResult", "PlayFile", "Queue", "Queued",
           "Record", "Recorded", "Say", "Timeout"]  # the vocabulary (steps.py) stays importable from here

MAX_KEYS = 64  # longer key strings are refused (and logged cut to this length)
MAX_STEPS_WITHOUT_INPUT = 100


_WAIT_KEYS = "keys"
_WAIT_LOOKUP = "lookup"
_WAIT_RECORD = "record"
_WAIT_QUEUE = "queue"
_DONE = "done"


@dataclass
class _Visit:
    node: str
    tries: int = 0


@dataclass
class IvrWalker:
    """One call's walk through one version of a tree. `call_data` holds at least `caller`, `call_id`."""

    tree_source: LoadedTree | IvrTree
    call_data: Mapping[str, Any]
    now: float
    calendar: Calendar = field(default_factory=Calendar)  # the site calendar: hours branches
    data: dict[str, Any] = field(init=False)
    path: list[str] = field(init=False, default_factory=list)
    state: str = field(init=False, default="new")
    outcome: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if isinstance(self.tree_source, LoadedTree):
            self.tree, self.version = self.tree_source.tree, self.tree_source.version
        else:
            self.tree, self.version = self.tree_source, ""
        self.data = {"lang": self.tree.default_lang, "tree": self.tree.name, "input": {}, "recording": {},
                     "vars": {}, "visits": {}, "identity": {"verified": False, "method": ""},
                     **dict(self.call_data)}
        self.data.setdefault("caller", "")
        self.data.setdefault("call_id", "")
        self._visit: _Visit | None = None
        self._steps = 0
        self._post_call = False  # after an agent call: ivr.end was already logged
        self._after_queue: str | None = None
        self._queued_skill: str | None = None  # the queue the caller was last put in (a rating names it)

    # --- public ----------------------------------------------------------------------
    @property
    def node(self) -> str | None:
        return self._visit.node if self._visit else None

    @property
    def tier(self) -> str:
        tier = lookup(self.data, "customer.tier")
        return str(tier) if tier else self.tree.default_tier

    @property
    def customer(self) -> dict[str, Any] | None:
        c = self.data.get("customer")
        return dict(c) if isinstance(c, Mapping) and c.get("found", True) else None

    def start(self) -> list[Action]:
        if self.state != "new":
            raise IllegalInput(self.state, HungUp())
        out: list[Action] = [self._log(Kind.IVR_START, tree=self.tree.name, version=self.version,
                                       caller=self.data["caller"])]
        self._go(self.tree.start, out)
        return out

    def on_input(self, inp: Input, now: float | None = None) -> list[Action]:
        if now is not None:
            self.now = max(self.now, now)
        out: list[Action] = []
        if isinstance(inp, HungUp):
            if self.state != _DONE:
                self._end("hangup", out, hang_up=False)
            return out
        self._steps = 0
        if self.state == _WAIT_KEYS and isinstance(inp, (Digits, Timeout)):
            self._on_keys(inp, out)
        elif self.state == _WAIT_LOOKUP and isinstance(inp, LookupResult):
            self._on_lookup(inp, out)
        elif self.state == _WAIT_RECORD and isinstance(inp, Recorded):
            node = self._current(RecordNode)
            self.data["recording"][node.var] = inp.path
            self._go(node.next, out)
        elif self.state == _WAIT_QUEUE and isinstance(inp, Queued):
            if inp.agent_id and self._after_queue:
                self.data["agent"] = {"id": inp.agent_id}
                self._post_call = True
                self._go(self._after_queue, out)
            else:
                self.state = _DONE
        else:
            raise IllegalInput(self.state, inp)
        return out

    # --- helpers ---------------------------------------------------------------------
    def _current(self, cls: type[Any] | tuple[type[Any], ...]) -> Any:
        assert self._visit is not None
        node = self.tree.nodes[self._visit.node]
        assert isinstance(node, cls)
        return node

    def _log(self, kind: str, **data: Any) -> LogEvent:
        customer = self.data.get("customer")
        tier = customer.get("tier") if isinstance(customer, Mapping) else None
        return LogEvent(Event(kind=kind, ts=self.now, call_id=self.data["call_id"] or None,
                              tier=str(tier) if tier else None, data=data))

    def _say(self, prompt: Prompt | None, out: list[Action], barge_in: bool = True) -> None:
        if prompt is None:
            return
        if prompt.file:
            out.append(PlayFile(render(prompt.file, self.data), barge_in))
            return
        lang = str(self.data.get("lang") or self.tree.default_lang)
        template = prompt.text_for(lang)
        if template:
            text = render(template, self.data).strip()
            if text:
                out.append(Say(text, lang, barge_in))

    def _end(self, outcome: str, out: list[Action], hang_up: bool = True) -> None:
        if not self._post_call and self.outcome is None:
            extra: dict[str, Any] = {}
            if self.data["recording"]:
                extra["recordings"] = dict(self.data["recording"])
            out.append(self._log(Kind.IVR_END, outcome=outcome, node=self.node, **extra))
            self.outcome = outcome
        if hang_up:
            out.append(Hangup())
        self.state = _DONE

    def _agent(self, out: list[Action]) -> None:
        """The agent key, or a fallback: the configured agent node or a plain queue to the agent skill."""
        agent = self.tree.agent
        if agent.node:
            self._go(agent.node, out)
            return
        self._queue(agent.skill, self.tier, out)

    def _queue(self, skill: str, tier: str, out: list[Action], after: str | None = None,
               explicit: bool = False) -> None:
        if not self._post_call:
            event = self._log(Kind.IVR_END, outcome="agent", node=self.node)
            event.event.queue = skill
            event.event.tier = tier
            out.append(event)
            self.outcome = "agent"
        out.append(Queue(skill, tier, explicit))
        self._after_queue = after
        self._queued_skill = skill
        self.state = _WAIT_QUEUE

    # --- entering nodes ----------------------------------------------------------------
    def _go(self, node_id: str | None, out: list[Action]) -> None:
        """Enter nodes until one waits for input or the call ends."""
        while node_id is not None:
            self._steps += 1
            if self._steps > MAX_STEPS_WITHOUT_INPUT or len(self.path) >= self.tree.max_steps:
                self._end("error", out)
                out.insert(-1, self._log(Kind.IVR_NODE, node=node_id, node_kind="error",
                                         error="too many steps without caller input (a loop in the tree?)"))
                return
            node = self.tree.nodes.get(node_id)
            if node is None:
                out.append(self._log(Kind.IVR_NODE, node=node_id, node_kind="error", error="unknown node"))
                self._end("error", out)
                return
            self._visit = _Visit(node_id)
            self.path.append(node_id)
            visits = self.data["visits"]
            visits[node_id] = visits.get(node_id, 0) + 1
            titled = {"title": node.title.model_dump()} if node.title is not None else {}
            out.append(self._log(Kind.IVR_NODE, node=node_id, node_kind=node.kind, **titled))
            node_id = self._enter(node, out)

    def _enter(self, node: Any, out: list[Action]) -> str | None:
        if isinstance(node, (MenuNode, CollectNode, RatingNode)):
            self._ask(node, out)
            return None
        if isinstance(node, PlayNode):
            self._say(node.prompt, out, node.barge_in)
            return node.next
        if isinstance(node, GotoNode):
            return node.next
        if isinstance(node, BranchNode):
            for case in node.cases:
                if all(self._holds(c) for c in case.when):
                    return case.next
            return node.default
        if isinstance(node, LookupNode):
            return self._lookup(node, out)
        if isinstance(node, QueueNode):
            self._say(node.prompt, out, barge_in=False)
            tier = render(node.tier, self.data).strip() if node.tier else ""
            self._queue(node.skill, tier or self.tier, out, node.after, explicit=bool(tier))
            return None
        if isinstance(node, RecordNode):
            self._say(node.prompt, out, barge_in=False)
            call = re.sub(r"[^A-Za-z0-9_.-]", "_", str(self.data["call_id"]) or "call")
            out.append(Record(f"{node.prefix}-{call}-{self._visit.node if self._visit else ''}", node.max_s,
                              node.silence_s, node.beep))
            self.state = _WAIT_RECORD
            return None
        if isinstance(node, HangupNode):
            self._say(node.prompt, out, barge_in=False)
            self._end(node.outcome, out)
            return None
        raise TypeError(f"unknown node type {type(node).__name__}")  # pragma: no cover - union is closed

    def _ask(self, node: MenuNode | CollectNode | RatingNode, out: list[Action], lead: Prompt | None = None
             ) -> None:
        self._say(lead, out, node.barge_in)
        self._say(node.prompt, out, node.barge_in)
        if isinstance(node, CollectNode):
            out.append(Collect(node.max_digits, node.timeout_s, node.terminator))
        else:
            out.append(Collect(1, node.timeout_s))
        self.state = _WAIT_KEYS

    def _lookup(self, node: LookupNode, out: list[Action]) -> str | None:
        if node.spec.needs_identity and not lookup(self.data, "identity.verified"):
            if node.on_unverified:
                return node.on_unverified
            why = f"{node.provider} needs a verified caller and on_unverified is not set"
            out.append(self._log(Kind.IVR_NODE, node=self.node, node_kind="error", error=why))
            self._end("error", out)
            return None
        args = {k: render(v, self.data).strip() for k, v in node.args.items()}
        if not all(args.values()):  # e.g. an unknown caller has no area: nothing to look up
            self.data[node.store_as] = {"found": False}
            return node.on_not_found or node.next
        self._say(node.prompt, out, barge_in=False)
        out.append(Lookup(node.provider, args))
        self.state = _WAIT_LOOKUP
        return None

    def _on_lookup(self, inp: LookupResult, out: list[Action]) -> None:
        node = self._current(LookupNode)
        if inp.error is not None:
            out.append(self._log(Kind.IVR_NODE, node=self.node, node_kind="lookup_error",
                                 error=inp.error[:200]))
            self.data[node.store_as] = {"found": False, "error": True}
            if node.on_error:
                self._go(node.on_error, out)
            elif self.tree.agent.enabled:
                self._agent(out)
            else:
                self._end("error", out)
            return
        result = dict(inp.data or {})
        found = bool(result) and result.get("found", True) is not False
        result["found"] = found
        self.data[node.store_as] = result
        if found and result.get("verified") is True and node.store_as in ("customer", "identity"):
            method = "caller" if node.store_as == "customer" else "pin"
            self.data["identity"] = {**self.data["identity"], "verified": True, "method": method}
        self._go(node.next if found or not node.on_not_found else node.on_not_found, out)

    # --- keys --------------------------------------------------------------------------
    def _on_keys(self, inp: Digits | Timeout, out: list[Action]) -> None:
        node = self._current((MenuNode, CollectNode, RatingNode))
        keys = None if isinstance(inp, Timeout) else (inp.digits.strip().upper() or None)
        if keys is not None:
            logged = keys[:MAX_KEYS]
            if isinstance(node, CollectNode) and node.secret:
                logged = "*" * len(logged)
            out.append(self._log(Kind.IVR_DTMF, node=self.node, digits=logged))
        agent = self.tree.agent
        if keys is None:
            self._retry(node, node.no_input, out)
            return
        agent_ok = agent.enabled and node.agent_key
        if isinstance(node, MenuNode):
            key = keys[0]
            if key in node.options and len(keys) <= MAX_KEYS:
                option = node.options[key]
                for var, value in option.set.items():
                    if var == "lang":
                        self.data["lang"] = value
                    else:
                        self.data["vars"][var] = value
                self._go(option.next, out)
            elif key == agent.key and agent_ok and len(keys) <= MAX_KEYS:
                self._agent(out)
            else:
                self._retry(node, node.no_match, out)
        elif isinstance(node, RatingNode):
            if len(keys) == 1 and keys.isdigit() and 1 <= int(keys) <= node.scale:
                agent_id = lookup(self.data, "agent.id")
                event = self._log(Kind.SURVEY_RATING, rating=int(keys), campaign=None, source="ivr",
                                  scale=node.scale, node=self.node)
                event.event.agent_id = str(agent_id) if agent_id else None
                event.event.queue = self._queued_skill  # the rating is of this call, agent and queue
                out.append(event)
                self._say(node.thanks, out, barge_in=False)
                self._leave(node.next, out)
            elif keys == agent.key and agent_ok:
                self._agent(out)
            else:
                self._retry(node, node.no_match, out)
        else:
            if keys == agent.key and agent_ok and self._valid(node, keys) is False:
                self._agent(out)
            elif self._valid(node, keys):
                self.data["input"][node.var] = keys
                self._go(node.next, out)
            else:
                self._retry(node, node.no_match, out)

    @staticmethod
    def _valid(node: CollectNode, keys: str) -> bool:
        if not (node.min_digits <= len(keys) <= node.max_digits):
            return False
        allowed = set(KEYS) - {node.terminator} if node.pattern else set("0123456789")
        if any(ch not in allowed for ch in keys):
            return False
        return node.pattern is None or re.fullmatch(node.pattern, keys) is not None

    def _retry(self, node: MenuNode | CollectNode | RatingNode, why: Prompt | None,
               out: list[Action]) -> None:
        assert self._visit is not None
        self._visit.tries += 1
        if self._visit.tries <= node.retries:
            self._ask(node, out, lead=why)
            return
        if isinstance(node, RatingNode):  # no rating given: just finish, never back to a queue
            target = node.on_exhausted or node.next
        else:
            target = node.on_exhausted or self.tree.on_exhausted
        out.append(self._log(Kind.IVR_NODE, node=self.node, node_kind="exhausted", tries=self._visit.tries))
        if target:
            self._go(target, out)
        elif isinstance(node, RatingNode):
            self._end("self_service", out)
        elif self.tree.agent.enabled and not self._post_call:
            self._agent(out)
        else:
            self._end("hangup", out)

    def _leave(self, next_id: str | None, out: list[Action]) -> None:
        if next_id:
            self._go(next_id, out)
        else:
            self._end("self_service", out)

    # --- branches ----------------------------------------------------------------------
    def _holds(self, cond: Condition) -> bool:
        if cond.hours is not None:
            return cond.hours in self.calendar.hours and self.calendar.state(cond.hours, self.now) == cond.state
        assert cond.field is not None
        value = lookup(self.data, cond.field)
        want = cond.value
        op = cond.op
        if op == "exists":
            return value is not None and value != ""
        if op == "missing":
            return value is None or value == ""
        if op == "true":
            return _truthy(value)
        if op == "false":
            return not _truthy(value)
        if op == "eq":
            return _same(value, want)
        if op == "ne":
            return not _same(value, want)
        if op == "in":
            return any(_same(value, w) for w in want)
        if op == "not_in":
            return not any(_same(value, w) for w in want)
        if op == "matches":
            return value is not None and re.search(str(want), str(value)) is not None
        a, b = _number(value), _number(want)
        if a is None or b is None:
            return False
        return {"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[op]


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _same(a: Any, b: Any) -> bool:
    if a == b:
        return True
    if a is None or b is None:
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return _truthy(a) == _truthy(b)
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return na == nb
    return str(a) == str(b)
