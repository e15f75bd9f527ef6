"""AmiCallControl without Asterisk: which channel each action goes to, and what it logs.

The channel layouts are the ones the sandbox really produces (tests/test_transfers_asterisk.py
checks them live): a `Local/95598@hotline` caller is two channels, and only `;2` runs the
hotline dialplan and dials the agent.
"""

from __future__ import annotations

from typing import Any

import pytest

from ctiserver.ami.errors import AmiDisconnected
from ctiserver.calls.control import AgentChannels, AmiCallControl, call_agent, transfer_listener
from ctiserver.calls.tracker import CallTracker
from ctiserver.events import Event, Kind
from ctiserver.web.ports import PortError


class Resp:
    def __init__(self, ok: bool = True, message: str = "") -> None:
        self.success, self.message = ok, message


class FakeAmi:
    def __init__(self, on_action: Any = None) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []
        self.on_action = on_action

    async def action(self, name: str, fields: Any = None, timeout: float | None = None) -> Any:
        self.sent.append((name, dict(fields or {})))
        if self.on_action is not None:
            return self.on_action(name, fields)
        return Resp()


class Agents:
    """The ACD as call control reads it: `agent` has the call (in queue billing, tier normal)."""

    def __init__(self, agent: str | None) -> None:
        self.agent = agent

    def call_agent(self, call_id: str) -> str | None:
        return self.agent

    def call_queue(self, call_id: str) -> tuple[str, str] | None:
        return ("billing", "normal") if self.agent else None

    def agent_ids(self) -> list[str]:
        return ["1001", "1002", "1006", "lead"]


def chan(t: CallTracker, uid: str, channel: str, context: str, now: float, linked: str = "1.0") -> None:
    t.feed({"Event": "Newchannel", "Uniqueid": uid, "Linkedid": linked, "Channel": channel,
            "Context": context, "Exten": "95598", "CallerIDNum": "13900000001"}, now)


def dial(t: CallTracker, src: str, dest: str) -> None:
    t.feed({"Event": "DialBegin", "Uniqueid": src, "DestUniqueid": dest}, 0.0)


def local_caller_with_agent(agent_channel: str = "PJSIP/agent1001-00000002") -> CallTracker:
    t = CallTracker("pbx1")
    chan(t, "1.0", "Local/95598@hotline-00000000;1", "hotline", 1.0)
    chan(t, "1.1", "Local/95598@hotline-00000000;2", "hotline", 1.0)
    dial(t, "", "1.0")  # AMI Originate: no source channel
    chan(t, "1.2", agent_channel, "agents-out", 5.0)
    dial(t, "1.1", "1.2")
    return t


def control(t: CallTracker, ami: FakeAmi, agent: str | None = "1001", **kw: Any) -> tuple[AmiCallControl,
                                                                                         list[Event]]:
    log: list[Event] = []
    return AmiCallControl({"pbx1": t}, {"pbx1": ami}, Agents(agent), log.append, lambda: 100.0, **kw), log


async def test_blind_transfer_moves_the_half_that_dialled_the_agent() -> None:
    ami = FakeAmi()
    calls, log = control(local_caller_with_agent(), ami)
    await calls.transfer("1.0", "agent", "1002", "blind")
    # where the caller comes back to if 1002 cannot take the call, then through the CTI to 1002
    assert ami.sent == [("Setvar", {"Channel": "Local/95598@hotline-00000000;2", "Variable": "CTI_XFER",
                                    "Value": "1001/billing/normal"}),
                        ("Redirect", {"Channel": "Local/95598@hotline-00000000;2", "Context": "transfer-agent",
                                      "Exten": "1002", "Priority": "1"})]
    [ev] = log
    assert (ev.kind, ev.call_id, ev.agent_id) == (Kind.ACD_TRANSFER, "1.0", "1001")
    assert ev.data == {"target": "1002", "target_kind": "agent", "kind": "blind", "escalated": False,
                       "context": "transfer-agent"}


