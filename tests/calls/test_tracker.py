"""Call tracker: raw AMI events in, call lifecycle events out (pure, no Asterisk)."""

import logging

import pytest

from ctiserver.calls.tracker import CallTracker, RecordedCall, channel_created
from ctiserver.events import Kind


def ev(name: str, **kw: str) -> dict[str, str]:
    return {"Event": name, **kw}


def newchan(uid: str, linked: str, chan: str, num: str = "13800000001", name: str = "张三") -> dict[str, str]:
    return ev("Newchannel", Uniqueid=uid, Linkedid=linked, Channel=chan, CallerIDNum=num,
              CallerIDName=name, Exten="95598", Context="hotline", ChannelState="0")


def kinds(events):
    return [e.kind for e in events]


def test_two_leg_call_lifecycle():
    t = CallTracker("pbx1")
    out = t.feed(newchan("1.1", "1.1", "PJSIP/trunk-1"), 10.0)
    assert kinds(out) == [Kind.CALL_NEW]
    assert out[0].data["caller_name"] == "张三" and out[0].call_id == "1.1"
    assert kinds(t.feed(newchan("1.2", "1.1", "PJSIP/agent1001-2"), 11.0)) == [Kind.CALL_LEG]
    assert kinds(t.feed(ev("Newstate", Uniqueid="1.1", ChannelState="6"), 12.0)) == [Kind.CALL_ANSWER]
    assert t.feed(ev("Newstate", Uniqueid="1.1", ChannelState="6"), 12.5) == []  # answered once
    assert kinds(t.feed(ev("Hangup", Uniqueid="1.2", Cause="16", **{"Cause-txt": "Normal Clearing"}), 40.0)) == [
        Kind.CALL_HANGUP]
    out = t.feed(ev("Hangup", Uniqueid="1.1", Cause="16"), 41.0)
    assert kinds(out) == [Kind.CALL_HANGUP, Kind.CALL_END]
    assert out[1].data["duration_s"] == 31.0 and out[1].data["answered"] is True
    assert t.calls == {} and t.legs == {}


def test_malformed_and_unknown_events_are_skipped():
    t = CallTracker("pbx1")
    assert t.feed(ev("Newchannel", Channel="x"), 1.0) == []  # no Uniqueid
    assert t.skipped == 1
    assert t.feed(ev("SomethingNew", Foo="bar"), 1.0) == []
    assert t.feed(ev("Hangup", Uniqueid="never-seen"), 1.0) == []
    assert kinds(t.feed(newchan("2.1", "2.1", "Local/a@b-1;1"), 2.0)) == [Kind.CALL_NEW]


def test_resync_closes_vanished_and_adopts_unknown_channels():
    t = CallTracker("pbx1")
    t.feed(newchan("3.1", "3.1", "PJSIP/x-1"), 1.0)
    t.feed(newchan("4.1", "4.1", "PJSIP/y-1"), 1.0)
    t.begin_resync()
    t.feed(ev("CoreShowChannel", Uniqueid="4.1", Linkedid="4.1", Channel="PJSIP/y-1", ChannelState="6"), 5.0)
    t.feed(ev("CoreShowChannel", Uniqueid="5.1", Linkedid="5.1", Channel="PJSIP/z-1", ChannelState="6",
              CallerIDNum="95598"), 5.0)
    out = t.end_resync(5.0)
    assert [(e.kind, e.call_id) for e in out] == [
        (Kind.CALL_HANGUP, "3.1"), (Kind.CALL_END, "3.1"),
        (Kind.CALL_NEW, "5.1"), (Kind.CALL_ANSWER, "5.1")]
    assert out[2].data["resynced"] is True
    assert sorted(t.calls) == ["4.1", "5.1"]


