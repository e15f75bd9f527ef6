"""AmiFramer: byte framing, whole-frame UTF-8, banner, bad lines, oversize frames."""

from __future__ import annotations

import logging
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ctiserver.ami.framing import AmiFramer, parse_frame
from ctiserver.ami.message import AmiMessage

DATA = Path(__file__).parent / "data"
CALL_FLOW = (DATA / "call_flow.ami").read_bytes()
CORE_SHOW = (DATA / "coreshowchannels.ami").read_bytes()
# Recorded from Asterisk 22.10.1 (Debian sid): login, then two Local-channel Originates, raw bytes.
LIVE = (DATA / "asterisk22_live.ami").read_bytes()
NAME = "国网客户张三"


def _all(chunks: list[bytes]) -> list[AmiMessage]:
    framer = AmiFramer()
    out: list[AmiMessage] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    assert framer.buffered == 0
    return out


def test_recorded_frames_are_crlf_and_hold_multibyte_names() -> None:
    assert b"\r\n\r\n" in CALL_FLOW and b"\n\n" not in CALL_FLOW.replace(b"\r\n", b"")
    assert NAME.encode() in CALL_FLOW


def test_whole_stream_parses_in_order_with_banner_taken_off() -> None:
    framer = AmiFramer()
    msgs = framer.feed(CALL_FLOW)
    assert framer.version == "11.0.0"
    assert [m.event or m.response for m in msgs] == [
        "Success", "FullyBooted", "Newchannel", "Newstate", "DialBegin", "DialEnd", "BridgeEnter",
        "Hangup", "Hangup",
    ]
    new = msgs[2]
    assert new.get("CallerIDName") == NAME
    assert new.get("AccountCode") == ""  # an empty value is a value, not a missing header
    assert new.get_all("ChanVariable") == ("CTI_TIER=vip", "CTI_SKILL=billing")
    assert msgs[4].get("DestCallerIDName") == "坐席李四"
    assert msgs[-1].get("Cause-txt") == "Normal Clearing"


def test_split_at_every_byte_offset_gives_identical_messages() -> None:
    reference = _all([CALL_FLOW + CORE_SHOW])
    assert len(reference) == 13
    for cut in range(len(CALL_FLOW) + 1):
        data = CALL_FLOW + CORE_SHOW
        assert _all([data[:cut], data[cut:]]) == reference, f"split at byte {cut}"


def test_byte_by_byte_feed_gives_identical_messages() -> None:
    data = CALL_FLOW + CORE_SHOW
    assert _all([data[i:i + 1] for i in range(len(data))]) == _all([data])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(CALL_FLOW)), max_size=12))
def test_any_chunking_gives_identical_messages(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [CALL_FLOW[a:b] for a, b in zip([0, *points], [*points, len(CALL_FLOW)], strict=True)]
    assert _all(chunks) == _all([CALL_FLOW])


def test_panoramisk_loses_a_split_chinese_character_and_we_do_not() -> None:
    """The defect we replace: panoramisk decodes each chunk alone with errors='ignore'."""
    from panoramisk.ami_protocol import AMIProtocol

    frame = f"Event: Newchannel\r\nCallerIDName: {NAME}\r\nUniqueid: 1.1\r\n\r\n".encode()
    cut = frame.index(NAME.encode()) + 1  # inside the first character's three bytes
    got: list[object] = []

    class Factory:
        def dispatch(self, message: object) -> None:
            got.append(message)

    proto = AMIProtocol()
    proto.connection_made(transport=None)
    proto.factory = Factory()
    proto.data_received(frame[:cut])
    proto.data_received(frame[cut:])
    assert got and got[0]["CallerIDName"] != NAME  # type: ignore[index]

    ours = _all([frame[:cut], frame[cut:]])
    assert ours[0].get("CallerIDName") == NAME


def test_live_asterisk22_capture() -> None:
    framer = AmiFramer()
    msgs = framer.feed(LIVE)
    assert framer.version == "11.0.0" and framer.buffered == 0 and framer.dropped == 0
    assert msgs[0].is_response and msgs[0].get("Message") == "Authentication accepted"
    assert msgs[1].event == "FullyBooted" and msgs[1].get("Uptime") == "10"
    assert len(msgs) == 43 and all(m.is_event for m in msgs[1:])
    originate = [m for m in msgs if m.event == "OriginateResponse"]
    assert [m.get("Uniqueid") for m in originate] == ["cti-live-1", "cti-live-3"]  # our ChannelIds
    assert all(not m.is_response and m.get("Response") == "Success" for m in originate)
    assert any(m.get("CallerIDName") == NAME for m in msgs if m.event == "NewCallerid")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(LIVE)), max_size=40))
