"""The sandbox Asterisk: lifecycle, least-privilege AMI, the dialplan's contracts, and agent softphones."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctiserver.sandbox import chroot as sandbox
from tests.asterisk_fixture import AmiRecorder, event_is, originate_caller
from tests.sipphone import agent_phone, digest_authorization, parse_message


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def overlay_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy-on-write twin of the cached chroot on free ports: lifecycle tests that stop,
    kill and restart Asterisk there leave the shared sandbox (and other sessions) alone."""
    lower = sandbox.ensure_chroot(None).resolve()
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "root"
    for d in (upper, work, merged):
        d.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={lower},upperdir={upper},workdir={work}", str(merged)], check=True)
    (merged / sandbox.STATE_FILE).unlink(missing_ok=True)
    monkeypatch.setenv("CTISERVER_ASTERISK_AMI_PORT", str(_free_port(socket.SOCK_STREAM)))
    monkeypatch.setenv("CTISERVER_ASTERISK_SIP_PORT", str(_free_port(socket.SOCK_DGRAM)))
    try:
        yield merged
    finally:
        sandbox.down(merged)
        subprocess.run(["umount", str(merged)], check=True)


def test_lifecycle_is_idempotent_and_recovers_from_a_killed_run(overlay_root: Path, tmp_path: Path):
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    (sounds / "abc123.wav").write_bytes(b"RIFF")
    info = sandbox.up(overlay_root, sounds_dir=sounds)
    assert info.ami_port == int(os.environ["CTISERVER_ASTERISK_AMI_PORT"]) != sandbox.AMI_PORT
    st = sandbox.status(overlay_root)
    assert st["running"] and st["ami"] and st["pids"] == [info.pid]
    mounts = st["mounts"]
    assert isinstance(mounts, list)
    assert {f"{overlay_root}/proc", f"{overlay_root}/dev", f"{overlay_root}/{sandbox.SOUNDS_IN_CHROOT}"} <= set(mounts)
    # Asterisk looks for `cti/<hash>` under its data dir: the link leads to the host's TTS cache
    seen = subprocess.run(["chroot", str(overlay_root), "cat", f"/{sandbox.SOUNDS_LINK}/abc123.wav"],
                          capture_output=True, check=True)
    assert seen.stdout == b"RIFF"
    # only our files make up /etc/asterisk
    repo_confs = {p.name for p in sandbox.config_dir().glob("*.conf")}
    assert {p.name for p in (overlay_root / "etc/asterisk").iterdir()} == repo_confs
    assert f"port = {info.ami_port}" in (overlay_root / "etc/asterisk/manager.conf").read_text()

    assert sandbox.up(overlay_root, sounds_dir=sounds).pid == info.pid  # twice: the same instance

    os.kill(info.pid, signal.SIGKILL)  # a crashed run: stale pid file and mounts stay behind
    deadline = time.monotonic() + 5
    while sandbox.status(overlay_root)["running"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sandbox.status(overlay_root)["mounts"]
    again = sandbox.up(overlay_root, sounds_dir=sounds)
    assert again.pid != info.pid and sandbox.ami_ready(port=again.ami_port)

    restarted = sandbox.restart(overlay_root)
    assert restarted.pid != again.pid and restarted.sounds_dir == str(sounds)

    sandbox.down(overlay_root)
    sandbox.down(overlay_root)  # twice: nothing left to do, no error
    st = sandbox.status(overlay_root)
    assert not st["running"] and not st["ami"] and st["mounts"] == []
    assert (sounds / "abc123.wav").exists()  # the host's cache survives the unmount


def test_installed_config_moves_only_the_ports():
    manager = (sandbox.config_dir() / "manager.conf").read_text()
    pjsip = (sandbox.config_dir() / "pjsip.conf").read_text()
    moved = sandbox.render_config("manager.conf", manager, 15038, 15060)
    assert "port = 15038" in moved and "port = 5038" not in moved
    assert moved.replace("port = 15038", "port = 5038") == manager
    assert "bind = 127.0.0.1:15060" in sandbox.render_config("pjsip.conf", pjsip, 15038, 15060)
    assert sandbox.render_config("extensions.conf", "x", 1, 2) == "x"


def test_status_reports_running_sandbox(asterisk_sandbox):
    st = sandbox.status()
    assert st["built"] is True and st["running"] is True and st["ami"] is True
    # the pid of the running instance (an earlier test may have restarted it under the session)
    assert st["state"]["pid"] in st["pids"]  # type: ignore[index,operator]


def test_up_twice_returns_the_running_instance(asterisk_sandbox):
    first = sandbox.up(sounds_dir=Path(asterisk_sandbox.sounds_dir or ""))
    again = sandbox.up(sounds_dir=Path(asterisk_sandbox.sounds_dir or ""))
    assert again.pid == first.pid


def test_mirror_comes_from_apt_sources():
    url = sandbox.apt_mirror()
    assert "://" in url and "security" not in url


async def test_ami_user_is_least_privilege(cti_ami: AmiRecorder):
    """What the CTI's AMI user may not do: run CLI commands, change or read configuration (GetConfig would
    show every secret; recordings start in the dialplan, so the user needs no `system` class)."""
    ami = cti_ami
    assert (await ami.action("Ping")).success
    for action, fields in [("Command", {"Command": "core show uptime"}),
                           ("UpdateConfig", {"SrcFilename": "manager.conf", "DstFilename": "manager.conf"}),
                           ("GetConfig", {"Filename": "manager.conf"}), ("Reload", {}),
                           ("MixMonitor", {"Channel": "PJSIP/agent1001-00000001", "File": "/tmp/x.wav"})]:
        resp = await ami.action(action, fields)
        assert not resp.success, action
        assert "Permission denied" in resp.message, (action, resp.message)
    # what it does need: listing channels for the resync after a reconnect (write=reporting)
    listing = await ami.action("CoreShowChannels")
    assert listing.success and listing.events[-1].get("Event") == "CoreShowChannelsComplete"


# events the shipped manager.conf keeps from the CTI's user (it never reads them)
FILTERED = ("VarSet", "Newexten", "SoftHangupRequest", "HangupRequest", "DTMFBegin", "DialState", "LocalBridge",
            "BridgeCreate", "BridgeEnter", "BridgeLeave", "BridgeDestroy", "MusicOnHoldStart", "MusicOnHoldStop")


async def test_local_channel_lifecycle_events(ami: AmiRecorder, cti_ami: AmiRecorder):
    await ami.setvar("AGENT_1009_MODE", "answer")
    await ami.setvar("AGENT_1009_TALK", "1")
    (await ami.action("Originate", {"Channel": "Local/1009@sim-agents", "Application": "Wait", "Data": "2",
                                     "Async": "true"})).raise_for_error()
    new = await ami.wait_for(lambda m: m.get("Event") == "Newchannel"
                             and (m.get("Channel") or "").startswith("Local/1009@sim-agents"))
    uid = new[0].get("Uniqueid")
    await ami.wait_for(event_is("Hangup", Uniqueid=uid), timeout=15)
    await cti_ami.wait_for(event_is("Hangup", Uniqueid=uid), timeout=15)
    # the eventfilters hold: the chatty events the CTI never reads do not reach its user; the tests' observer
    # (only the dialplan's chatter is filtered for it) sees them
    assert {m.get("Event") for m in ami.events} & set(FILTERED[2:])
    assert not cti_ami.matching(lambda m: m.get("Event") in FILTERED)
    assert {"Newchannel", "Newstate", "Hangup"} <= {m.get("Event") for m in cti_ami.events}


async def test_caller_falls_back_to_queue_when_cti_is_unreachable(ami: AmiRecorder):
    # Nothing listens on this AGI port: AGI fails at once and the dialplan queues the caller.
    await ami.setvar("CTI_AGI", f"127.0.0.1:{_free_port(socket.SOCK_STREAM)}")
    try:
        for other in range(1001, 1011):  # only 1002 answers, whatever an earlier test left set
            await ami.setvar(f"AGENT_{other}_MODE", "")
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


async def test_sim_caller_dtmf_reaches_agi_get_data(ami: AmiRecorder):
    """DTMF_PLAN keys, sent on the caller's side of the Local channel, arrive in the CTI's GET DATA."""
    seen: dict[str, str] = {}
    done = asyncio.Event()

    async def fastagi(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)
        for line in head.decode().splitlines():
            key, _, value = line.partition(": ")
            seen[key] = value
        writer.write(b"GET DATA beep 8000 2\n")
        seen["get_data"] = (await asyncio.wait_for(reader.readline(), 15)).decode().strip()
        writer.write(b"SET VARIABLE CTI_DONE 1\n")  # the CTI handled the call: no fallback queue
        await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        done.set()

    server = await asyncio.start_server(fastagi, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    await ami.setvar("CTI_AGI", f"127.0.0.1:{port}")
    try:
        await originate_caller(ami, "13900000042", keys="42", hold_s=15)
        await asyncio.wait_for(done.wait(), 20)
    finally:
        await ami.setvar("CTI_AGI", "127.0.0.1:4573")
        server.close()
    assert seen["agi_network_script"] == "ivr"
    assert seen["agi_callerid"] == "13900000042"
    assert seen["get_data"].startswith("200 result=42"), seen["get_data"]
    hangup = await ami.wait_for(lambda m: m.get("Event") == "Hangup"
                                and m.get("CallerIDNum") == "13900000042", timeout=15)
    linked = hangup[0].get("Linkedid")
    assert not ami.matching(lambda m: m.get("Event") == "UserEvent" and m.get("UserEvent") == "CtiFallback"
                            and m.get("Linkedid") == linked)


def test_digest_authorization_matches_rfc2617_example():
    # RFC 2617 section 3.5, with the SIP method in place of GET
    challenge = ('Digest realm="testrealm@host.com", qop="auth,auth-int", '
                 'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    value = digest_authorization(challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life",
                                 "0a4f113b")
    assert 'response="6629fae49393a05397450978507c4ef1"' in value
    assert "nc=00000001" in value and 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in value


def test_parse_message_folds_compact_headers():
    msg = parse_message(b"SIP/2.0 401 Unauthorized\r\nv: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx\r\n"
                        b"i: abc\r\nCSeq: 2 REGISTER\r\nl: 0\r\n\r\n")
    assert msg.status == 401 and msg.method == "REGISTER" and msg.header("call-id") == "abc"


async def test_softphone_registers_and_answers(asterisk_sandbox, ami: AmiRecorder):
    server = (asterisk_sandbox.ami_host, asterisk_sandbox.sip_port)
    async with agent_phone("1007", server, answer_after_s=1.0, talk_s=2.0) as phone:
        status = await ami.wait_for(lambda m: m.get("Event") == "ContactStatus"
                                    and m.get("AOR") == "agent1007"
                                    and m.get("ContactStatus") in ("Created", "NonQualified", "Reachable"))
        assert status[-1].get("URI") == phone.contact  # qualify is off: "NonQualified" means registered
        (await ami.action("Originate", {"Channel": "PJSIP/agent1007", "Application": "Playback",
                                         "Data": "tt-monkeys", "CallerID": '"热线" <95598>',
                                         "Async": "true"})).raise_for_error()
        call = await phone.wait_for_call("ended", timeout=20)
        assert call.answered_at is not None and call.ended_at is not None
        assert call.answered_at - call.invited_at >= 0.9
        assert call.ended_by == "local" and call.ended_at - call.answered_at >= 1.9
        assert "95598" in call.caller
        assert call.rtp_packets > 20  # ~50 packets a second of the prompt reached the phone
        up = await ami.wait_for(lambda m: m.get("Event") == "Newstate" and m.get("ChannelStateDesc") == "Up"
                                and (m.get("Channel") or "").startswith("PJSIP/agent1007-"))
        await ami.wait_for(event_is("Hangup", Uniqueid=up[0].get("Uniqueid")))
    # closing the phone unregisters it: the fallback queue sees the member unavailable again
    await ami.wait_for(event_is("ContactStatus", AOR="agent1007", ContactStatus="Removed"))


async def test_softphone_that_never_answers_is_cancelled(asterisk_sandbox, ami: AmiRecorder):
    server = (asterisk_sandbox.ami_host, asterisk_sandbox.sip_port)
    async with agent_phone("1008", server, answer_after_s=None) as phone:
        (await ami.action("Originate", {"Channel": "PJSIP/agent1008", "Application": "Wait", "Data": "1",
                                         "Timeout": "2000", "Async": "true"})).raise_for_error()
        call = await phone.wait_for_call("cancelled", timeout=15)
        assert call.answered_at is None and call.ended_by == "remote"
        assert 1.5 <= call.ended_at - call.invited_at < 6  # type: ignore[operator]


async def test_outbound_context_reports_digit_and_amd(ami: AmiRecorder):
    """Originate into `outbound` against scripted customers: one presses 1, one is a machine."""
    ids = {"1": f"sbx-out-1-{os.getpid()}-{time.monotonic_ns()}", "6": f"sbx-out-6-{os.getpid()}-{time.monotonic_ns()}"}
    for last, channel_id in ids.items():
        (await ami.action("Originate", {
            "Channel": f"Local/1380000000{last}@outbound-dest", "Context": "outbound", "Exten": "s",
            "Priority": "1", "ChannelId": channel_id, "Variable": ["MSG=beep"], "Timeout": "10000",
            "Async": "true"})).raise_for_error()
    human = await ami.wait_for(event_is("UserEvent", UserEvent="OutboundResult", ChannelId=ids["1"]), timeout=30)
    assert human[0].get("Digit") == "1" and human[0].get("AMDSTATUS") == "HUMAN"
    machine = await ami.wait_for(event_is("UserEvent", UserEvent="OutboundResult", ChannelId=ids["6"]), timeout=40)
    assert machine[0].get("AMDSTATUS") == "MACHINE" and machine[0].get("Digit") == ""
