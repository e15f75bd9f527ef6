"""Call tracker: raw AMI events in, call lifecycle events out (pure, no Asterisk)."""

from ctiserver.events import Kind
from ctiserver.tracker import CallTracker


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
