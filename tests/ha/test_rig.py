"""The HA rig itself (tests/ha/rig.py): two nodes and two Asterisks in their namespaces, talking over the bridge.

A caller on pbx2 reaches agent 1001 (on pbx1, over the trunk) through the leading node; with that node killed
(-9), the standby takes the lease over and the next caller's dialplan finds it, which serves them. Teardown
(conftest) checks that removing the rig leaves nothing behind.
"""

from __future__ import annotations

import signal

from tests.asterisk_fixture import event_is, originate_caller
from tests.ha.cti import RigCti, until
from tests.ha.rig import Rig


def answered_by(agent: str) -> object:
    return event_is("UserEvent", UserEvent="SimAgentAnswered", Agent=agent)


async def test_callers_reach_agents_through_the_leader_and_through_the_standby_once_it_took_over(rig: Rig, cti: RigCti):
    for node in rig.nodes:
        health = rig.health(node)
        assert {name: link["connected"] for name, link in health["ami"].items()} == {"pbx1": True, "pbx2": True}
    leader = await cti.leader()
    standby = next(n for n in rig.nodes if n != leader)
    await cti.sim_agents("pbx1", {"1001": "answer"}, talk_s=2)
    await cti.agent(leader, "1001", "login")
    await cti.agent(leader, "1001", "ready")
    await originate_caller(cti.ami["pbx2"], "13900000401", keys="0", hold_s=30)
    await cti.ami["pbx1"].wait_for(answered_by("1001"), timeout=90)  # rung on pbx1 from pbx2's caller

    rig.stop(leader, signal.SIGKILL)
    await until(f"{standby} leads", lambda: rig.role(standby) == "leader")  # without HA it always did
    await cti.sim_agents("pbx1", {"1002": "answer"}, talk_s=2)
    await cti.agent(standby, "1002", "login")
    await cti.agent(standby, "1002", "ready")
    await originate_caller(cti.ami["pbx1"], "13900000402", keys="0", hold_s=30)
    await cti.ami["pbx1"].wait_for(answered_by("1002"), timeout=90)
    for rec in cti.ami.values():
        assert not rec.matching(event_is("UserEvent", UserEvent="CtiFallback"))
