"""AMI frames to attempt outcomes, and the Originator over the AMI client (with a fake client)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ctiserver.ami.actions import encode_action
from ctiserver.ami.client import AmiResponse
from ctiserver.ami.message import AmiMessage
from ctiserver.outbound.ami_originator import AmiOriginator
from ctiserver.outbound.amimap import OutcomeReader
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
    assert OutcomeReader().feed(m) == [(CID, outcome, "")]


def test_originate_success_waits_for_the_call_to_end() -> None:
    assert OutcomeReader().feed(msg(Event="OriginateResponse", Response="Success", Uniqueid=CID,
                                    Reason="4")) == []


def test_originate_failure_without_channel_is_found_by_action_id() -> None:
    m = msg(Event="OriginateResponse", Response="Failure", Uniqueid="<null>", Reason="0", ActionID="cti-1-9")
    assert OutcomeReader().feed(m) == []
    reader = OutcomeReader({"cti-1-9": CID}.get)
    assert reader.feed(m) == [(CID, Outcome.FAILED, "")]


def test_dialplan_user_event() -> None:
    r = OutcomeReader()
    assert r.feed(msg(Event="UserEvent", UserEvent="OutboundResult", ChannelId=CID, Digit="1",
                      AMDSTATUS="HUMAN")) == [(CID, Outcome.ANSWERED, "1")]
    assert r.feed(msg(Event="UserEvent", UserEvent="OutboundResult", ChannelId=CID, Digit="",
                      AMDSTATUS="MACHINE")) == [(CID, Outcome.MACHINE, "")]
    assert r.feed(msg(Event="UserEvent", UserEvent="OutboundResult", Uniqueid=CID, Digit="1\r\n2x")) == [
        (CID, Outcome.ANSWERED, "12")]
    assert r.feed(msg(Event="UserEvent", UserEvent="Other", ChannelId=CID)) == []


def test_hangup_of_our_channel() -> None:
    r = OutcomeReader()
    assert r.feed(msg(Event="Hangup", Uniqueid=CID, ChannelState="6", Cause="16")) == [
        (CID, Outcome.ANSWERED, "")]
    assert r.feed(msg(Event="Hangup", Uniqueid=CID, ChannelState="5", Cause="17")) == [
        (CID, Outcome.BUSY, "")]
    assert r.feed(msg(Event="Hangup", Uniqueid=CID, ChannelState="5", Cause="19")) == [
        (CID, Outcome.NO_ANSWER, "")]
    assert r.feed(msg(Event="Hangup", Uniqueid=CID, ChannelState="0", Cause="34")) == [
        (CID, Outcome.CONGESTION, "")]


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
    r = OutcomeReader()
    assert r.feed(msg(Event="Hangup", Uniqueid=CID, ChannelState="5", Cause="0")) == [
        (CID, Outcome.NO_ANSWER, "")]
    assert r.feed(msg(Event="Hangup", Uniqueid=CID, ChannelState="0", Cause="0")) == [
        (CID, Outcome.FAILED, "")]


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
