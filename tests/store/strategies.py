"""Hypothesis strategies for events whose text and data are as odd as real callers make them."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from ctiserver.events import Event

# Any character, surrogates included (a half-decoded emoji must not break anything).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
# Column values: anything but NUL and surrogates, which EventStore refuses on purpose (test_writer).
_column_chars = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])
column_text = st.text(_column_chars, max_size=20)

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
                      st.floats(allow_nan=False, allow_infinity=False), any_text)
json_value: st.SearchStrategy[Any] = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)),
    max_leaves=12,
)

events = st.builds(
    Event,
    kind=st.text(_column_chars, min_size=1, max_size=40),
    ts=st.floats(0, 4e9, allow_nan=False),
    call_id=st.none() | column_text,
    agent_id=st.none() | column_text,
    queue=st.none() | column_text,
    tier=st.none() | column_text,
    server=st.none() | column_text,
    data=st.dictionaries(any_text, json_value, max_size=5),
)
