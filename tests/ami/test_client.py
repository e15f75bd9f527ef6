"""AmiClient against a fake AMI server on loopback: login, order, isolation, pings, reconnects, no replay."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from ctiserver.ami.client import AmiClient
from ctiserver.ami.errors import AmiActionError, AmiDisconnected, AmiResponseError, AmiTimeout
from ctiserver.ami.message import AmiMessage
from ctiserver.ami.reconnect import BootMark, ConnectInfo, backoff_delay, detect_restart
from ctiserver.clock import FakeClock

from .conftest import SECRET, FakeAmi, FakeConn, frame


class Recorder:
    def __init__(self) -> None:
        self.events: list[AmiMessage] = []
        self.connects: list[ConnectInfo] = []
        self.disconnects: list[str] = []
        self.fail_every = 0
        self.slow_first = 0

    def on_event(self, msg: AmiMessage) -> None:
        self.events.append(msg)
        if self.slow_first and len(self.events) <= self.slow_first:
            time.sleep(0.002)  # a slow synchronous consumer (e.g. a stalled log handler)
        if self.fail_every and len(self.events) % self.fail_every == 0:
            raise RuntimeError("consumer bug")

    async def on_connect(self, info: ConnectInfo) -> None:
        self.connects.append(info)

    def on_disconnect(self, reason: str) -> None:
        self.disconnects.append(reason)

    def named(self, event: str) -> list[AmiMessage]:
        return [m for m in self.events if m.event == event]


async def until(cond: Callable[[], bool], limit_s: float = 5.0) -> None:
    """Poll a condition the code under test has no event for (fails the test after `limit_s`)."""
    async with asyncio.timeout(limit_s):
        while not cond():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


@asynccontextmanager
async def running(fake: FakeAmi, rec: Recorder, boot_wait_s: float = 5.0,
                  **cfg: object) -> AsyncIterator[AmiClient]:
    client = AmiClient(fake.client_config(**cfg), rec.on_event, rec.on_connect, rec.on_disconnect,
                       rng=random.Random(7), boot_wait_s=boot_wait_s)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


async def test_login_sends_events_on_and_reports_connect(fake_ami: FakeAmi) -> None:
    rec = Recorder()
    async with running(fake_ami, rec) as client:
        await client.wait_connected(5)
        await until(lambda: bool(rec.connects))
        (_, login), = fake_ami.names("Login")
        assert login.get("Username") == "cti" and login.get("Events") == "on"
        info = rec.connects[0]
        assert info.server_name == "pbx-test" and info.first and not info.restarted
        assert info.uptime is not None and info.uptime >= 3600 and info.ami_version == "11.0.0"
        st = client.status()
        assert st["connected"] is True and st["reconnects"] == 0 and st["since"] is not None
        assert rec.named("FullyBooted")  # the boot event is also an ordinary event
    assert rec.disconnects == ["client closed"]
    assert fake_ami.names("Logoff")
    assert not client.connected


async def test_wrong_secret_is_reported_and_never_logged(fake_ami: FakeAmi, caplog) -> None:
    fake_ami.secret = "another"
    rec = Recorder()
    with caplog.at_level(logging.DEBUG):
        async with running(fake_ami, rec, secret=SECRET) as client:
            await until(lambda: client.status()["connect_failures"] >= 2)
            assert not client.connected
            assert "refused" in str(client.status()["last_error"])
    assert SECRET not in caplog.text
    assert all(SECRET not in str(v) for v in client.status().values())
    assert rec.connects == [] and rec.disconnects == []


async def test_events_arrive_in_order_through_a_slow_consumer(fake_ami: FakeAmi) -> None:
    rec = Recorder()
    rec.slow_first = 50
    async with running(fake_ami, rec) as client:
        await client.wait_connected(5)
        conn = fake_ami.conns[-1]
        blob = b"".join(frame(("Event", "UserEvent"), ("UserEvent", "seq"), ("Seq", str(i)),
                              ("CallerIDName", "张三")) for i in range(2000))
        rng = random.Random(1)
        i = 0
        while i < len(blob):  # odd chunk sizes, cutting frames and characters anywhere
            n = rng.randint(1, 4000)
            conn.send(blob[i:i + n])
            i += n
            await asyncio.sleep(0)
        await until(lambda: len(rec.named("UserEvent")) == 2000)
        seqs = [int(m.require("Seq")) for m in rec.named("UserEvent")]
        assert seqs == list(range(2000))
        assert all(m.get("CallerIDName") == "张三" for m in rec.named("UserEvent"))
        assert client.connected and fake_ami.logins == 1


async def test_on_event_exception_is_logged_and_the_link_stays(fake_ami: FakeAmi, caplog) -> None:
    rec = Recorder()
    rec.fail_every = 3
    async with running(fake_ami, rec) as client:
        await client.wait_connected(5)
        with caplog.at_level(logging.ERROR):
            for i in range(30):
                fake_ami.conns[-1].send(frame(("Event", "UserEvent"), ("Seq", str(i))))
            await until(lambda: len(rec.named("UserEvent")) == 30)
        assert [int(m.require("Seq")) for m in rec.named("UserEvent")] == list(range(30))
        assert "on_event failed" in caplog.text
        resp = await client.action("Ping")
        assert resp.success and resp.get("Ping") == "Pong"
        assert fake_ami.logins == 1 and rec.disconnects == []


async def test_panoramisk_drops_the_link_when_a_callback_raises() -> None:
    """The defect we replace: the exception escapes data_received (and loses the rest of the read)."""
    from panoramisk.ami_protocol import AMIProtocol

    class Factory:
        def dispatch(self, message: object) -> None:
            raise RuntimeError("consumer bug")

    proto = AMIProtocol()
    proto.connection_made(transport=None)
    proto.factory = Factory()
    with pytest.raises(RuntimeError):
        proto.data_received(b"Event: A\r\n\r\nEvent: B\r\n\r\n")


async def test_list_action_collects_events_up_to_complete(fake_ami: FakeAmi) -> None:
    rec = Recorder()
    async with running(fake_ami, rec) as client:
        await client.wait_connected(5)
        resp = await client.action("CoreShowChannels", {})
        assert resp.success and resp.get("EventList") == "start"
        assert [m.event for m in resp.events] == ["CoreShowChannel", "CoreShowChannel",
                                                 "CoreShowChannelsComplete"]
        assert resp.events[0].get("CallerIDName") == "国网客户张三"
        assert resp.events[-1].get("ListItems") == "2"
        await client.action("Ping")  # anything queued after the list has been delivered by now
        await until(lambda: client.status()["queue_depth"] == 0)
        assert not rec.named("CoreShowChannel")  # list members go to the caller, not on_event


async def test_error_response_is_returned_and_can_be_raised(fake_ami: FakeAmi) -> None:
    rec = Recorder()
    async with running(fake_ami, rec) as client:
        await client.wait_connected(5)
        resp = await client.action("NoSuchAction", {"X": "1"})
        assert not resp.success and resp.message == "Invalid/unknown command"
        with pytest.raises(AmiResponseError, match="NoSuchAction"):
            resp.raise_for_error("NoSuchAction")


async def test_injection_and_caller_action_id_are_refused_before_sending(fake_ami: FakeAmi) -> None:
    rec = Recorder()
    async with running(fake_ami, rec) as client:
        await client.wait_connected(5)
        sent_before = len(fake_ami.actions)
        with pytest.raises(AmiActionError, match="CallerID"):
            await client.action("Originate", {"Channel": "Local/1@out",
                                              "CallerID": "95598\r\n\r\nAction: Hangup\r\nChannel: PJSIP/a"})
        with pytest.raises(AmiActionError, match="ActionID"):
            await client.action("Ping", {"ActionID": "mine"})
        await client.action("Ping")
        assert [a.get("Action") for _, a in fake_ami.actions[sent_before:]] == ["Ping"]
        assert not fake_ami.names("Hangup") and client.status()["pending_actions"] == 0


async def test_action_timeout_then_late_reply_is_dropped(fake_ami: FakeAmi) -> None:
    rec = Recorder()
    fake_ami.silent.add("coreshowchannels")
    async with running(fake_ami, rec) as client:
        await client.wait_connected(5)
        with pytest.raises(AmiTimeout) as err:
            await client.action("CoreShowChannels", {}, timeout=0.1)
        (_, late), = fake_ami.names("CoreShowChannels")
        assert err.value.action_id == late.require("ActionID")
        fake_ami.conns[-1].send_recorded("coreshowchannels.ami", late.require("ActionID"))
        fake_ami.conns[-1].send(frame(("Event", "UserEvent"), ("Seq", "after")))
        await until(lambda: bool(rec.named("UserEvent")))
        assert not rec.named("CoreShowChannel") and not rec.named("CoreShowChannelsComplete")
        assert client.connected and client.status()["pending_actions"] == 0


async def test_originate_response_event_still_reaches_on_event(fake_ami: FakeAmi) -> None:
    rec = Recorder()

    def originate(conn: FakeConn, action: AmiMessage) -> None:
        conn.respond(action, ("Message", "Originate successfully queued"))
        conn.send(frame(("Event", "OriginateResponse"), ("ActionID", action.require("ActionID")),
                        ("Response", "Failure"), ("Channel", "Local/1@out"), ("Reason", "3"),
                        ("Uniqueid", "<null>")))

    fake_ami.handlers["originate"] = originate
    async with running(fake_ami, rec) as client:
        await client.wait_connected(5)
        resp = await client.action("Originate", {"Channel": "Local/1@out", "ChannelId": "cti-out-1",
                                                 "Async": "true"})
        assert resp.message == "Originate successfully queued"
        await until(lambda: bool(rec.named("OriginateResponse")))
        assert rec.named("OriginateResponse")[0].get("Reason") == "3"


async def test_each_event_carries_when_it_was_read_by_the_clients_clock(fake_ami: FakeAmi) -> None:
    """The fallback time of an event without Asterisk's Timestamp is its receive time, from the injected
    clock, not the time a (possibly backed-up) consumer got round to it."""
    rec = Recorder()
    clock = FakeClock(1000.0)
    client = AmiClient(fake_ami.client_config(), rec.on_event, rec.on_connect, rec.on_disconnect,
                       rng=random.Random(7), clock=clock)
    await client.start()
    try:
        await client.wait_connected(5)
        conn = fake_ami.conns[-1]
        conn.send(frame(("Event", "Newchannel"), ("Uniqueid", "1.1"), ("Timestamp", "900.125")))
        await until(lambda: bool(rec.named("Newchannel")))
        clock.jump(5.0)
        conn.send(frame(("Event", "Hangup"), ("Uniqueid", "1.1")))
        await until(lambda: bool(rec.named("Hangup")))
    finally:
        await client.close()
    new, hangup = rec.named("Newchannel")[0], rec.named("Hangup")[0]
    assert (new.when, new.received) == (900.125, 1000.0)
    assert (hangup.when, hangup.timestamp) == (1005.0, None)


async def test_ping_timeout_drops_and_reconnects(fake_ami: FakeAmi) -> None:
    rec = Recorder()
    fake_ami.silent_pings_on.add(1)  # the first connection goes half-open: no Ping replies
    async with running(fake_ami, rec, ping_interval_s=0.05, ping_timeout_s=0.1) as client:
        await until(lambda: fake_ami.logins == 2 and client.connected)
        assert rec.disconnects and "Ping" in rec.disconnects[0]
        assert client.status()["reconnects"] == 1
        await until(lambda: len(rec.connects) == 2)
        assert rec.connects[1].restarted is False and rec.connects[1].first is False
        n = len(fake_ami.names("Ping"))
        await until(lambda: len(fake_ami.names("Ping")) >= n + 3)  # the new link is pinged and stays
        assert fake_ami.logins == 2


async def test_a_ping_reply_late_behind_arriving_data_keeps_the_link(fake_ami: FakeAmi) -> None:
    """A busy link is not a dead one: while bytes keep arriving, a Ping's reply may be queued behind them (a
    burst the client is still reading), so the client waits on; a silent link is dropped (test above)."""
    rec = Recorder()
    fake_ami.ping_behind_events_s = 0.5  # five Ping timeouts, events arriving all the while
    async with running(fake_ami, rec, ping_interval_s=0.05, ping_timeout_s=0.1) as client:
        await until(lambda: len(fake_ami.names("Ping")) >= 3)  # three late replies, one after the other
        await until(lambda: any(m.get("UserEvent") == "burst-20" for m in rec.named("UserEvent")))
        assert fake_ami.logins == 1 and client.connected and not rec.disconnects
        assert client.status()["reconnects"] == 0


async def test_pending_originate_fails_and_is_never_replayed(fake_ami: FakeAmi) -> None:
    rec = Recorder()
    fake_ami.silent.add("originate")  # Asterisk got it, but the link dies before the reply
    async with running(fake_ami, rec) as client:
        await client.wait_connected(5)
        task = asyncio.create_task(client.action("Originate", {"Channel": "Local/13800138000@outbound",
                                                               "ChannelId": "cti-out-7", "Async": "true"}))
        await until(lambda: bool(fake_ami.names("Originate")))
        fake_ami.drop_all()
        with pytest.raises(AmiDisconnected, match="not re-sent") as err:
            await task
        (_, sent), = fake_ami.names("Originate")
        assert err.value.action_id == sent.require("ActionID")  # for reconciliation
        await until(lambda: fake_ami.logins == 2 and client.connected)
        await client.action("Ping")  # the new session is fully working
        assert len(fake_ami.names("Originate")) == 1
        assert [n for n, _ in fake_ami.names("Originate")] == [1]


async def test_action_while_disconnected_fails_at_once(fake_ami: FakeAmi) -> None:
    rec = Recorder()
    await fake_ami.stop()
    async with running(fake_ami, rec) as client:
        with pytest.raises(AmiDisconnected):
            await client.action("Originate", {"Channel": "Local/1@out"})
        await until(lambda: client.status()["connect_failures"] >= 1)
        assert client.status()["last_error"]


async def test_restart_reconnects_with_backoff_and_is_flagged(fake_ami: FakeAmi, caplog) -> None:
    rec = Recorder()
    async with running(fake_ami, rec, reconnect_min_s=0.02, reconnect_max_s=0.16) as client:
        await until(lambda: len(rec.connects) == 1)
        with caplog.at_level(logging.DEBUG, logger="ctiserver.ami.client"):
            await fake_ami.restart(down_s=0.6)
            await until(lambda: len(rec.connects) == 2)
        assert rec.connects[1].restarted is True and rec.connects[1].uptime is not None
        assert rec.connects[1].uptime < 60
        assert rec.disconnects and "closed" in rec.disconnects[0]
        assert client.status()["reconnects"] == 1 and client.status()["connect_failures"] >= 2
        delays = [(r.args[2], r.args[1]) for r in caplog.records
                  if r.msg.startswith("AMI %s: reconnecting in")]  # type: ignore[union-attr,index]
        assert len(delays) >= 3
        for attempt, delay in delays:
            ceiling = min(0.16, 0.02 * 2 ** (attempt - 1))
            assert max(0.02, ceiling / 2) <= delay <= ceiling
        assert max(d for _, d in delays) > 0.02 * 2  # it did back off, not a fixed delay
        refused = [r for r in caplog.records if r.levelno == logging.WARNING and "Refused" in r.getMessage()]
        assert len(refused) == 1  # the same error, said once


async def test_network_blip_is_not_a_restart(fake_ami: FakeAmi) -> None:
    rec = Recorder()
    async with running(fake_ami, rec) as client:
        await until(lambda: len(rec.connects) == 1)
        fake_ami.drop_all()
        await until(lambda: len(rec.connects) == 2)
        assert rec.connects[1].restarted is False
        assert rec.disconnects == ["connection closed by Asterisk"]
        assert client.connected


async def test_shutdown_event_names_the_reason(fake_ami: FakeAmi) -> None:
    rec = Recorder()
    async with running(fake_ami, rec) as client:
        await until(lambda: len(rec.connects) == 1)
        conn = fake_ami.conns[-1]
        conn.send(frame(("Event", "Shutdown"), ("Privilege", "system,all"), ("Shutdown", "Cleanly"),
                        ("Restart", "True")))
        await until(lambda: bool(rec.named("Shutdown")))
        conn.writer.close()
        await until(lambda: bool(rec.disconnects))
        assert rec.disconnects[0] == "Asterisk shut down (Cleanly, restart=True)"
        assert client.status()["last_error"] == rec.disconnects[0]


async def test_core_status_tells_a_restart_without_fully_booted(fake_ami: FakeAmi) -> None:
    rec = Recorder()
    fake_ami.send_fully_booted = False  # a user without read=system
    fake_ami.boot_at -= 7200
    async with running(fake_ami, rec):
        await until(lambda: len(rec.connects) == 1)
        assert rec.connects[0].uptime is None and not rec.connects[0].restarted
        assert fake_ami.names("CoreStatus")
        fake_ami.drop_all()  # a blip: same startup stamp
        await until(lambda: len(rec.connects) == 2)
        assert rec.connects[1].restarted is False
        await fake_ami.restart()  # a new startup stamp
        await until(lambda: len(rec.connects) == 3)
        assert rec.connects[2].restarted is True


async def test_booting_asterisk_sends_fully_booted_late_and_the_restart_is_seen(fake_ami: FakeAmi) -> None:
    """Without CoreStatus (write= lacks system/reporting), wait for the late FullyBooted."""
    rec = Recorder()
    fake_ami.core_status_allowed = False
    async with running(fake_ami, rec):
        await until(lambda: len(rec.connects) == 1)
        await fake_ami.stop()
        fake_ami.fully_booted_delay_s = 1.0  # we log in while the new Asterisk is still booting
        await asyncio.sleep(0.2)
        await fake_ami.restart()
        await until(lambda: len(rec.connects) == 2)
        assert rec.connects[1].restarted is True
        assert rec.connects[1].uptime is not None and rec.connects[1].uptime < 60


async def test_shutdown_event_marks_the_next_session_as_a_restart(fake_ami: FakeAmi) -> None:
    rec = Recorder()
    fake_ami.send_fully_booted = False
    fake_ami.core_status_allowed = False  # no uptime, no stamp: only the Shutdown event tells
    async with running(fake_ami, rec, boot_wait_s=0.2):
        await until(lambda: len(rec.connects) == 1)
        fake_ami.conns[-1].send(frame(("Event", "Shutdown"), ("Shutdown", "Cleanly"), ("Restart", "True")))
        await until(lambda: bool(rec.named("Shutdown")))
        fake_ami.drop_all()
        await until(lambda: len(rec.connects) == 2)
        assert rec.connects[1].restarted is True
        fake_ami.drop_all()  # and a plain blip after that is not
        await until(lambda: len(rec.connects) == 3)
        assert rec.connects[2].restarted is False


async def test_on_connect_can_run_actions_and_disconnect_comes_after_old_events(fake_ami: FakeAmi) -> None:
    order: list[str] = []
    results: list[int] = []
    client: AmiClient | None = None

    async def on_connect(info: ConnectInfo) -> None:
        order.append("connect")
        assert client is not None
        resp = await client.action("CoreShowChannels")
        results.append(len(resp.events))

    def on_event(msg: AmiMessage) -> None:
        if msg.event == "UserEvent":
            order.append(f"event{msg.get('Seq')}")

    client = AmiClient(fake_ami.client_config(), on_event, on_connect, lambda r: order.append("lost"))
    await client.start()
    try:
        await until(lambda: results == [3])
        conn = fake_ami.conns[-1]
        conn.send(b"".join(frame(("Event", "UserEvent"), ("Seq", str(i))) for i in range(3)))
        await until(lambda: "event2" in order)
        fake_ami.drop_all()
        await until(lambda: results == [3, 3])
        assert order == ["connect", "event0", "event1", "event2", "lost", "connect"]
    finally:
        await client.close()


async def test_unset_secret_env_is_a_clear_error(fake_ami: FakeAmi, monkeypatch) -> None:
    monkeypatch.delenv("CTI_TEST_AMI_SECRET", raising=False)
    rec = Recorder()
    async with running(fake_ami, rec, secret=None, secret_env="CTI_TEST_AMI_SECRET") as client:
        await until(lambda: client.status()["connect_failures"] >= 1)
        assert "CTI_TEST_AMI_SECRET" in str(client.status()["last_error"])
        assert fake_ami.connections == 0


# --- pure helpers ---------------------------------------------------------------------
def test_backoff_doubles_with_jitter_inside_bounds() -> None:
    assert backoff_delay(0, 0.2, 10.0, 0.0) == 0.2
    assert backoff_delay(0, 0.2, 10.0, 1.0) == 0.2
    assert backoff_delay(3, 0.2, 10.0, 1.0) == pytest.approx(1.6)
    assert backoff_delay(3, 0.2, 10.0, 0.0) == pytest.approx(0.8)
    assert backoff_delay(50, 0.2, 10.0, 1.0) == 10.0
    assert backoff_delay(50, 0.2, 10.0, 0.0) == 5.0
    rng = random.Random(3)
    for attempt in range(100):
        assert 0.2 <= backoff_delay(attempt, 0.2, 10.0, rng.random()) <= 10.0
    assert backoff_delay(5, 2.0, 1.0, 0.5) == 2.0  # max below min: min wins, no crash


def test_restart_detection() -> None:
    assert detect_restart(None, BootMark(started_at=100.0)) is False
    assert detect_restart(BootMark(started_at=100.0), BootMark(started_at=101.5)) is False  # blip
    assert detect_restart(BootMark(started_at=100.0), BootMark(started_at=900.0)) is True
    seven, nine = BootMark(stamp="2026-11-23 07:00:00"), BootMark(stamp="2026-11-23 09:12:00")
    assert detect_restart(seven, BootMark(stamp="2026-11-23 07:00:00")) is False
    assert detect_restart(seven, nine) is True
    assert detect_restart(BootMark(started_at=1.0), BootMark(stamp="x")) is False  # cannot tell
    # a stamp is exact and wins over a drifting uptime estimate
    assert detect_restart(BootMark(started_at=1.0, stamp="a"), BootMark(started_at=60.0, stamp="a")) is False


async def test_chaos_drops_never_replay_or_leak(fake_ami: FakeAmi) -> None:
    """Links cut at random while actions fly: each action is answered or fails, none is sent twice."""
    rng = random.Random(11)
    rec = Recorder()

    def maybe_silent(conn: FakeConn, action: AmiMessage) -> None:
        if rng.random() < 0.7:  # some Originates never get their reply before the cut
            conn.respond(action, ("Message", "Originate successfully queued"))

    fake_ami.handlers["originate"] = maybe_silent
    outcomes: dict[str, str] = {}
    async with running(fake_ami, rec, action_timeout_s=0.15) as client:
        await client.wait_connected(5)

        async def caller(i: int) -> None:
            for j in range(10):
                cid = f"cti-out-{i}-{j}"
                try:
                    resp = await client.action("Originate", {"Channel": "Local/1@out", "ChannelId": cid})
                    outcomes[cid] = "ok" if resp.success else "error"
                except AmiDisconnected:
                    outcomes[cid] = "disconnected"
                except AmiTimeout:
                    outcomes[cid] = "timeout"
                await asyncio.sleep(rng.random() * 0.02)

        async def chaos() -> None:
            for _ in range(6):
                await asyncio.sleep(0.1 + rng.random() * 0.1)
                fake_ami.drop_all()

        await asyncio.gather(chaos(), *(caller(i) for i in range(4)))
        await until(lambda: client.connected)
        assert client.status()["pending_actions"] == 0
    sent = [a.require("ChannelId") for _, a in fake_ami.names("Originate")]
    assert len(sent) == len(set(sent))  # never twice
    assert len(outcomes) == 40 and set(sent) <= set(outcomes)
    assert {"ok", "disconnected"} <= set(outcomes.values())
    assert fake_ami.logins >= 4
