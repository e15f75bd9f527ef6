"""AgentPhones: Asterisk's device states of the agents' phones into the ACD (no Asterisk: a scripted AMI)."""

from __future__ import annotations

from typing import Any

from ctiserver.acd.engine import AcdEngine
from ctiserver.acd.runtime import AcdRuntime
from ctiserver.app.acd_routes import AgentPhones
from ctiserver.clock import FakeClock

from .helpers import config


class Reply:
    def __init__(self, events: list[dict[str, str]]) -> None:
        self.events = events


class ScriptedAmi:
    """Answers DeviceStateList with `listed`; `during` runs while the reply is on its way (a live change)."""

    connected = True

    def __init__(self, listed: list[dict[str, str]], during: Any = None) -> None:
        self.listed, self.during, self.actions = listed, during, []

    async def action(self, name: str, fields: Any = None, timeout: float | None = None) -> Reply:
        self.actions.append(name)
        if self.during is not None:
            self.during()
        return Reply(self.listed)


class Server:
    def __init__(self, ami: dict[str, ScriptedAmi]) -> None:
        self.ami = ami


def dev(device: str, state: str) -> dict[str, str]:
    return {"Event": "DeviceStateChange", "Device": device, "State": state}


def runtime(**over: Any) -> AcdRuntime:
    agents = {"1001": {"billing": 5}, "1002": {"billing": 5}, "1003": {"billing": 5}}
    rt = AcdRuntime(AcdEngine(config(agents, **over)), FakeClock(1000.0), lambda e: None)
    for a in agents:
        rt.login(a, ready=True)
    return rt


async def test_the_start_reads_every_phone_and_a_live_change_is_not_undone_by_the_list() -> None:
    rt = runtime()
    phones: AgentPhones
    ami = ScriptedAmi([dev("PJSIP/agent1001", "INUSE"), dev("PJSIP/agent1002", "NOT_INUSE"),
                       dev("PJSIP/agent1003", "UNAVAILABLE"), dev("Local/1003@sim-agents", "INUSE"),
                       dev("PJSIP/carrier", "INUSE")],
                      during=lambda: phones.on_ami("pbx1", dev("PJSIP/agent1002", "RINGING")))
    phones = AgentPhones(Server({"pbx1": ami}), rt)  # type: ignore[arg-type]
    async with phones.running():
        assert await phones.read("pbx1") >= 3
    assert "DeviceStateList" in ami.actions
    assert rt.engine.agent_state("1001") == ("on_call", "direct")
    assert rt.engine.agent_state("1002") == ("on_call", "direct")  # the live RINGING, not the listed NOT_INUSE
    assert rt.engine.agent_state("1003") == ("not_ready", "unregistered")
    phones.on_ami("pbx1", dev("PJSIP/agent1001", "NOT_INUSE"))  # stopped: nothing more is applied
    assert rt.engine.agent_state("1001") == ("on_call", "direct")


async def test_only_the_agents_own_server_and_pjsip_dial_strings_count() -> None:
    rt = runtime(agents=[{"id": "1001", "skills": {"billing": 5}, "server": "pbx2"},
                         {"id": "1002", "skills": {"billing": 5}, "dial": "Local/{id}@sim-agents"},
                         {"id": "1003", "skills": {"billing": 5}}])
    phones = AgentPhones(Server({}), rt)  # type: ignore[arg-type]
    async with phones.running():
        phones.on_ami("pbx1", dev("PJSIP/agent1001", "INUSE"))  # 1001's phone is on pbx2
        phones.on_ami("pbx1", dev("PJSIP/agent1002", "INUSE"))  # 1002 is rung through the dialplan
        phones.on_ami("pbx1", dev("PJSIP/agent1003", "ONHOLD"))
        phones.on_ami("pbx1", dev("PJSIP/agent1003", "WEIRD"))  # not a state we know: ignored
        assert [rt.engine.agent_state(a) for a in ("1001", "1002", "1003")] == \
            [("available", None), ("available", None), ("on_call", "direct")]
        phones.on_ami("pbx2", dev("PJSIP/agent1001", "BUSY"))
        assert rt.engine.agent_state("1001") == ("on_call", "direct")
