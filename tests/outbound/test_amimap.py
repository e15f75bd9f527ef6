"""AMI frames to attempt outcomes, and the Originator over the AMI client (with a fake client)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ctiserver.ami.actions import encode_action
from ctiserver.ami.client import AmiResponse
from ctiserver.ami.message import AmiMessage
from ctiserver.outbound.ami_originator import AmiOriginator
from ctiserver.outbound.amimap import OutcomeReader, Result
from ctiserver.outbound.dialer import OriginateNotSent, OriginateRejected
from ctiserver.outbound.model import Outcome

CID = "ob-1a2b3c4d-17-2"


def msg(**headers: str) -> AmiMessage:
    return AmiMessage.of(**headers)


@pytest.mark.parametrize(("reason", "outcome"), [
    ("5", Outcome.BUSY), ("8", Outcome.CONGESTION), ("3", Outcome.NO_ANSWER), ("1", Outcome.NO_ANSWER),
    ("0", Outcome.FAILED), ("", Outcome.FAILED)])
def test_originate_failure_reasons(reason: str, outcome: str) -> None:
    m = msg(Event="OriginateResponse", Response="Failure", Uniqueid=CID, Reason=reason)
    r = OutcomeReader()
    assert r.feed(m) == []  # held for the channel's Hangup, which says nothing more (Local, cause 0)
    assert r.feed(msg(Event="Hangup", Uniqueid=CID, ChannelState="0", Cause="0")) == [(CID, outcome, "", True)]


def hangup_then_response(hangup: AmiMessage, reason: str = "0") -> list[Result]:
    r = OutcomeReader()
    first = r.feed(hangup)
    assert first == []
    return r.feed(msg(Event="OriginateResponse", Response="Failure", Uniqueid=CID, Reason=reason))


@pytest.mark.parametrize("order", ["hangup first", "response first"])
@pytest.mark.parametrize(("state", "cause", "reason", "outcome"), [
    ("0", "0", "8", Outcome.CONGESTION),  # the case: 'failed' then 'congestion'
    ("5", "0", "0", Outcome.NO_ANSWER),  # a Local channel rang out: Reason 0 says only 'failed'
    ("0", "0", "5", Outcome.BUSY),
    ("5", "17", "5", Outcome.BUSY),
    ("0", "34", "0", Outcome.CONGESTION),
    ("0", "0", "0", Outcome.FAILED),
])
def test_a_call_that_fails_before_answer_gets_one_result(order: str, state: str, cause: str, reason: str,
                                                         outcome: str) -> None:
    """Issue 12 item 24: one outbound attempt got two results (failed, then congestion)."""
    r = OutcomeReader()
    hangup = msg(Event="Hangup", Uniqueid=CID, ChannelState=state, Cause=cause)
    response = msg(Event="OriginateResponse", Response="Failure", Uniqueid=CID, Reason=reason)
    first, second = (hangup, response) if order == "hangup first" else (response, hangup)
    assert r.feed(first, 100.0) == []
    assert r.feed(second, 100.01) == [(CID, outcome, "", True)]
    assert r.due(1000.0) == [] and r.next_deadline() is None  # nothing left over to report again


def test_a_report_whose_partner_never_comes_is_released_once_after_settle_s() -> None:
    r = OutcomeReader(settle_s=5.0)
    assert r.feed(msg(Event="Hangup", Uniqueid=CID, ChannelState="5", Cause="0"), 100.0) == []
    assert r.next_deadline() == 105.0 and r.due(104.9) == []
    assert r.due(105.0) == [(CID, Outcome.NO_ANSWER, "", True)]
    late = msg(Event="OriginateResponse", Response="Failure", Uniqueid=CID, Reason="0")
    assert r.feed(late, 110.0) == [] and r.due(200.0) == []  # the late partner is not a second result
    other = "ob-1a2b3c4d-18-1"
    assert r.feed(msg(Event="OriginateResponse", Response="Failure", Uniqueid=other, Reason="5"), 1.0) == []
    assert r.release_all() == [(other, Outcome.BUSY, "", True)]  # the AMI link went down: release now
    assert r.next_deadline() is None


def test_originate_success_waits_for_the_call_to_end() -> None:
    assert OutcomeReader().feed(msg(Event="OriginateResponse", Response="Success", Uniqueid=CID,
                                    Reason="4")) == []


def test_originate_failure_without_channel_is_found_by_action_id() -> None:
    m = msg(Event="OriginateResponse", Response="Failure", Uniqueid="<null>", Reason="0", ActionID="cti-1-9")
    assert OutcomeReader().feed(m) == []
    reader = OutcomeReader({"cti-1-9": CID}.get)
    assert reader.feed(m) == [(CID, Outcome.FAILED, "", True)]


def test_dialplan_user_event() -> None:
    r = OutcomeReader()
    assert r.feed(msg(Event="UserEvent", UserEvent="OutboundResult", ChannelId=CID, Digit="1",
                      AMDSTATUS="HUMAN")) == [(CID, Outcome.ANSWERED, "1", False)]
    assert r.feed(msg(Event="UserEvent", UserEvent="OutboundResult", ChannelId=CID, Digit="",
                      AMDSTATUS="MACHINE")) == [(CID, Outcome.MACHINE, "", False)]
    assert r.feed(msg(Event="UserEvent", UserEvent="OutboundResult", Uniqueid=CID, Digit="1\r\n2x")) == [
        (CID, Outcome.ANSWERED, "12", False)]
    assert r.feed(msg(Event="UserEvent", UserEvent="Other", ChannelId=CID)) == []


def test_hangup_of_our_channel() -> None:
    r = OutcomeReader()
    assert r.feed(msg(Event="Hangup", Uniqueid=CID, ChannelState="6", Cause="16")) == [
        (CID, Outcome.ANSWERED, "", True)]
    assert hangup_then_response(msg(Event="Hangup", Uniqueid=CID, ChannelState="5", Cause="17")) == [
        (CID, Outcome.BUSY, "", True)]
    assert hangup_then_response(msg(Event="Hangup", Uniqueid=CID, ChannelState="5", Cause="19")) == [
        (CID, Outcome.NO_ANSWER, "", True)]
    assert hangup_then_response(msg(Event="Hangup", Uniqueid=CID, ChannelState="0", Cause="34")) == [
        (CID, Outcome.CONGESTION, "", True)]


@pytest.mark.parametrize("uid", ["1700000000.12", "ob-", "ob-x-1", "ob-abc-1-2;2", "xob-abc-1-2", ""])
def test_other_channels_are_ignored(uid: str) -> None:
    r = OutcomeReader()
    assert r.feed(msg(Event="Hangup", Uniqueid=uid, ChannelState="6")) == []
    assert r.feed(msg(Event="OriginateResponse", Response="Failure", Uniqueid=uid, Reason="5")) == []
    assert r.feed(msg(Event="Newchannel", Uniqueid=CID)) == []


class FakeClient:
    def __init__(self, *, refuse: bool = False, channels: tuple[str, ...] = ()) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.refuse = refuse
        self.refuse_message = "Extension does not exist."
        self.connected = True
        self.channels = channels

    async def action(self, name: str, fields: Mapping[str, Any] | None = None, /) -> AmiResponse:
        wire = encode_action(name, {**(fields or {}), "ActionID": f"cti-1-{len(self.sent)}"})
        self.sent.append((name, wire))
        aid = f"cti-1-{len(self.sent) - 1}"
        if name == "Status":
            events = tuple(msg(Event="Status", Uniqueid=u) for u in self.channels)
            return AmiResponse(msg(Response="Success", ActionID=aid), events)
        if self.refuse:
            return AmiResponse(msg(Response="Error", Message=self.refuse_message, ActionID=aid))
        return AmiResponse(msg(Response="Success", Message="Originate successfully queued", ActionID=aid))


async def test_originate_fields_on_the_wire() -> None:
    client = FakeClient()
    o = AmiOriginator(client, channel="Local/{number}@outbound-dest", caller_id="95598")
    await o.originate(CID, "13800000001", "outbound", "s", {"MSG": "cti/ab", "OUT_TIER": "vip\r\nAction: X"},
                      30)
    name, wire = client.sent[0]
    text = wire.decode()
    assert name == "Originate"
    for line in ("Channel: Local/13800000001@outbound-dest", "Context: outbound", "Exten: s",
                 "Timeout: 30000", "Async: true", f"ChannelId: {CID}", "Variable: MSG=cti/ab",
                 "CallerID: 95598"):
        assert line + "\r\n" in text
    assert text.startswith("Action: Originate\r\n") and "\nAction:" not in text  # no second action
    assert o.channel_for_action("cti-1-0") == CID


async def test_refused_originate_and_bad_numbers_raise_rejected() -> None:
    o = AmiOriginator(FakeClient(refuse=True), channel="PJSIP/{number}@carrier", caller_id="95598")
    with pytest.raises(OriginateRejected, match="Extension does not exist"):
        await o.originate(CID, "13800000001", "outbound", "s", {}, 30)
    with pytest.raises(OriginateRejected, match="digits only"):
        await o.originate(CID, "138&PJSIP/evil", "outbound", "s", {}, 30)
    with pytest.raises(OriginateRejected, match="ASCII digits only"):  # Arabic-Indic digits pass isdigit()
        await o.originate(CID, "١٣٨٠٠٠٠٠٠٠١", "outbound", "s", {}, 30)


async def test_is_live_asks_status_once_per_burst() -> None:
    client = FakeClient(channels=(CID, "1700000000.1"))
    o = AmiOriginator(client, channel="PJSIP/{number}@carrier", caller_id="95598", live_cache_s=60)
    assert await o.is_live(CID) is True
    assert await o.is_live("ob-1a2b3c4d-18-1") is False
    assert [n for n, _ in client.sent] == ["Status"]


def test_local_channel_hangups_with_cause_zero() -> None:
    """As seen on Asterisk 22: Local;1 channels end with Cause 0 whatever happened."""
    assert hangup_then_response(msg(Event="Hangup", Uniqueid=CID, ChannelState="5", Cause="0")) == [
        (CID, Outcome.NO_ANSWER, "", True)]
    assert hangup_then_response(msg(Event="Hangup", Uniqueid=CID, ChannelState="0", Cause="0")) == [
        (CID, Outcome.FAILED, "", True)]


async def test_originate_not_sent_when_the_link_is_down_or_asterisk_stops() -> None:
    client = FakeClient(refuse=True)
    client.refuse_message = "Asterisk is shutting down"
    o = AmiOriginator(client, channel="PJSIP/{number}@carrier", caller_id="95598")
    with pytest.raises(OriginateNotSent):
        await o.originate(CID, "13800000001", "outbound", "s", {}, 30)
    client.connected = False
    assert not o.ready()
    with pytest.raises(OriginateNotSent, match="link is down"):
        await o.originate(CID, "13800000001", "outbound", "s", {}, 30)
    assert len(client.sent) == 1  # nothing was written while the link was down
