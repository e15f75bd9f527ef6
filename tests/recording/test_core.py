"""The recorder's pure core and the retention rules."""

from __future__ import annotations

from ctiserver.dialplan import record_on_answer
from ctiserver.recording.config import KindRule, Retention
from ctiserver.recording.core import Ended, RecorderCore, SpoolName, Started
from ctiserver.recording.retention import DAY, expired, kind_of, next_run


def started(channel: str, uid: str, spool: str) -> dict[str, str]:
    return {"Event": "UserEvent", "UserEvent": "CtiRecording", "Channel": channel, "Uniqueid": uid,
            "Linkedid": "1700000000.1", "Spool": spool}


NAME = "1700000000.1-1700000000.5-1001-1700000010250"


def test_the_dialplans_recording_is_followed_once_and_ends_with_its_hangup() -> None:
    core = RecorderCore()
    [start] = core.feed("pbx1", started("PJSIP/agent1001-0000001", "1700000000.5", NAME))
    assert isinstance(start, Started) and start.name.agent_id == "1001" and start.name.call_id == "1700000000.1"
    assert start.name.base == NAME and start.name.start_ts == 1700000010.25
    # the same leg said twice (a repeated event): one recording
    assert core.feed("pbx1", started("PJSIP/agent1001-0000001", "1700000000.5", NAME)) == []
    assert core.feed("pbx1", {"Event": "Hangup", "Uniqueid": "1700000000.9"}) == []  # another channel
    assert core.feed("pbx1", {"Event": "Hangup", "Uniqueid": "1700000000.5"}) == [Ended(start.name)]
    assert core.feed("pbx1", {"Event": "Hangup", "Uniqueid": "1700000000.5"}) == []


def test_names_that_are_not_the_channels_own_or_hostile_are_ignored() -> None:
    core = RecorderCore()
    # a UserEvent naming another channel's files (anyone's dialplan may send one) is not taken
    assert core.feed("pbx1", started("PJSIP/agent1001-1", "1700000000.6", NAME)) == []
    assert core.feed("pbx1", started("PJSIP/agent1001-1", "1700000000.5", "../../etc/passwd")) == []
    assert core.feed("pbx1", started("PJSIP/agent1001-1", "1700000000.5", NAME + ";rm -rf /")) == []
    assert core.feed("pbx1", {**started("PJSIP/agent1001-1", "1700000000.5", NAME), "UserEvent": "Other"}) == []
    assert core.active == {}
    assert SpoolName.make("1.2", "1.3", "a b", 1.0) is None


def test_spool_names_read_back() -> None:
    name = SpoolName("1700000000.1", "1700000000.5", "1001", 1700000010.25)
    assert SpoolName.parse(name.base) == name
    # a call our Originate started (an ACD callback) has our ChannelId as its linkedid, dashes and all
    callback = SpoolName("cb-3f7d2f-1-1", "1796346608.8", "1001", 1796346608.114)
    assert SpoolName.parse(callback.base) == callback and callback.base.startswith("cb-3f7d2f-1-1-1796346608.8-")
    assert SpoolName.parse("../../etc/passwd") is None


def test_a_lost_link_forgets_its_live_recordings() -> None:
    core = RecorderCore()
    core.feed("pbx1", started("PJSIP/agent1001-1", "1700000000.5", NAME))
    core.forget("pbx1")
    assert core.active == {}


def test_the_dial_option_names_the_agent_and_refuses_what_is_not_an_id() -> None:
    assert record_on_answer("1003") == "U(cti-record^1003)"
    assert record_on_answer("1003", far=True) == "U(cti-record^1003^far)"
    assert record_on_answer("10 03;x") == ""


RULES = Retention(default_days=183, kinds={"complaint": KindRule(days=730, categories=["complaint"])})


def test_retention_keeps_each_kind_its_days() -> None:
    now = 1_800_000_000.0
    rows = [
        {"id": 1, "path": "a", "start_ts": now - 184 * DAY, "categories": ["billing"]},  # ordinary, expired
        {"id": 2, "path": "b", "start_ts": now - 182 * DAY, "categories": []},  # ordinary, kept
        {"id": 3, "path": "c", "start_ts": now - 400 * DAY, "categories": ["billing", "complaint"]},  # kept
        {"id": 4, "path": "d", "start_ts": now - 731 * DAY, "categories": ["complaint"]},  # expired
    ]
    got = expired(rows, RULES, now)
    assert [(e.id, e.kind, e.days) for e in got] == [(1, "default", 183), (4, "complaint", 730)]
    assert kind_of(["complaint", "billing"], RULES) == ("complaint", 730)


def test_the_daily_run_is_today_or_tomorrow() -> None:
    midnight = 1_800_000_000.0
    assert next_run(midnight, 210, midnight + 100) == midnight + 210 * 60
    assert next_run(midnight, 210, midnight + 211 * 60) == midnight + DAY + 210 * 60
