"""AmiCallControl without Asterisk: which channel each action goes to, and what it logs.

The channel layouts are the ones the sandbox really produces (tests/test_transfers_asterisk.py
checks them live): a `Local/95598@hotline` caller is two channels, and only `;2` runs the
hotline dialplan and dials the agent.
"""

from __future__ import annotations

from typing import Any

import pytest

from ctiserver.ami.errors import AmiDisconnected
from ctiserver.calls import AmiCallControl
from ctiserver.events import Event, Kind
from ctiserver.tracker import CallTracker
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
    def __init__(self, agent: str | None) -> None:
        self.agent = agent

    def call_agent(self, call_id: str) -> str | None:
        return self.agent


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
    assert ami.sent == [("Redirect", {"Channel": "Local/95598@hotline-00000000;2", "Context": "agents",
                                      "Exten": "1002", "Priority": "1"})]
    [ev] = log
    assert (ev.kind, ev.call_id, ev.agent_id) == (Kind.ACD_TRANSFER, "1.0", "1001")
    assert ev.data == {"target": "1002", "target_kind": "agent", "kind": "blind", "escalated": False}


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


async def test_attended_transfer_to_a_queue_is_refused_before_asterisk_hears_of_it() -> None:
    """Atxfer sends the target as DTMF: a skill name cannot be sent, Asterisk would put the
    caller on hold, prompt the agent, time out, and answer Success all the same."""
    ami = FakeAmi()
    calls, log = control(local_caller_with_agent(), ami)
    with pytest.raises(PortError) as refused:
        await calls.transfer("1.0", "queue", "billing", "attended", escalated=True)
    assert (refused.value.error_id, refused.value.status) == ("attended-needs-digits", 422)
    assert ami.sent == [] and log == []


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