def test_drop_all_after_restart():
    t = CallTracker("pbx1")
    t.feed(newchan("6.1", "6.1", "PJSIP/x-1"), 1.0)
    t.feed(newchan("6.2", "6.1", "PJSIP/x-2"), 1.0)
    out = t.drop_all(9.0, "asterisk restarted")
    assert kinds(out) == [Kind.CALL_HANGUP, Kind.CALL_HANGUP, Kind.CALL_END]
    assert t.live_calls(9.0) == []


def test_dial_begin_records_who_dialled_each_leg():
    t = CallTracker("pbx1")
    t.feed(newchan("7.0", "7.0", "Local/95598@hotline-1;1"), 1.0)
    t.feed(newchan("7.1", "7.0", "Local/95598@hotline-1;2"), 1.0)
    t.feed(newchan("7.2", "7.0", "PJSIP/agent1001-2"), 2.0)
    assert t.feed(ev("DialBegin", DestUniqueid="7.0"), 1.0) == []  # AMI Originate: no source channel
    assert t.feed(ev("DialBegin", Uniqueid="7.1", DestUniqueid="7.2"), 2.0) == []
    assert t.feed(ev("DialBegin", Uniqueid="7.1", DestUniqueid="never-seen"), 2.0) == []
    assert [t.legs[u].dialed_by for u in ("7.0", "7.1", "7.2")] == ["", "", "7.1"]


def test_a_leg_that_dialled_stays_marked_after_the_leg_it_dialled_is_gone():
    """Call control finds the caller as the leg that dialled, also after the agent it dialled left (a transfer)."""
    t = CallTracker("pbx1")
    t.feed(newchan("1.1", "1.1", "PJSIP/trunk-1"), 10.0)
    t.feed(newchan("1.2", "1.1", "PJSIP/agent1001-2"), 11.0)
    t.feed(ev("DialBegin", Uniqueid="1.1", DestUniqueid="1.2"), 11.0)
    t.feed(ev("DialBegin", Uniqueid="", DestUniqueid="1.1"), 11.0)  # an Originate: no dialler
    assert (t.legs["1.1"].dialled, t.legs["1.2"].dialled, t.legs["1.2"].dialed_by) == (True, False, "1.1")
    t.feed(ev("Hangup", Uniqueid="1.2", Cause="16"), 40.0)
    assert t.legs["1.1"].dialled is True


def test_times_are_asterisks_timestamps_however_late_the_events_are_read():
    """Each event's time is its `Timestamp` (manager.conf timestampevents); `now` is only the fallback.
    Here the CTI reads every event late, and by a varying lag: the call still lasts what Asterisk saw."""
    t = CallTracker("pbx1")
    new = t.feed({**newchan("8.1", "8.1", "PJSIP/trunk-8"), "Timestamp": "1700000000.250000"}, 1700000003.0)
    answer = t.feed(ev("Newstate", Uniqueid="8.1", ChannelState="6", Timestamp="1700000001.500000"), 1700000009.0)
    out = t.feed(ev("Hangup", Uniqueid="8.1", Cause="16", Timestamp="1700000031.750000"), 1700000032.0)
    assert [e.ts for e in new + answer + out] == [1700000000.25, 1700000001.5, 1700000031.75, 1700000031.75]
    assert out[1].data["duration_s"] == 31.5
    # without a Timestamp (an Asterisk without timestampevents) the caller's time is used, as before
    t.feed(newchan("9.1", "9.1", "PJSIP/trunk-9"), 50.0)
    assert t.feed(ev("Hangup", Uniqueid="9.1"), 60.5)[1].data["duration_s"] == 10.5


