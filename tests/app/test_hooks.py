"""Hooks are constructor arguments: the wiring builds the election first and hands its claims and leadership to
the features it builds, instead of setting attributes on them afterwards (issue 19)."""

from __future__ import annotations

import ast
import socket
from pathlib import Path

from ctiserver.app import settings
from ctiserver.app.wiring import build_server
from ctiserver.fencing import NO_CLAIMS
from ctiserver.ha.claims import LeaderClaims
from ctiserver.ha.node import Leadership, SoloLeadership

from ..production import edit_yaml, production_config

PACKAGE = Path(__file__).resolve().parents[2] / "ctiserver"
# the modules that build features and connect them: the server, its wiring, and the features' installers
ASSEMBLY = [p for p in sorted((PACKAGE / "app").glob("*.py")) if p.name != "demo.py"] + \
           sorted(PACKAGE.glob("*/feature.py"))  # demo.py: a program of its own, not the server's assembly
# (module, "object.attribute"): assignments that are no hook, each with its reason
ALLOWED = {
    # the build's result record (the live feature objects) for the demo, `serve`'s banner and the tests; no
    # feature reads it
    ("wiring.py", "server.features"),
}


def attribute_assignments(path: Path) -> list[tuple[int, str]]:
    """Every `x.attr = ...` (also `x.y.attr`, augmented and annotated) whose object is not `self`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        else:
            continue
        for target in targets:
            for t in ast.walk(target):
                if isinstance(t, ast.Attribute) and isinstance(t.ctx, ast.Store) and \
                        not (isinstance(t.value, ast.Name) and t.value.id == "self"):
                    found.append((t.lineno, ast.unparse(t)))
    return found


def test_the_assembly_sets_no_attribute_on_an_object_it_did_not_build_itself() -> None:
    assert len(ASSEMBLY) > 5 and all(p.exists() for p in ASSEMBLY)
    offences = [f"{p.relative_to(PACKAGE)}:{line}: {text} = ..." for p in ASSEMBLY
                for line, text in attribute_assignments(p) if (p.name, text) not in ALLOWED]
    assert offences == [], "hooks are constructor arguments, not attributes set after construction:\n" + \
        "\n".join(offences)


def test_the_check_finds_a_hook_set_after_construction(tmp_path: Path) -> None:
    module = tmp_path / "wiring.py"
    module.write_text("def build(acd, leadership):\n    acd.claim = leadership.claim\n"
                      "    acd.hooks.on_offer += 1\n    self_ = acd\n    self_.x: int = 1\n", encoding="utf-8")
    assert [text for _, text in attribute_assignments(module)] == ["acd.claim", "acd.hooks.on_offer", "self_.x"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_single_node_gives_every_feature_the_claims_that_claim_nothing(tmp_path: Path) -> None:
    cfg = production_config(tmp_path, _free_port())
    server = await build_server(cfg, settings.load_server(cfg), base_dir=tmp_path)
    f = server.features
    assert isinstance(server.ha, SoloLeadership) and server.recording()
    assert f.acd.claims is NO_CLAIMS and f.outbound.claims is NO_CLAIMS and not f.acd.release_on_stop
    assert "takeover" not in f.leader.names
    repair = f.extra["loop"].repair  # the crew's SMS and call, the customers' apology: given at construction
    assert repair.on_dispatch is not None and repair.on_restore is not None


async def test_an_ha_node_gives_the_acd_dialer_and_callbacks_the_claims_of_its_election(tmp_path: Path) -> None:
    cfg = production_config(tmp_path, _free_port())  # the database is never reached: nothing starts
    edit_yaml(cfg / "ctiserver.yaml", lambda d: d.update(ha={"node": "a"}) or
              d["database"].update(url="postgresql+asyncpg://cti@127.0.0.1:1/cti"))
    server = await build_server(cfg, settings.load_server(cfg), base_dir=tmp_path)
    f = server.features
    assert isinstance(server.ha, Leadership)
    assert not server.recording()  # a node records its trackers' events only while it leads
    claims = f.acd.claims
    assert isinstance(claims, LeaderClaims) and claims.leadership is server.ha
    assert f.outbound.claims is claims and f.acd.release_on_stop
    assert f.leader.names[-1] == "takeover"
