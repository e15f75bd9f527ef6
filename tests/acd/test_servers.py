"""Several Asterisk servers under one ACD (ctiserver/acd/servers.py): a call's server, same-server preference
when proficiency ties, the trunk dial string, and the agents a lost server takes away and gives back."""

from __future__ import annotations

import copy
from typing import Any

from ctiserver.acd.config import AcdConfig
from ctiserver.acd.engine import AcdEngine
from ctiserver.acd.servers import UNREACHABLE, Unreachable, server_of
from ctiserver.events import Kind

from .helpers import BASE, events, offers


def multi(agents: list[dict[str, Any]], **over: Any) -> AcdConfig:
    data = copy.deepcopy(BASE)
    data["agents"] = agents
    data.update(agent_selection="proficiency", **over)
    return AcdConfig.model_validate(data)


AGENTS = [{"id": "1001", "skills": {"billing": 7}, "server": "pbx1"},
          {"id": "1002", "skills": {"billing": 7}, "server": "pbx2"},
          {"id": "1003", "skills": {"billing": 9}, "server": "pbx2"}]


def ready(eng: AcdEngine, *agents: str, now: float = 0.0) -> None:
    for a in agents:
        eng.login(a, now, ready=True)


def test_a_call_id_names_its_server_when_asterisk_has_a_system_name():
    servers = {"pbx1", "pbx-east"}
    assert server_of("pbx1-1796331510.12", servers) == "pbx1"
    assert server_of("pbx-east-1796331510.3", servers) == "pbx-east"
    assert server_of("1796331510.12", servers) == ""  # no systemname: one server
    assert server_of("other-1796331510.12", servers) == ""


def test_of_equally_proficient_agents_the_one_on_the_callers_server_is_offered():
    eng = AcdEngine(multi(AGENTS[:2]))
    ready(eng, "1002", now=0.0)  # the longest idle: would be first without the server rule
    ready(eng, "1001", now=5.0)
    (offer,) = offers(eng.enqueue("pbx1-1.1", "billing", None, "13800000001", 10.0, server="pbx1"))
    assert offer.agent_id == "1001"
    (offer,) = offers(eng.enqueue("pbx2-1.2", "billing", None, "13800000002", 11.0, server="pbx2"))
    assert offer.agent_id == "1002"


def test_proficiency_beats_the_server_and_without_a_server_the_longest_idle_wins():
    eng = AcdEngine(multi(AGENTS))
    ready(eng, "1003", "1002", "1001")
    (offer,) = offers(eng.enqueue("pbx1-1.1", "billing", None, "13800000001", 10.0, server="pbx1"))
    assert offer.agent_id == "1003"  # proficiency 9 on pbx2 before 7 on pbx1: the trunk carries it
    eng2 = AcdEngine(multi(AGENTS[:2]))
    ready(eng2, "1002", now=0.0)
    ready(eng2, "1001", now=5.0)
    (offer,) = offers(eng2.enqueue("1.1", "billing", None, "13800000001", 10.0))
    assert offer.agent_id == "1002"


def test_the_enqueue_event_keeps_the_server_for_a_takeover():
    eng = AcdEngine(multi(AGENTS))
    ready(eng, "1001")
    (enq,) = events(eng.enqueue("pbx2-1.1", "billing", None, "13800000001", 1.0, server="pbx2"), Kind.ACD_ENQUEUE)
    assert enq.data["server"] == "pbx2"


def test_an_agent_on_another_server_is_rung_over_the_trunk_to_it():
    cfg = multi(AGENTS, dial_template="PJSIP/agent{id}")
    assert cfg.dial_string("1002", "pbx2") == "PJSIP/agent1002"
    assert cfg.dial_string("1002", "pbx1") == "PJSIP/1002@pbx2"
    assert cfg.dial_string("1002") == "PJSIP/agent1002"  # the caller's server unknown: as before
    cfg = multi(AGENTS, remote_dial_template="PJSIP/{id}@to-{server}")
    assert cfg.dial_string("1001", "pbx2") == "PJSIP/1001@to-pbx1"


def test_a_lost_server_takes_its_working_agents_and_gives_back_those_still_held():
    book = Unreachable({"1001": "pbx1", "1002": "pbx2", "1003": "pbx2", "1004": "pbx2", "1005": "pbx2"})
    states = [("1001", "available", None), ("1002", "available", None), ("1003", "not_ready", "lunch"),
              ("1004", "on_call", None), ("1005", "logged_out", None)]
    assert book.lost("pbx2", states) == ["1002", "1004"]  # a break of their own and logged out stay as they are
    assert book.down() == {"pbx2"}
    later = [("1002", "not_ready", UNREACHABLE), ("1004", "logged_out", None), ("1003", "not_ready", "lunch")]
    assert book.back("pbx2", later) == ["1002"]  # 1004 was logged out meanwhile: not brought back
    assert book.down() == set()
    assert book.back("pbx2", later) == []


def test_check_names_an_agent_server_that_ctiserver_yaml_does_not_have(tmp_path):
    import shutil

    from ctiserver.app.settings import check_all
    from tests.production import REPO, edit_yaml

    cfg = tmp_path / "config"
    shutil.copytree(REPO / "config", cfg)
    edit_yaml(cfg / "acd.yaml", lambda d: d["agents"][2].update(server="pbx9"))
    problems = [str(p) for p in check_all(cfg, now=0.0)]
    assert any("acd.yaml" in p and "agents.2.server: 'pbx9' is not an Asterisk of ctiserver.yaml (pbx1)" in p
               for p in problems), problems
