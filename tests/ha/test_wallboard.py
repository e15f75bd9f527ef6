"""A standby's wallboard is the leader's (ctiserver/ha/wallboard.py), through the shared PostgreSQL: the
leader publishes its own board, the standby serves the latest copy and says whose and how old it is."""

from __future__ import annotations

from typing import Any

from ctiserver.clock import FakeClock
from ctiserver.ha.wallboard import WallboardMirror
from ctiserver.store.engine import make_engine


class Board:
    def __init__(self, waiting: list[str]) -> None:
        self.waiting = waiting

    def snapshot(self) -> dict[str, Any]:
        return {"queues": [{"queue": "billing", "waiting": len(self.waiting)}], "agents": {"available": 1},
                "waiting_calls": [{"call_id": c, "tier": "vip" if c == "v" else "normal"} for c in self.waiting]}

    def set_priority(self, call_id: str, tier: str, by: str) -> dict[str, Any]:
        return {"call_id": call_id, "tier": tier}


class Role:
    def __init__(self, node: str, leading: bool) -> None:
        self.node, self.is_leader = node, leading

    def leading(self) -> bool:
        return self.is_leader

    def status(self) -> dict[str, Any]:
        return {"node": self.node, "epoch": 4}


async def test_the_standby_shows_the_leaders_board_and_how_old_it_is(ha_db: str) -> None:
    engine = make_engine(ha_db)
    clock = FakeClock(1_000_000.0)
    leader_board, standby_board = Board(["v", "n1", "n2"]), Board([])  # a standby's own ACD does not run
    a_role, b_role = Role("a", True), Role("b", False)
    a = WallboardMirror(leader_board, a_role, lambda: engine, clock.now, every_s=0.05)
    b = WallboardMirror(standby_board, b_role, lambda: engine, clock.now, every_s=0.05, stale_s=10)
    try:
        assert b.snapshot() == standby_board.snapshot()  # nothing published yet: its own (empty) board
        async with a.running(), b.running():
            await a.wait_rounds(2)
            await b.wait_rounds(2)
            assert a.snapshot() == leader_board.snapshot()  # the leader's is its own, never a copy
            clock.jump(2.5)
            shown = b.snapshot()
            assert shown.pop("mirror") == {"leader": "a", "epoch": 4, "age_s": 2.5, "stale": False}
            assert shown == leader_board.snapshot()
            leader_board.waiting.remove("v")  # the VIP answered on the leader: the standby follows
            await a.wait_rounds(2)  # a whole round after the change (one may have been under way)
            await b.wait_rounds(2)
            assert [c["call_id"] for c in b.snapshot()["waiting_calls"]] == ["n1", "n2"]
            a_role.is_leader = False  # the leader died: its row ages ...
            await b.wait_rounds(2)
            clock.jump(11)
            assert b.snapshot()["mirror"]["stale"] is True
            b_role.is_leader = True  # ... until the standby leads and shows (and publishes) its own
            await b.wait_rounds(2)
            assert b.snapshot() == standby_board.snapshot()
            await a.wait_rounds(2)
            assert a.snapshot()["mirror"]["leader"] == "b"
    finally:
        await engine.dispose()
