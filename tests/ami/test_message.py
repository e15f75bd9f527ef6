"""AmiMessage: case-insensitive, immutable, repeated headers kept, no silent '' for typos."""

from __future__ import annotations

import pytest

from ctiserver.ami.errors import AmiFieldMissing
from ctiserver.ami.framing import AmiFramer
from ctiserver.ami.message import AmiMessage, event_time, messages_named

MSG = AmiMessage([("Event", "Newchannel"), ("Uniqueid", "1.1"), ("ChanVariable", "A=1"),
                  ("ChanVariable", "B=x=y"), ("ChanVariable", "broken"), ("AccountCode", "")])


def test_lookup_ignores_case_and_first_value_wins() -> None:
    assert MSG.get("uniqueid") == "1.1" and MSG.get("UNIQUEID") == "1.1"
    assert MSG.get("chanvariable") == "A=1"
    assert MSG.get_all("ChanVariable") == ("A=1", "B=x=y", "broken")
    assert MSG.variables() == {"A": "1", "B": "x=y"}


def test_missing_header_is_none_or_an_error_never_empty_string() -> None:
    assert MSG.get("Uniqeid") is None
    assert MSG.get("Uniqeid", "?") == "?"
    assert MSG.get("AccountCode") == ""  # present but empty
    with pytest.raises(AmiFieldMissing) as err:
        MSG.require("Uniqeid")
    assert "Uniqeid" in str(err.value) and "Newchannel" in str(err.value)
    assert isinstance(err.value, KeyError)


def test_panoramisk_reads_a_typo_as_empty_string() -> None:
    """The defect we replace."""
    from panoramisk.message import Message

    assert Message({"Event": "Newchannel", "Uniqueid": "1.1"}).uniqeid == ""


def test_kind_properties() -> None:
    assert MSG.event == "Newchannel" and MSG.is_event and not MSG.is_response and MSG.action_id is None
    resp = AmiMessage.of(Response="Error", ActionID="cti-1-2", Message="Permission denied")
    assert resp.is_response and resp.action_id == "cti-1-2" and not resp.success
    assert AmiMessage.of(Response="Success").success and AmiMessage.of(Response="Goodbye").success
    assert messages_named([MSG, resp], "newchannel") == [MSG]
    originate = AmiMessage.of(Event="OriginateResponse", Response="Failure", ActionID="cti-1-3")
    assert originate.is_event and not originate.is_response  # an event that happens to say Response


def test_immutable_hashable_and_comparable() -> None:
    with pytest.raises(AttributeError):
        MSG.foo = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        MSG._items = ()
    with pytest.raises(AttributeError):
        MSG.body = "x"  # type: ignore[misc]
    same = AmiMessage(list(MSG))
    assert same == MSG and hash(same) == hash(MSG)
    assert "uniqueid" in MSG and "nope" not in MSG and len(MSG) == 6
    assert MSG.as_dict()["ChanVariable"] == "A=1"
    assert "Newchannel" in repr(MSG)


def test_event_time_is_asterisks_timestamp_else_the_receive_time() -> None:
    """manager.conf `timestampevents = yes`: Asterisk stamps each event; the reader stamps the read."""
    framer = AmiFramer()
    stamped, bare = framer.feed(b"Event: Hangup\r\nTimestamp: 1717171717.250001\r\nUniqueid: 1.1\r\n\r\n"
                                b"Event: Hangup\r\nUniqueid: 1.2\r\n\r\n", received=1717171720.5)
    assert stamped.timestamp == 1717171717.250001 and stamped.received == 1717171720.5
    assert stamped.when == 1717171717.250001  # read 3.25 s late: the event still happened when Asterisk said
    assert bare.timestamp is None and bare.when == 1717171720.5
    assert event_time(stamped, 99.0) == 1717171717.250001 and event_time(bare, 99.0) == 1717171720.5
    assert event_time(AmiMessage.of(Event="Hangup"), 99.0) == 99.0  # built by hand: the caller's clock
    assert event_time({"Event": "Hangup", "Timestamp": "12.5"}, 99.0) == 12.5  # any mapping-like message
    for junk in ("", "soon", "nan", "inf", "-5", "0"):
        assert AmiMessage.of(Event="Hangup", Timestamp=junk).timestamp is None, junk
        assert event_time({"Timestamp": junk}, 7.0) == 7.0
    assert stamped == AmiMessage(list(stamped))  # the receive time is not part of the frame's identity
