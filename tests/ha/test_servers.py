"""Several Asterisk servers under one ACD, on the rig's two real Asterisks (issue 13 items 5 and 7).

- Agents belong to a server; of equally proficient agents the ACD offers the one on the caller's server,
  and rings an agent on the other server over the PJSIP trunk between them.
- Restarting one Asterisk under load: the other server's talking call is untouched; the restarted server's
  agents are out of routing (not ready, `server_down`) while it is away, so a caller arriving on the other
  server meanwhile waits rather than ringing into the void, and they are back (ready) when it has booted:
  that caller is then put through to one of them over the trunk (1008, whose own call the restart ended, or
1009, who was free). The restarted server's own calls end with
  its process (Asterisk hangs every channel up when it stops; nothing on the CTI side can keep them), and
  the ACD forgets its waiting callers instead of holding their places.
"""

from __future__ import annotations

import contextlib
import signal

from tests.asterisk_fixture import event_is, originate_caller
from tests.ha.cti import RigCti
from tests.ha.rig import Rig


def answered_by(agent: str) -> object:
    return event_is("UserEvent", UserEvent="SimAgentAnswered", Agent=agent)


async def ready(cti: RigCti, node: str, *agents: str) -> None:
    for agent in agents:
        await cti.agent(node, agent, "login")
        await cti.agent(node, agent, "ready")


async def test_equally_proficient_agents_on_the_callers_server_first_and_the_trunk_to_the_other(
        rig: Rig, cti: RigCti):
    # billing proficiency 6: 1005 on pbx1, 1008 on pbx2; 1005 has waited longer
    leader = await cti.leader()
    await cti.sim_agents("pbx1", {"1005": "answer"}, talk_s=20)
    await cti.sim_agents("pbx2", {"1008": "answer"}, talk_s=20)
    try:
        await ready(cti, leader, "1005", "1008")
        await originate_caller(cti.ami["pbx2"], "13900000501", keys="0", hold_s=40)
        await cti.ami["pbx2"].wait_for(answered_by("1008"), timeout=90)  # its own server's agent
        await originate_caller(cti.ami["pbx2"], "13900000502", keys="0", hold_s=40)
        await cti.ami["pbx1"].wait_for(answered_by("1005"), timeout=90)  # the other one, over the trunk
        trunk = cti.ami["pbx2"].matching(lambda m: m.get("Event") == "DialBegin"
                                         and (m.get("DestChannel") or "").startswith("PJSIP/pbx1-"))
        assert trunk, "the second caller was rung over the trunk from pbx2 to pbx1"
    finally:
        for rec in cti.ami.values():
            with contextlib.suppress(Exception):
                await rec.hang_up_callers()


async def test_restarting_one_asterisk_under_load(rig: Rig, cti: RigCti):
    leader = await cti.leader()
    await cti.sim_agents("pbx1", {"1001": "answer"}, talk_s=300)
    await cti.sim_agents("pbx2", {"1008": "answer"}, talk_s=300)
    try:
        # load: a call talking on each server, 1009 (pbx2) free, 1002 (pbx1) on a break of their own
        await ready(cti, leader, "1001")
        await originate_caller(cti.ami["pbx1"], "13900000511", keys="0", hold_s=300)
        talking = await cti.ami["pbx1"].wait_for(answered_by("1001"), timeout=90)
        await ready(cti, leader, "1008")
        await originate_caller(cti.ami["pbx2"], "13900000512", keys="0", hold_s=300)
        await cti.ami["pbx2"].wait_for(answered_by("1008"), timeout=90)
        await ready(cti, leader, "1009")
        await cti.agent(leader, "1002", "login")
        await cti.agent(leader, "1002", "not_ready", "lunch")
        linked = talking[0].get("Linkedid")
        seen = len(cti.ami["pbx1"].events)

        rig.stop("pbx2", signal.SIGTERM)
        await cti.wait_agents(leader, {"1009": ("not_ready", "server_down"), "1002": ("not_ready", "lunch"),
                                       "1001": ("on_call", None)})
        # a caller on pbx1 while pbx2 is away: nobody reachable is free, so they wait (no ring into the void)
        await originate_caller(cti.ami["pbx1"], "13900000513", keys="0", hold_s=300)
        (waiting,) = await cti.wait_waiting(leader, ["13900000513"])  # pbx2's callers are not held for it
        assert waiting["call_id"].startswith("pbx1-") and not waiting["ringing"]
        rig.start_pbx("pbx2")
        # back: pbx2's agents are ready again, and one of them (1008 first: billing 6) takes that caller
        answered = await cti.ami["pbx2"].wait_for(
            lambda m: event_is("UserEvent", UserEvent="SimAgentAnswered")(m) and m.get("Agent") in ("1008", "1009"),
            timeout=90)
        agent = answered[0].get("Agent")
        other = "1009" if agent == "1008" else "1008"
        await cti.wait_agents(leader, {agent: ("on_call", None), other: ("available", None)})
        # the other server's talking call went on throughout
        assert not [m for m in cti.ami["pbx1"].events[seen:]
                    if m.get("Event") == "Hangup" and m.get("Linkedid") == linked]
        channels = (await cti.ami["pbx1"].action("CoreShowChannels")).events
        assert any(m.get("Linkedid") == linked for m in channels if m.get("Event") == "CoreShowChannel")
        assert (await cti.agent_states(leader))["1001"] == ("on_call", None)
    finally:
        for rec in cti.ami.values():
            with contextlib.suppress(Exception):
                await rec.hang_up_callers()
