"""The recorder's pure core and the retention rules."""

from __future__ import annotations

from ctiserver.recording.config import KindRule, Retention
from ctiserver.recording.core import Ended, RecorderCore, SpoolName, Start
from ctiserver.recording.retention import DAY, expired, kind_of, next_run


def agent_of(channel: str) -> str | None:
    return channel.split("-")[0].removeprefix("PJSIP/agent") if channel.startswith("PJSIP/agent") else None


def enter(channel: str, uid: str, linked: str = "1700000000.1") -> dict[str, str]:
    return {"Event": "BridgeEnter", "Channel": channel, "Uniqueid": uid, "Linkedid": linked}


def test_an_agent_leg_entering_a_bridge_is_recorded_once_and_ends_with_its_hangup() -> None:
    core = RecorderCore(agent_of)
    [start] = core.feed("pbx1", enter("PJSIP/agent1001-0000001", "1700000000.5"), 1700000010.25)
    assert isinstance(start, Start) and start.name.agent_id == "1001" and start.name.call_id == "1700000000.1"
    assert start.name.base == "1700000000.1-1700000000.5-1001-1700000010250"
    action = start.action("/var/spool/asterisk/monitor/cti")
    assert action["Options"] == ("bt(/var/spool/asterisk/monitor/cti/1700000000.1-1700000000.5-1001-1700000010250"
                                 "-caller.wav)r(/var/spool/asterisk/monitor/cti/1700000000.1-1700000000.5-1001-"
                                 "1700000010250-agent.wav)")
    command = action["Command"]
    assert command.startswith("touch /var/spool/asterisk/monitor/cti/") and command.endswith(".done")
    # the same leg entering another bridge (an attended transfer's consultation, then back): one recording
    assert core.feed("pbx1", enter("PJSIP/agent1001-0000001", "1700000000.5"), 1700000020.0) == []
    assert core.feed("pbx1", {"Event": "Hangup", "Uniqueid": "1700000000.5"}, 1700000030.0) == [Ended(start.name)]
    assert core.feed("pbx1", {"Event": "Hangup", "Uniqueid": "1700000000.5"}, 1700000030.0) == []


def test_callers_and_hostile_names_are_not_recorded() -> None:
    core = RecorderCore(agent_of)
    assert core.feed("pbx1", enter("PJSIP/trunk-0000001", "1700000000.5"), 1.0) == []
    # a channel name or id that would end up in an AMI action or a shell command is refused
    assert core.feed("pbx1", enter("PJSIP/agent1001-1", "1700000000.5;rm -rf /"), 1.0) == []
    assert core.feed("pbx1", enter("PJSIP/agent1001-1", "1700000000.6", "x\r\nAction: Originate"), 1.0) == []
    assert SpoolName.make("1.2", "1.3", "a b", 1.0) is None


def test_spool_names_read_back() -> None:
    name = SpoolName("1700000000.1", "1700000000.5", "1001", 1700000010.25)
    assert SpoolName.parse(name.base) == name
    assert SpoolName.parse("../../etc/passwd") is None


def test_a_lost_link_forgets_its_live_recordings() -> None:
    core = RecorderCore(agent_of)
    core.feed("pbx1", enter("PJSIP/agent1001-1", "1700000000.5"), 1.0)
    core.forget("pbx1")
    assert core.active == {}


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