async def test_a_transfer_to_an_agent_the_acd_does_not_know_is_refused_before_asterisk_hears_of_it() -> None:
    """Item 19: Asterisk would dial a phone that is not there and hang the caller up."""
    ami = FakeAmi()
    calls, log = control(local_caller_with_agent(), ami)
    for kind in ("blind", "attended"):
        with pytest.raises(PortError) as refused:
            await calls.transfer("1.0", "agent", "1099", kind)  # type: ignore[arg-type]
        assert (refused.value.error_id, refused.value.status) == ("unknown-agent", 404)
    with pytest.raises(PortError) as to_self:
        await calls.transfer("1.0", "agent", "1001", "blind")
    assert (to_self.value.error_id, to_self.value.status) == ("transfer-to-self", 422)
    assert ami.sent == [] and log == []


async def test_before_any_dial_the_half_running_the_hotline_is_the_caller() -> None:
    t = CallTracker("pbx1")
    chan(t, "1.0", "Local/95598@hotline-00000000;1", "hotline", 1.0)
    chan(t, "1.1", "Local/95598@hotline-00000000;2", "hotline", 1.0)
    ami = FakeAmi()
    calls, _ = control(t, ami)
    await calls.hangup("1.0")
    assert ami.sent == [("Hangup", {"Channel": "Local/95598@hotline-00000000;2", "Cause": "16"})]


async def test_outbound_customer_who_dialled_the_agent_is_the_caller() -> None:
    """An outbound call: `;1` runs [outbound] (AGI /outbound-agent, Dial agent); `;2` is the customer."""
    t = CallTracker("pbx1")
    chan(t, "1.0", "Local/13900000002@outbound-dest-00000001;1", "outbound-dest", 1.0)
    chan(t, "1.1", "Local/13900000002@outbound-dest-00000001;2", "outbound-dest", 1.0)
    chan(t, "1.2", "PJSIP/agent1006-00000003", "agents-out", 9.0)
    dial(t, "1.0", "1.2")
    ami = FakeAmi()
    calls, _ = control(t, ami, agent="1006")
    await calls.transfer("1.0", "queue", "billing", "blind")
    assert ami.sent[0][1]["Channel"] == "Local/13900000002@outbound-dest-00000001;1"


async def test_attended_transfer_acts_on_the_agents_own_leg_and_waits_for_the_consultation() -> None:
    t = local_caller_with_agent("PJSIP/agent1001-00000002")
    chan(t, "1.3", "PJSIP/agent10010-00000003", "agents-out", 6.0)  # another agent's leg, same call
    dial(t, "1.1", "1.3")

    def atxfer(name: str, fields: Any) -> Resp:  # Asterisk dials the target from the transferer
        chan(t, "1.4", "Local/1002@agents-00000004;1", "agents", 7.0)
        return Resp()

    ami = FakeAmi(atxfer)
    calls, log = control(t, ami, agent="1001")
    await calls.transfer("1.0", "agent", "1002", "attended")
    assert ami.sent == [("Atxfer", {"Channel": "PJSIP/agent1001-00000002", "Context": "agents", "Exten": "1002"})]
    assert [e.data["kind"] for e in log] == ["attended"]


async def test_attended_transfer_that_asterisk_ignores_is_an_error_not_a_logged_transfer() -> None:
    """Atxfer answers Success even when the agent's bridge has no transfer feature (Dial without `t`)."""
    ami = FakeAmi()
    calls, log = control(local_caller_with_agent(), ami, atxfer_start_s=0.2)
    with pytest.raises(PortError) as refused:
        await calls.transfer("1.0", "agent", "1002", "attended")
    assert refused.value.error_id == "transfer-not-started"
    assert log == []


