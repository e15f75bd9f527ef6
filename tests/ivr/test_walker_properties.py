"""Property tests: whatever a caller presses and whatever the data says, the walker stays sane."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ctiserver.events import Kind
from ctiserver.ivr.tree import load_tree
from ctiserver.ivr.walker import (
    Collect,
    Digits,
    Hangup,
    HungUp,
    IvrWalker,
    LogEvent,
    Lookup,
    LookupResult,
    Queue,
    Queued,
    Record,
    Recorded,
    Timeout,
)

from .helpers import SAMPLE_CONFIG

TREE = load_tree(SAMPLE_CONFIG / "ivr" / "hotline.yaml")
keys = st.one_of(st.just(None), st.text(alphabet="0123456789*#ABCD", min_size=0, max_size=12),
                 st.text(max_size=5))
lookups = st.one_of(
    st.none(),
    st.just({"error": "db down"}),
    st.fixed_dictionaries({}, optional={
        "found": st.booleans(), "verified": st.booleans(), "active": st.booleans(),
        "tier": st.sampled_from(["vip", "priority", "normal", "blacklist", "", "gold"]),
        "area": st.sampled_from(["城东区", ""]), "account": st.text("0123456789", max_size=12),
        "arrears": st.one_of(st.floats(allow_nan=True), st.text(max_size=5), st.none()),
        "name": st.text(max_size=8)}),
)


@settings(max_examples=300, deadline=None)
@given(script=st.lists(st.tuples(keys, lookups, st.sampled_from(["", "1002"]), st.booleans()), max_size=40))
def test_any_caller_any_data_ends_cleanly(script: list[tuple[Any, Any, str, bool]]) -> None:
    w = IvrWalker(TREE, {"call_id": "p", "caller": "13800000002"}, 1_795_000_000.0)
    actions = w.start()
    produced = list(actions)
    for key, found, agent, hang in script:
        if w.state == "done":
            break
        last = actions[-1]
        # the last action always says what the walker waits for
        assert isinstance(last, (Collect, Lookup, Record, Queue, Hangup, LogEvent)), last
        if hang:
            actions = w.on_input(HungUp())
            produced += actions
            continue
        if isinstance(last, Collect):
            actions = w.on_input(Timeout() if key is None else Digits(key))
        elif isinstance(last, Lookup):
            error = found.get("error") if isinstance(found, dict) else None
            actions = w.on_input(LookupResult(None if error else found, error))
        elif isinstance(last, Record):
            actions = w.on_input(Recorded("/tmp/x.wav"))
        elif isinstance(last, Queue):
            assert last.tier and last.skill
            actions = w.on_input(Queued(agent))
        else:
            assert w.state == "done" or isinstance(last, LogEvent)
            break
        assert len(actions) < 60
        produced += actions
    ends = sum(1 for a in produced if isinstance(a, LogEvent) and a.event.kind == Kind.IVR_END)
    assert ends <= 1  # one ivr.end per call, never two
    if w.state == "done":
        assert ends == 1 and w.outcome in ("self_service", "agent", "hangup", "error")
    assert all(n in TREE.tree.nodes for n in w.path)
