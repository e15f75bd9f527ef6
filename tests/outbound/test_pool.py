"""Campaign calls spread over several Asterisk servers within each one's channel limit; a server that is
down is out of dialing (ctiserver/outbound/pool.py, outbound.yaml dial.servers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ctiserver.ami.client import AmiResponse
from ctiserver.ami.message import AmiMessage
from ctiserver.clock import FakeClock
from ctiserver.events import Event, Kind
from ctiserver.outbound.model import CampaignSpec, ContactIn, OutboundConfig
from ctiserver.outbound.service import OutboundService
from tests.outbound.test_service import CFG, NOON, until


class Asterisk:
    """A server: Originate queued, Status lists what is up, `connected` says whether its AMI link is."""

    def __init__(self, name: str) -> None:
        self.name, self.connected = name, True
        self.originated: list[str] = []
        self.up: set[str] = set()

    async def action(self, name: str, fields: Mapping[str, Any] | None = None, /) -> AmiResponse:
        fields = dict(fields or {})
        if name == "Originate":
            self.originated.append(fields["ChannelId"])
            self.up.add(fields["ChannelId"])
            return AmiResponse(AmiMessage.of(Response="Success", ActionID=f"{self.name}-{len(self.originated)}"))
        events = tuple(AmiMessage.of(Event="Status", Uniqueid=u) for u in self.up)
        return AmiResponse(AmiMessage.of(Response="Success"), events)


def test_the_servers_and_their_limits_are_configured_in_outbound_yaml() -> None:
    cfg = OutboundConfig.model_validate({"dial": {"servers": [{"name": "pbx1", "max_channels": 30},
                                                              {"name": "pbx2"}]}})
    assert [(s.name, s.max_channels) for s in cfg.dial.servers] == [("pbx1", 30), ("pbx2", None)]


async def test_calls_spread_within_each_servers_limit_and_skip_a_server_that_is_down(engine: AsyncEngine) -> None:
    pbx1, pbx2 = Asterisk("pbx1"), Asterisk("pbx2")
    events: list[Event] = []
    clock = FakeClock(NOON)
    svc = OutboundService(CFG, engine, pbx1, "pbx1", clock, events.append, more_servers=[("pbx2", pbx2)],
                          max_channels={"pbx1": 1, "pbx2": 2})
    await svc.store.create_campaign(CampaignSpec.model_validate(
        {"name": "sat", "kind": "survey", "windows": ["00:00-24:00"], "survey": {"topic": "服务"},
         "pacing": {"max_concurrent": 10, "calls_per_s": 5, "burst": 5}}), NOON)
    await svc.store.add_contacts("sat", [ContactIn(f"1380000000{i}") for i in range(6)], NOON)
    assert svc.pool is not None
    await svc.start()
    try:
        await svc.store.change_state("sat", "start", NOON)
        svc.dialer.wake()
        await until(lambda: len(pbx1.originated) + len(pbx2.originated) == 3)
        assert (len(pbx1.originated), len(pbx2.originated)) == (1, 2)  # both full: the rest wait
        assert not svc.pool.ready() and svc.dialer.last_plan.blocked["servers_full"] == 3  # planned no more
        # a call on pbx1 ends: its room goes to the next contact, on pbx1
        done = pbx1.originated[0]
        pbx1.up.discard(done)
        svc.on_ami_event("pbx1", AmiMessage.of(Event="Hangup", Uniqueid=done, ChannelState="6", Cause="16"))
        await until(lambda: len(pbx1.originated) == 2)
        # pbx2's link drops: it is out of dialing; its calls end meanwhile, and pbx1 has room again
        pbx2.connected = False
        for cid in [*pbx1.up]:
            pbx1.up.discard(cid)
            svc.on_ami_event("pbx1", AmiMessage.of(Event="Hangup", Uniqueid=cid, ChannelState="6", Cause="16"))
        clock.jump(5)  # the campaigns' pace: tokens for the rest (the test is about room, not pace)
        await until(lambda: len(pbx1.originated) == 3)
        assert len(pbx2.originated) == 2  # nothing sent to the server that is down
        # pbx2 is back; the calls it dropped while away no longer count against its limit
        pbx2.up.clear()
        pbx2.connected = True
        pbx1.up.clear()  # and pbx1 (its limit 1) is busy with its third call
        pbx1.up.add(pbx1.originated[-1])
        clock.jump(5)
        svc.on_event(Event(kind=Kind.AMI_CONNECTED, ts=NOON, server="pbx2"))
        await until(lambda: len(pbx1.originated) + len(pbx2.originated) == 6)
        assert len(pbx2.originated) == 3
        assert len(set(pbx1.originated + pbx2.originated)) == 6  # each Originate once, on one server
    finally:
        await svc.stop()