def test_channel_creation_time_from_a_listing():
    # Duration is whole seconds of age (truncated): created in (listed - d - 1, listed - d]
    assert channel_created("00:00:50", "probe-1;2", 1000.0) == 949.5
    assert channel_created("01:02:03", "x", 10000.0) == 10000.0 - 3723 - 0.5
    # a default Uniqueid's epoch second narrows it: here to [...949.0, ...949.4]
    listed_at = 1700000999.4
    assert channel_created("00:00:50", "1700000949.17", listed_at) == pytest.approx(1700000949.2)
    assert channel_created("00:00:50", "pbx-a-1700000949.17", listed_at) == pytest.approx(1700000949.2)
    assert channel_created("00:00:50", "1600000000.1", listed_at) == pytest.approx(1700000948.9)  # no fit
    assert channel_created(None, "1700000949.17", listed_at) is None and channel_created("soon", "x", 1.0) is None


def listed(uid: str, linked: str, chan: str, duration: str, state: str = "6", **kw: str) -> dict[str, str]:
    return ev("CoreShowChannel", Uniqueid=uid, Linkedid=linked, Channel=chan, ChannelState=state,
              Duration=duration, CallerIDNum="13800000001", Context="hotline", **kw)


def test_a_call_adopted_after_a_restart_is_measured_from_its_creation_not_the_resync():
    """A CTI (re)started mid-call: with no record of the call, its start is the channel's creation time
    as Asterisk reports it, so the call.end written later is not measured from the restart."""
    t = CallTracker("pbx1")
    t.begin_resync()
    t.feed(listed("c.2", "c.1", "PJSIP/agent1001-2", "00:00:40"), 1000.0)
    t.feed(listed("c.1", "c.1", "PJSIP/trunk-1", "00:00:44"), 1000.0)
    out = t.end_resync(1000.2)
    assert [(e.kind, e.data.get("uniqueid")) for e in out] == [
        (Kind.CALL_NEW, "c.1"), (Kind.CALL_ANSWER, "c.1"), (Kind.CALL_LEG, "c.2"), (Kind.CALL_ANSWER, "c.2")]
    assert out[0].ts == 955.5 and out[0].data["resynced"] is True  # created 44 s before the listing
    t.feed(ev("Hangup", Uniqueid="c.2"), 1005.0)
    end = t.feed(ev("Hangup", Uniqueid="c.1", Timestamp="1006.0"), 1006.3)[-1]
    assert end.kind == Kind.CALL_END and end.data["duration_s"] == 50.5 and end.data["answered"] is True


def test_a_call_the_store_already_holds_is_adopted_without_a_second_call_new():
    """After a CTI restart the previous run's call.new (and call.leg, call.answer) rows are in the store:
    the resync adds none again, only what is new (a leg it never saw), and the call keeps its recorded
    start, so its call.end measures the whole call."""
    t = CallTracker("pbx1")
    t.begin_resync()
    t.feed(listed("d.1", "d.1", "PJSIP/trunk-1", "00:00:44"), 1000.0)
    t.feed(listed("d.2", "d.1", "PJSIP/agent1001-2", "00:00:40"), 1000.0)
    t.feed(listed("d.3", "d.1", "PJSIP/agent1002-3", "00:00:02"), 1000.0)  # joined while the CTI was down
    t.feed(listed("e.1", "e.1", "PJSIP/trunk-2", "00:00:03", state="4"), 1000.0)  # unknown to the store
    assert t.resync_unknown_calls() == {"d.1", "e.1"}
    recorded = {"d.1": RecordedCall(955.123, frozenset({"d.1", "d.2"}), frozenset({"d.1", "d.2"}), 957.0)}
    out = t.end_resync(1000.2, recorded)
    assert [(e.kind, e.data.get("uniqueid")) for e in out] == [
        (Kind.CALL_NEW, "e.1"), (Kind.CALL_LEG, "d.3"), (Kind.CALL_ANSWER, "d.3")]
    assert t.calls["d.1"].started == 955.123 and t.calls["d.1"].answered_at == 957.0
    t.feed(ev("Hangup", Uniqueid="d.2"), 1001.0)
    t.feed(ev("Hangup", Uniqueid="d.3"), 1001.0)
    end = t.feed(ev("Hangup", Uniqueid="d.1", Timestamp="1010.123"), 1011.0)[-1]
    assert end.kind == Kind.CALL_END and end.data["duration_s"] == 55.0 and end.data["answered"] is True


