"""Chaos on the HA rig (issue 13 item 7): real `ctiserver serve` processes sharing a lease, real Asterisks,
real PostgreSQL. (kill -9 of the leader with callers waiting: scripts/failover.py, ten times over.)

Cut the leader off the network (its veth down, PostgreSQL with it): the standby takes over; after healing,
the old leader is a standby and no claim was ever made under an epoch after the next one began (no two
leaders acting).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from tests.asterisk_fixture import event_is, originate_caller
from tests.ha.cti import RigCti, until
from tests.ha.rig import PG, Rig


@pytest.fixture(scope="module")
def ha_rig() -> Iterator[Rig]:
    """The rig with the nodes sharing one lease (the other tests here run nodes alone)."""
    built = Rig(ha=True).up()
    try:
        yield built
    finally:
        built.down()
        assert built.leftovers() == [], "the rig left these behind"


@pytest.fixture
async def cti(ha_rig: Rig) -> AsyncIterator[RigCti]:
    view = RigCti(ha_rig)
    await view.start()
    try:
        yield view
    finally:
        await view.close()
        await asyncio.to_thread(view.restore)


async def epochs(rig: Rig) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(host=PG[0], port=PG[1], user=PG[2], database=rig.db)
    try:
        return [dict(r) for r in await conn.fetch("SELECT * FROM ha_epochs ORDER BY epoch")]
    finally:
        await conn.close()


async def claims_after_their_term(rig: Rig) -> list[dict[str, Any]]:
    """Claims made under an epoch at or after the moment the next epoch was acquired (two leaders acting)."""
    conn = await asyncpg.connect(host=PG[0], port=PG[1], user=PG[2], database=rig.db)
    try:
        return [dict(r) for r in await conn.fetch(
            "SELECT c.*, e.acquired_ts AS next_acquired FROM ha_claims c JOIN ha_epochs e ON e.epoch = c.epoch + 1 "
            "WHERE c.claimed_ts >= e.acquired_ts")]
    finally:
        await conn.close()


async def test_the_leader_cut_off_stops_and_the_standby_takes_over_without_overlap(ha_rig: Rig, cti: RigCti):
    rig = ha_rig
    leader = await cti.leader()
    standby = next(n for n in rig.nodes if n != leader)
    # a claim under the leader's epoch (a ring) before the cut
    await cti.sim_agents("pbx1", {"1001": "answer"}, talk_s=1)
    await cti.agent(leader, "1001", "login")
    await cti.agent(leader, "1001", "ready")
    await originate_caller(cti.ami["pbx1"], "13900000721", keys="0", hold_s=30)
    await cti.ami["pbx1"].wait_for(event_is("UserEvent", UserEvent="SimAgentAnswered", Agent="1001"), timeout=90)

    rig.cut(leader)
    await until(f"{standby} leads", lambda: rig.role(standby) == "leader", timeout=30)
    rig.heal(leader)
    await until(f"{leader} stands by", lambda: rig.role(leader) == "standby", timeout=30)
    terms = await epochs(rig)
    assert terms[-1]["holder"] == standby and terms[-1]["prev_holder"] == leader
    assert await claims_after_their_term(rig) == []
    log = rig.log_path(leader).read_text(errors="replace")
    assert f"HA: {leader} stops leading" in log