async def test_attended_transfer_to_a_queue_without_a_code_is_refused_before_asterisk_hears_of_it() -> None:
    """Atxfer sends the target as DTMF: a skill name cannot be sent, Asterisk would put the
    caller on hold, prompt the agent, time out, and answer Success all the same."""
    ami = FakeAmi()
    calls, log = control(local_caller_with_agent(), ami, queue_codes={"supervisor": "9001"})
    with pytest.raises(PortError) as refused:
        await calls.transfer("1.0", "queue", "billing", "attended", escalated=True)
    assert (refused.value.error_id, refused.value.status) == ("no-transfer-code", 422)
    with pytest.raises(PortError) as named:
        await calls.transfer("1.0", "agent", "lead", "attended")
    assert (named.value.error_id, named.value.status) == ("attended-needs-digits", 422)
    assert ami.sent == [] and log == []


class Getvar(Resp):
    def __init__(self, value: str) -> None:
        super().__init__()
        self.fields = {"Value": value}

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


async def test_escalation_dials_the_desk_code_and_carries_the_callers_cti() -> None:
    """Escalation = attended transfer to the `supervisor` queue: Atxfer to its code in [transfer-code],
    after the caller's CTI_AGI is put on the agent's leg for the consultation channel to inherit."""
    t = local_caller_with_agent("PJSIP/agent1001-00000002")

    def asterisk(name: str, fields: Any) -> Resp:
        if name == "Getvar":
            return Getvar("127.0.0.1:45731")
        if name == "Atxfer":
            chan(t, "1.4", "Local/9001@transfer-code-00000004;1", "transfer-code", 7.0)
        return Resp()

    ami = FakeAmi(asterisk)
    calls, log = control(t, ami, queue_codes={"supervisor": "9001"})
    await calls.transfer("1.0", "queue", "supervisor", "attended", escalated=True)
    assert ami.sent == [
        ("Getvar", {"Channel": "Local/95598@hotline-00000000;2", "Variable": "CTI_AGI"}),
        ("Setvar", {"Channel": "PJSIP/agent1001-00000002", "Variable": "_CTI_AGI", "Value": "127.0.0.1:45731"}),
        ("Atxfer", {"Channel": "PJSIP/agent1001-00000002", "Context": "transfer-code", "Exten": "9001"})]
    [ev] = log
    assert (ev.kind, ev.agent_id) == (Kind.ACD_TRANSFER, "1001")
    assert ev.data == {"target": "supervisor", "target_kind": "queue", "kind": "attended", "escalated": True,
                       "code": "9001", "context": "transfer-code"}


async def test_a_cti_address_that_could_inject_is_not_carried() -> None:
    t = local_caller_with_agent()

    def asterisk(name: str, fields: Any) -> Resp:
        if name == "Getvar":
            return Getvar("x\r\nAction: Originate")
        if name == "Atxfer":
            chan(t, "1.4", "Local/9001@transfer-code-00000004;1", "transfer-code", 7.0)
        return Resp()

    ami = FakeAmi(asterisk)
    calls, _ = control(t, ami, queue_codes={"supervisor": "9001"})
    await calls.transfer("1.0", "queue", "supervisor", "attended")
    assert [name for name, _ in ami.sent] == ["Getvar", "Atxfer"]


def escalated_call() -> CallTracker:
    """After an escalation completed: agent 1001's leg is gone; the consultation channel the ACD
    served (Local/9001@transfer-code) dialled the shift leader 1004, who answered."""
    t = local_caller_with_agent("PJSIP/agent1001-00000002")
    t.feed({"Event": "Newstate", "Uniqueid": "1.2", "ChannelState": "6"}, 5.5)
    chan(t, "1.4", "Local/9001@transfer-code-00000004;1", "transfer-code", 7.0)
    chan(t, "1.5", "Local/9001@transfer-code-00000004;2", "transfer-code", 7.0)
    chan(t, "1.6", "PJSIP/agent1004-00000005", "agents-out", 8.0)
    dial(t, "1.5", "1.6")
    t.feed({"Event": "Newstate", "Uniqueid": "1.6", "ChannelState": "6"}, 9.0)
    t.feed({"Event": "Hangup", "Uniqueid": "1.2", "Cause": "16"}, 12.0)
    return t


