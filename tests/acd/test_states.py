"""The two transition tables (states.py) are the whole truth: a move not in them is an error."""

from __future__ import annotations

import pytest

from ctiserver.acd.model import IllegalCallTransition, IllegalTransition
from ctiserver.acd.states import AGENT_TRANSITIONS, CALL_TRANSITIONS, AgentState, CallState
from ctiserver.events import Kind

from .helpers import engine, events


def test_every_state_is_reachable_and_every_live_state_can_be_left() -> None:
    for table, enum, start in ((AGENT_TRANSITIONS, AgentState, AgentState.LOGGED_OUT),
                               (CALL_TRANSITIONS, CallState, CallState.WAITING)):
        reached, todo = {start}, [start]
        while todo:
            s = todo.pop()
            for (frm, _), to in table.items():
                if frm == s and to not in reached:
                    reached.add(to)
                    todo.append(to)
        assert reached == set(enum), table
        leaving = {frm for (frm, _), to in table.items() if to != frm}
        assert leaving == set(enum) - {CallState.GONE}


def test_a_call_input_its_state_does_not_allow_names_the_call_the_state_and_the_input() -> None:
    eng = engine({"1001": {"billing": 5}})
    eng.set_not_ready("1001", "lunch", 0.0)
    eng.enqueue("c1", "billing", "normal", "138", 0.0)  # the only agent is at lunch: it waits
    with pytest.raises(IllegalCallTransition) as err:
        eng.ring_answered("c1", 1.0)
    assert (err.value.call_id, err.value.state, err.value.event) == ("c1", "waiting", "answer")
    assert str(err.value) == "call c1 is waiting, not offered"
    with pytest.raises(IllegalCallTransition, match="waiting, not talking"):
        eng.call_ended("c1", 1.0)
    assert eng.call_state("c1") == "waiting"  # refused, nothing changed


def test_states_read_as_plain_strings_in_events_and_queries() -> None:
    eng = engine({"1001": {"billing": 5}})
    state, _ = eng.agent_state("1001")
    assert state == "available" and isinstance(state, str) and f"{state}" == "available"
    cmds = eng.enqueue("c1", "billing", "normal", "138", 1.0)
    assert [e.data["state"] for e in events(cmds, Kind.AGENT_STATE)] == ["reserved"]
    assert eng.call_state("c1") == "offered"
    with pytest.raises(IllegalTransition):
        eng.logout("1001", 2.0)  # reserved: logging out is not in the agent table