def test_channels_that_come_and_go_during_a_resync_are_neither_closed_nor_adopted():
    """The listing is a snapshot: a channel that appeared after it (its Newchannel handled before the
    resync ends) is live, not 'ended while disconnected'; one listed but gone since is not adopted."""
    t = CallTracker("pbx1")
    t.begin_resync()
    assert kinds(t.feed(newchan("f.1", "f.1", "PJSIP/trunk-1"), 10.0)) == [Kind.CALL_NEW]  # after the listing
    t.feed(listed("g.1", "g.1", "PJSIP/trunk-2", "00:00:05"), 10.0)
    assert t.feed(ev("Hangup", Uniqueid="g.1"), 10.1) == []  # listed, then hung up before the resync ended
    assert t.end_resync(10.2) == []
    assert sorted(t.calls) == ["f.1"]
    out = t.feed(ev("Hangup", Uniqueid="f.1"), 20.0)
    assert kinds(out) == [Kind.CALL_HANGUP, Kind.CALL_END]  # one call.end, at its real end


def test_an_originated_call_records_the_callerid_asterisk_sets_after_creating_it():
    """Recorded from Asterisk 22: an AMI Originate's channel is created as `<unknown>` and gets the
    Originate's CallerID in NewCallerid just after. The store records that caller, never `<unknown>`."""
    from pathlib import Path

    from ctiserver.ami.framing import AmiFramer

    live = (Path(__file__).parents[1] / "ami" / "data" / "asterisk22_live.ami").read_bytes()
    t = CallTracker("pbx1")
    out = []
    for i, msg in enumerate(AmiFramer().feed(live)):
        if msg.event:
            out += t.feed(msg, float(i))
    assert "<unknown>" not in repr([e.data for e in out])
    first = [e for e in out if e.call_id == "cti-live-1"]
    new = next(e for e in first if e.kind == Kind.CALL_NEW)
    assert (new.data["caller_num"], new.data["caller_name"]) == ("", "")  # not known yet when created
    [cid] = [e for e in first if e.kind == Kind.CALL_CALLERID]
    assert (cid.data["caller_num"], cid.data["caller_name"]) == ("13800138000", "国网客户张三")
    [end] = [e for e in first if e.kind == Kind.CALL_END]
    assert (end.data["caller_num"], end.data["caller_name"]) == ("13800138000", "国网客户张三")


def test_callerid_changes_on_other_legs_do_not_rename_the_call():
    t = CallTracker("pbx1")
    t.feed(newchan("6.1", "6.1", "PJSIP/trunk-6"), 1.0)
    t.feed(newchan("6.2", "6.1", "PJSIP/agent1001-6", num="1001", name="坐席"), 2.0)
    assert t.feed(ev("NewCallerid", Uniqueid="6.2", CallerIDNum="1002", CallerIDName="x"), 3.0) == []
    assert t.feed(ev("NewConnectedLine", Uniqueid="6.1", CallerIDNum="13800000001", CallerIDName="张三"), 3.0) == []
    out = t.feed(ev("NewCallerid", Uniqueid="6.1", CallerIDNum="13800000009", CallerIDName="<unknown>"), 4.0)
    assert [(e.kind, e.data["caller_num"], e.data["caller_name"]) for e in out] == [
        (Kind.CALL_CALLERID, "13800000009", "张三")]


def test_a_flood_of_malformed_events_is_one_warning_and_a_count(caplog):
    t = CallTracker("pbx1")
    caplog.set_level(logging.WARNING)
    for _ in range(10_000):
        t.feed(ev("Newchannel", Channel="x"), 1.0)  # no Uniqueid
    assert t.skipped == 10_000
    assert [r.getMessage() for r in caplog.records] == ["malformed AMI events skipped: Newchannel: no Uniqueid"]