async def test_after_a_transfer_the_call_is_the_new_agents_to_control() -> None:
    ami = FakeAmi()
    calls, log = control(escalated_call(), ami, agent=None)  # the ACD closed 1001's talk
    [live] = calls.live_calls()
    assert live["agent_id"] == "1004"
    await calls.transfer("1.0", "agent", "1002", "blind")
    # the caller is still the hotline leg that dialled 1001 (gone), not the consultation leg; back to
    # 1004 if 1002 cannot take it (the ACD knows no queue for it: the dialplan's fallback queue after 1004)
    assert ami.sent == [("Setvar", {"Channel": "Local/95598@hotline-00000000;2", "Variable": "CTI_XFER",
                                    "Value": "1004//"}),
                        ("Redirect", {"Channel": "Local/95598@hotline-00000000;2", "Context": "transfer-agent",
                                      "Exten": "1002", "Priority": "1"})]
    assert log[0].agent_id == "1004"


def test_whose_call_it_is() -> None:
    legs = list(escalated_call().calls["1.0"].legs.values())
    agent_of = AgentChannels([("1001", "PJSIP/agent1001"), ("1004", "PJSIP/agent1004")])
    assert call_agent(None, legs, agent_of) == "1004"  # the agent whose leg answered last
    assert call_agent("1004", legs, agent_of) == "1004"
    t = local_caller_with_agent("PJSIP/agent1001-00000002")
    during = list(t.calls["1.0"].legs.values())
    assert call_agent("1001", during, agent_of) == "1001"  # the ACD's agent, while their leg is on
    assert call_agent(None, during, agent_of) is None  # nobody answered yet
    assert call_agent("1001", [], agent_of) == "1001"


def test_agent_channels_from_dial_strings() -> None:
    agent_of = AgentChannels([("1001", "Local/1001@sim-agents"), ("1002", "PJSIP/agent1002")])
    assert agent_of("Local/1001@sim-agents-00000003;1") == "1001"
    assert agent_of("Local/1001@sim-agents-00000003;2") == "1001"
    assert agent_of("PJSIP/agent1002-0000002a") == "1002"
    assert agent_of("PJSIP/agent1003-0000002b") == "1003"  # the usual form, even if not configured
    assert agent_of("PJSIP/agent10020-0000002c") == "10020"
    assert agent_of("Local/9001@transfer-code-00000004;1") is None
    assert agent_of("Local/95598@hotline-00000000;2") is None


class Talks:
    """The ACD runtime as the transfer listener sees it: agent 1001 talks on call 'c1'."""

    def __init__(self, state: str | None = "talking") -> None:
        self.state = state
        self.ended: list[str] = []
        self.answered: list[str] = []
        self.answered_at: list[float | None] = []
        self.engine = self

    def agent_ids(self) -> list[str]:
        return ["1001", "1004"]

    def agent_call(self, agent: str) -> str | None:
        return "c1" if agent == "1001" else None

    def call_state(self, call_id: str) -> str | None:
        return self.state if call_id == "c1" else None

    def end_talk(self, call_id: str) -> None:
        self.ended.append(call_id)
        self.state = None

    def note_answered(self, call_id: str, when: float | None = None) -> bool:
        self.answered.append(call_id)
        self.answered_at.append(when)
        return True


