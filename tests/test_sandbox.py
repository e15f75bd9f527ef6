"""The sandbox Asterisk: up/status/down, least-privilege AMI, and the no-caller-dropped fallback."""

from __future__ import annotations

from pathlib import Path

from ctiserver import sandbox
from tests.asterisk_fixture import AmiRecorder, event_is, originate_caller


def test_status_reports_running_sandbox(asterisk_sandbox):
    st = sandbox.status()
    assert st["built"] is True and st["running"] is True and st["ami"] is True
    assert asterisk_sandbox.pid in st["pids"]  # type: ignore[operator]


def test_up_twice_returns_the_running_instance(asterisk_sandbox):
    again = sandbox.up(sounds_dir=Path(asterisk_sandbox.sounds_dir or ""))
    assert again.pid == asterisk_sandbox.pid


def test_mirror_comes_from_apt_sources():
    url = sandbox.apt_mirror()
    assert "://" in url and "security" not in url


async def test_ami_user_is_least_privilege(ami: AmiRecorder):
    assert (await ami.action("Ping")).success
    for action, fields in [("Command", {"Command": "core show uptime"}),
                           ("CoreStatus", {}),
                           ("GetConfig", {"Filename": "manager.conf"})]:
        resp = await ami.action(action, fields)
        assert not resp.success, action
        assert "Permission denied" in resp.message


async def test_local_channel_lifecycle_events(ami: AmiRecorder):
    await ami.setvar("AGENT_1009_MODE", "answer")
    await ami.setvar("AGENT_1009_TALK", "1")
    (await ami.action("Originate", {"Channel": "Local/1009@sim-agents", "Application": "Wait", "Data": "2",
                                     "Async": "true"})).raise_for_error()
    new = await ami.wait_for(lambda m: m.get("Event") == "Newchannel"
                             and (m.get("Channel") or "").startswith("Local/1009@sim-agents"))
    uid = new[0].get("Uniqueid")
    await ami.wait_for(event_is("Hangup", Uniqueid=uid), timeout=15)


async def test_caller_falls_back_to_queue_when_cti_is_unreachable(ami: AmiRecorder):
    # Nothing listens on this AGI port: AGI fails at once and the dialplan queues the caller.
    await ami.setvar("CTI_AGI", "127.0.0.1:4999")
    try:
        await ami.setvar("AGENT_1002_MODE", "answer")
        await ami.setvar("AGENT_1002_TALK", "1")
        await originate_caller(ami, "13800000077", "w1", name="李四", hold_s=10)
        fallback = await ami.wait_for(event_is("UserEvent", UserEvent="CtiFallback"))
        assert fallback[0].get("AgiStatus") == "FAILURE"
        join = await ami.wait_for(event_is("QueueCallerJoin", Queue="fallback"))
        assert join[0].get("CallerIDName") == "李四"
        connect = await ami.wait_for(event_is("AgentConnect", Queue="fallback"), timeout=30)
        assert "1002@sim-agents" in (connect[0].get("Interface") or connect[0].get("MemberName") or "")
    finally:
        await ami.setvar("AGENT_1002_MODE", "")
        await ami.setvar("CTI_AGI", "127.0.0.1:4573")