def test_live_capture_any_chunking(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [LIVE[a:b] for a, b in zip([0, *points], [*points, len(LIVE)], strict=True)]
    assert _all(chunks) == _all([LIVE])


def test_live_capture_byte_by_byte() -> None:
    assert _all([LIVE[i:i + 1] for i in range(len(LIVE))]) == _all([LIVE])


def test_bare_lf_frames_are_tolerated() -> None:
    msgs = _all([b"Event: A\nX: 1\n\nEvent: B\r\nX: 2\r\n\r\n"])
    assert [(m.event, m.get("X")) for m in msgs] == [("A", "1"), ("B", "2")]


def test_no_banner_is_fine_and_partial_banner_waits() -> None:
    assert _all([b"Event: A\r\n\r\n"])[0].event == "A"
    framer = AmiFramer()
    assert framer.feed(b"Asterisk Call") == []
    assert framer.feed(b" Manager/11.0.0\r\nEvent: A\r\n\r\n")[0].event == "A"
    assert framer.version == "11.0.0"


def test_malformed_line_is_skipped_and_the_frame_kept(caplog) -> None:
    framer = AmiFramer()
    with caplog.at_level(logging.WARNING):
        msgs = framer.feed(b"Event: Hangup\r\nthis line has no colon\r\nUniqueid: 9.9\r\n\r\n"
                           b"Event: Next\r\n\r\n")
    assert [m.event for m in msgs] == ["Hangup", "Next"]
    assert msgs[0].get("Uniqueid") == "9.9"
    assert framer.bad_lines == 1
    assert "no colon" in caplog.text


def test_frame_without_event_or_response_is_dropped_not_the_next(caplog) -> None:
    framer = AmiFramer()
    with caplog.at_level(logging.WARNING):
        msgs = framer.feed(b"garbage\r\nmore garbage\r\n\r\nFoo: bar\r\n\r\nEvent: Kept\r\n\r\n")
    assert [m.event for m in msgs] == ["Kept"]
    assert framer.dropped == 2


def test_invalid_utf8_is_replaced_not_lost(caplog) -> None:
    framer = AmiFramer()
    gbk_name = "张三".encode("gbk")  # a trunk that sends GBK: not UTF-8
    with caplog.at_level(logging.WARNING):
        msgs = framer.feed(b"Event: Hangup\r\nCallerIDName: " + gbk_name + b"\r\nUniqueid: 5.5\r\n\r\n")
    assert msgs[0].get("Uniqueid") == "5.5"
    assert "\ufffd" in (msgs[0].get("CallerIDName") or "")
    assert framer.bad_utf8 == 1 and "UTF-8" in caplog.text


def test_oversize_frame_is_dropped_and_stream_resyncs(caplog) -> None:
    framer = AmiFramer(max_frame=1000)
    big = b"Event: Huge\r\n" + b"X: " + b"y" * 5000 + b"\r\n\r\n"
    out: list[AmiMessage] = []
    with caplog.at_level(logging.WARNING):
        out += framer.feed(b"Event: Before\r\n\r\n")
        for i in range(0, len(big), 300):  # arrives in pieces: memory must stay bounded
            out += framer.feed(big[i:i + 300])
            assert framer.buffered <= 1000 + 300
        out += framer.feed(b"Event: After\r\n\r\n")
    assert [m.event for m in out] == ["Before", "After"]
    assert framer.dropped == 1 and "dropped" in caplog.text


def test_oversize_frame_in_one_read_is_dropped() -> None:
    framer = AmiFramer(max_frame=100)
    msgs = framer.feed(b"Event: Huge\r\nX: " + b"y" * 500 + b"\r\n\r\nEvent: After\r\n\r\n")
    assert [m.event for m in msgs] == ["After"]
    assert framer.dropped == 1


def test_stray_blank_lines_between_frames_are_ignored() -> None:
    assert [m.event for m in _all([b"\r\n\r\nEvent: A\r\n\r\n\r\n\r\nEvent: B\r\n\r\n"])] == ["A", "B"]


def test_legacy_command_body_is_kept() -> None:
    msg = parse_frame("Response: Follows\r\nPrivilege: Command\r\nline one\r\nline two\r\n--END COMMAND--")
    assert msg is not None and msg.body == "line one\nline two"


def test_reset_expects_a_new_banner() -> None:
    framer = AmiFramer()
    framer.feed(b"Asterisk Call Manager/11.0.0\r\nEvent: Half")
    framer.reset()
    assert framer.feed(b"Asterisk Call Manager/11.0.0\r\nEvent: A\r\n\r\n")[0].event == "A"


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=20))
def test_garbage_never_raises_and_the_stream_recovers(junk: bytes, sizes: list[int]) -> None:
    framer = AmiFramer(max_frame=2048)
    data = junk + b"\r\n\r\nEvent: Recovered\r\nSeq: 1\r\n\r\n"
    out: list[AmiMessage] = []
    i = 0
    for n in sizes * (len(data) // max(1, sum(sizes)) + 1):
        if i >= len(data):
            break
        out += framer.feed(data[i:i + n])
        i += n
        assert framer.buffered <= 2048 + 500
    out += framer.feed(data[i:])
    assert out and out[-1].event == "Recovered" and out[-1].get("Seq") == "1"


_KEYS = st.sampled_from(["Event", "Uniqueid", "CallerIDName", "ChanVariable", "Timestamp", "AccountCode", "X-Tra"])
_VALUES = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=12) | \
    st.sampled_from(["国网客户张三", "坐席李四", "", " lead", "a: b", "1717171717.250001"])