def test_a_completed_transfer_away_from_an_agent_ends_their_talk_once() -> None:
    acd = Talks()
    listen = transfer_listener(acd, AgentChannels([("1001", "PJSIP/agent1001")]))
    xfer = {"Event": "AttendedTransfer", "Result": "Success", "OrigTransfererChannel": "PJSIP/agent1001-00000002",
            "OrigTransfererLinkedid": "1.0"}
    listen("pbx1", {**xfer, "Result": "Fail"})
    listen("pbx1", {**xfer, "OrigTransfererChannel": "PJSIP/agent1004-00000005"})  # not on an ACD call
    listen("pbx1", {**xfer, "OrigTransfererChannel": "PJSIP/agent7777-00000005"})  # not an ACD agent
    assert acd.ended == []
    listen("pbx1", xfer)
    listen("pbx1", xfer)  # a repeat finds the talk closed
    assert acd.ended == ["c1"]
    blind = Talks()
    transfer_listener(blind, AgentChannels())("pbx1", {"Event": "BlindTransfer", "Result": "Success",
                                                       "TransfererChannel": "PJSIP/agent1001-00000002"})
    assert blind.ended == ["c1"]


def test_a_consultation_is_answered_by_its_own_id_not_the_callers() -> None:
    acd = Talks()
    listen = transfer_listener(acd, AgentChannels())
    listen("pbx1", {"Event": "DialEnd", "DialStatus": "ANSWER", "Uniqueid": "1.5", "Linkedid": "1.0",
                    "Timestamp": "1700000020.250000"})
    listen("pbx1", {"Event": "DialEnd", "DialStatus": "ANSWER", "Uniqueid": "1.0", "Linkedid": "1.0"})
    listen("pbx1", {"Event": "DialEnd", "DialStatus": "NOANSWER", "Uniqueid": "1.7", "Linkedid": "1.0"})
    assert acd.answered == ["1.5"] and acd.answered_at == [1700000020.25]  # answered when Asterisk says


async def test_refusals_and_a_lost_ami_link_are_port_errors() -> None:
    calls, log = control(local_caller_with_agent(), FakeAmi(lambda n, f: Resp(False, "No such channel")))
    with pytest.raises(PortError) as refused:
        await calls.transfer("1.0", "agent", "1002", "blind")
    assert (refused.value.error_id, refused.value.status) == ("asterisk-refused", 409)

    def down(name: str, fields: Any) -> Resp:
        raise AmiDisconnected("AMI pbx1 is not connected")

    calls, log = control(local_caller_with_agent(), FakeAmi(down))
    with pytest.raises(PortError) as lost:
        await calls.hangup("1.0")
    assert (lost.value.error_id, lost.value.status) == ("asterisk-unavailable", 503)
    with pytest.raises(PortError) as unknown:
        await calls.transfer("9.9", "agent", "1002", "blind")
    assert unknown.value.status == 404
    with pytest.raises(PortError) as bad:
        await calls.transfer("1.0", "agent", "1002\r\nAction: Originate", "blind")
    assert bad.value.status == 422
    assert log == []


async def test_a_transfer_made_with_the_phones_keys_is_logged_once_a_desktop_one_not_twice() -> None:
    calls, log = control(local_caller_with_agent(), FakeAmi())
    acd = Talks()
    listen = transfer_listener(acd, AgentChannels([("1001", "PJSIP/agent1001")]),
                               on_transfer=calls.note_completed_transfer)
    xfer = {"Event": "AttendedTransfer", "Result": "Success", "OrigTransfererChannel": "PJSIP/agent1001-00000002"}
    listen("pbx1", {**xfer, "Timestamp": "1700000030.125000"})  # nobody at the desktop started it: the phone did
    [phone] = [e for e in log if e.kind == Kind.ACD_TRANSFER]
    assert (phone.call_id, phone.agent_id, phone.data["kind"], phone.data["by"]) == ("c1", "1001", "attended",
                                                                                     "phone")
    assert phone.ts == 1700000030.125  # when Asterisk completed it
    log.clear()
    calls._desk_transfers["c1"] = calls.now()  # as transfer() records one it started
    acd.state = "talking"
    listen("pbx1", xfer)
    assert [e for e in log if e.kind == Kind.ACD_TRANSFER] == []  # logged by the desktop already
