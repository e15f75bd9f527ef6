"""The spill journal on its own: codec, torn lines, locking, reading in batches."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings

from ctiserver.events import Event
from ctiserver.store.journal import Journal, JournalError, JournalLocked, Pending, decode, encode

from .strategies import events


@settings(max_examples=150, deadline=None)
@given(events)
def test_any_event_survives_the_journal_codec(event: Event) -> None:
    item = Pending(key="run:1", at=1.5, event=event)
    line = encode(item)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # one event, one line, whatever the text
    assert decode(line) == item


@pytest.mark.parametrize(("line", "reason"), [
    (b"\xff\xfe\n", "not JSON"),
    (b"[1, 2]\n", "not a JSON object"),
    (b'{"at": 1, "e": {}}\n', "missing event key 'k'"),
    (b'{"k": "a:1", "at": true, "e": {}}\n', "missing append time 'at'"),
    (b'{"k": "a:1", "at": 1, "e": []}\n', "missing event 'e'"),
    (b'{"k": "a:1", "at": 1, "e": {"ts": 1}}\n', "event has no kind"),
    (b'{"k": "a:1", "at": 1, "e": {"kind": "x", "ts": "soon"}}\n', "event has no valid ts"),
    (b'{"k": "a:1", "at": 1, "e": {"kind": "x", "ts": NaN}}\n', "event has no valid ts"),
    (b'{"k": "a:1", "at": 1, "e": {"kind": "x", "ts": 1, "data": [1]}}\n', "event data is not an object"),
    (b'{"k": "a:1", "at": 1, "e": {"kind": "x", "ts": 1, "queue": 5}}\n', "event queue is not a string"),
])
def test_bad_lines_say_what_is_wrong(line: bytes, reason: str) -> None:
    with pytest.raises(JournalError, match=reason):
        decode(line)


def items(n: int, start: int = 0) -> list[Pending]:
    return [Pending(key=f"r:{i}", at=float(i), event=Event(kind="k", ts=float(i), data={"i": i}))
            for i in range(start, start + n)]


def test_reads_in_batches_from_an_offset_in_order(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.jsonl")
    assert j.open() == (0, None)
    j.append(items(7))
    seen: list[Pending] = []
    offset = 0
    while True:
        got = j.read(offset, 3)
        if not got.items:
            break
        assert got.head_at == got.items[0].at
        seen += got.items
        offset = got.offset
    assert seen == items(7) and offset == j.size()
    j.truncate()
    assert j.size() == 0
    j.close()


def test_a_torn_last_line_is_ended_at_open_and_read_as_bad(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    good = items(2)
    path.write_bytes(encode(good[0]) + encode(good[1]) + b'{"k":"r:2","at":2,"e":{"kin')
    j = Journal(path)
    assert j.open() == (3, 0.0)
    j.append(items(1, start=3))  # must start on a line of its own
    got = j.read(0, 10)
    assert [p.key for p in got.items] == ["r:0", "r:1", "r:3"]
    assert len(got.bad) == 1 and got.bad[0][1].startswith("not JSON")
    j.close()


def test_one_journal_one_process(tmp_path: Path) -> None:
    first = Journal(tmp_path / "j.jsonl")
    first.open()
    second = Journal(tmp_path / "j.jsonl")
    with pytest.raises(JournalLocked, match="give each server its own journal"):
        second.open()
    first.close()
    assert second.open() == (0, None)  # free again once the holder is gone
    second.close()


def test_rejected_entries_keep_the_reason_and_the_event(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.jsonl")
    j.reject([("kind is 41 characters", {"kind": "x" * 41, "data": {"名": "赵六"}}), ("torn", "{\"k\":")])
    text = j.rejected_path.read_text()
    assert "赵六" in text and text.count("\n") == 2