@settings(max_examples=120, deadline=None)
@given(st.lists(st.lists(st.tuples(_KEYS, _VALUES), min_size=1, max_size=8), min_size=1, max_size=6),
       st.lists(st.integers(min_value=0, max_value=2000), max_size=15), st.booleans())
def test_frames_held_as_bytes_read_exactly_like_parsed_pairs(frames: list[list[tuple[str, str]]],
                                                             cuts: list[int], bare_lf: bool) -> None:
    """The framer keeps a clean frame as bytes and decodes a header when asked: every lookup (first value
    wins, any case, repeats, Chinese split anywhere) must answer what the pairs themselves say."""
    eol = "\n" if bare_lf else "\r\n"
    frames = [[("Event", "Test"), *pairs] for pairs in frames]
    data = "".join("".join(f"{k}: {v}{eol}" for k, v in pairs) + eol for pairs in frames).encode()
    points = sorted({c % (len(data) + 1) for c in cuts})
    got = _all([data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)])
    assert len(got) == len(frames)
    for msg, pairs in zip(got, frames, strict=True):
        want = AmiMessage(pairs)
        assert msg == want and msg.items == tuple(pairs) and len(msg) == len(pairs)
        for key in {k for k, _ in pairs} | {"Missing"}:
            for spelling in (key, key.lower(), key.upper()):
                assert msg.get(spelling) == want.get(spelling)
                assert msg.get_all(spelling) == want.get_all(spelling)
                assert (spelling in msg) == (spelling in want)
        assert msg.event == "Test" and msg.is_event and not msg.is_response
        assert msg.timestamp == want.timestamp and msg.as_dict() == want.as_dict()
