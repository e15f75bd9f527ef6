"""fetch_events: filters and ordering, and arbitrary events through the database unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.calls.tracker import RecordedCall
from ctiserver.events import Event, Kind
from ctiserver.store.engine import make_engine
from ctiserver.store.query import fetch_events, recorded_calls
from ctiserver.store.schema import events
from ctiserver.store.writer import EventStore

from .strategies import events as any_event

ROWS = [
    # (ts, kind, call_id) in insertion order; two share ts=20 to pin the tie-break on id.
    (30.0, Kind.CALL_END, "A"),
    (10.0, Kind.CALL_NEW, "A"),
    (20.0, Kind.IVR_START, "A"),
    (20.0, Kind.CALL_NEW, "B"),
    (40.0, Kind.CALL_NEW, "C"),
]


@pytest.fixture
async def engine(store_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(store_url)
    async with eng.begin() as conn:
        await conn.execute(insert(events), [
            {"ts": ts, "kind": kind, "call_id": cid, "data": {"n": i}} for i, (ts, kind, cid) in enumerate(ROWS)])
    yield eng
    await eng.dispose()


def ns(evs: list[Event]) -> list[int]:
    return [e.data["n"] for e in evs]


async def test_everything_oldest_first_ties_in_insertion_order(engine: AsyncEngine) -> None:
    assert ns(await fetch_events(engine)) == [1, 2, 3, 0, 4]


async def test_filters_combine(engine: AsyncEngine) -> None:
    assert ns(await fetch_events(engine, call_id="A")) == [1, 2, 0]
    assert ns(await fetch_events(engine, kinds=[Kind.CALL_NEW])) == [1, 3, 4]
    assert ns(await fetch_events(engine, kinds=Kind.CALL_NEW)) == [1, 3, 4]  # one kind as a plain string
    assert ns(await fetch_events(engine, kinds=[Kind.CALL_NEW], call_id="A")) == [1]
    assert ns(await fetch_events(engine, since=20.0, until=40.0)) == [2, 3, 0]  # [since, until)
    assert ns(await fetch_events(engine, since=20.0, limit=2)) == [2, 3]
    assert await fetch_events(engine, kinds=[]) == []
    assert await fetch_events(engine, call_id="nobody") == []


async def test_recorded_calls_tell_a_resync_what_an_earlier_run_wrote(store_url: str) -> None:
    eng = make_engine(store_url)
    rows = [(12.0, Kind.CALL_NEW, "L1", "pbx1", {"uniqueid": "L1"}),
            (12.5, Kind.CALL_LEG, "L1", "pbx1", {"uniqueid": "L1;2"}),
            (13.0, Kind.CALL_ANSWER, "L1", "pbx1", {"uniqueid": "L1;2"}),
            (14.0, Kind.CALL_ANSWER, "L1", "pbx1", {"uniqueid": "L1"}),
            (20.0, Kind.CALL_LEG, "L2", "pbx1", {"uniqueid": "L2;2"}),  # its call.new is not there: unknown
            (30.0, Kind.CALL_NEW, "L3", "pbx2", {"uniqueid": "L3"}),  # another Asterisk's
            (40.0, Kind.IVR_START, "L4", "pbx1", {})]
    try:
        async with eng.begin() as conn:
            await conn.execute(insert(events), [{"ts": ts, "kind": kind, "call_id": cid, "server": srv, "data": data}
                                                for ts, kind, cid, srv, data in rows])
        found = await recorded_calls(eng, ["L1", "L2", "L3", "L4", "L5"], server="pbx1", chunk=2)
        assert found == {"L1": RecordedCall(12.0, frozenset({"L1", "L1;2"}), frozenset({"L1", "L1;2"}), 13.0)}
        assert set(await recorded_calls(eng, ["L3"])) == {"L3"}
        assert await recorded_calls(eng, []) == {}
    finally:
        await eng.dispose()


async def test_a_negative_limit_is_refused(engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="limit"):
        await fetch_events(engine, limit=-1)


async def test_arbitrary_events_come_back_unchanged(store_url: str, tmp_path: Path) -> None:
    sent: list[Event] = []

    @settings(max_examples=150, deadline=None, database=None)
    @given(any_event)
    def collect(e: Event) -> None:
        sent.append(e)

    collect()
    store = EventStore(store_url, journal_path=tmp_path / "j.jsonl", batch_size=64)
    await store.start()
    try:
        for e in sent:
            store.append(e)
        await store.flush(timeout=60)
        assert store.status()["rejected_total"] == 0
        got = await fetch_events(store.engine)
    finally:
        await store.close()
    key = lambda e: (e.ts, repr(e))  # noqa: E731 - equal ts keep insertion order on both sides
    assert sorted(got, key=key) == sorted(sent, key=key)
