"""Random operation sequences against the engine, checked against a brute-force reading of the rules."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ctiserver.acd.engine import WAITING, AcdEngine
from ctiserver.acd.model import AcdError, Command, Offer
from ctiserver.events import Event, Kind

from .helpers import engine

AGENTS = {"1001": {"billing": 9, "fault": 3}, "1002": {"fault": 8}, "1003": {"billing": 2, "vip_desk": 7},
          "1004": {"fault": 5, "billing": 5}}
SKILLS = ["billing", "fault"]
TIERS = ["vip", "priority", "normal", "blacklist"]

op = st.one_of(
    st.tuples(st.just("enqueue"), st.sampled_from(SKILLS), st.sampled_from(TIERS),
              st.sampled_from([None, "1001", "1003"])),
    st.tuples(st.just("answer"), st.integers(0, 30)),
    st.tuples(st.just("fail"), st.integers(0, 30)),
    st.tuples(st.just("end"), st.integers(0, 30)),
    st.tuples(st.just("abandon"), st.integers(0, 30)),
    st.tuples(st.just("agent"), st.sampled_from(sorted(AGENTS)),
              st.sampled_from(["ready", "nr", "out", "in"])),
    st.tuples(st.just("callback"), st.integers(0, 30)),
    st.tuples(st.just("retier"), st.integers(0, 30), st.sampled_from(TIERS)),
    st.tuples(st.just("wait"), st.floats(0.1, 40.0)),
)


def eligible(eng: AcdEngine, agent_id: str, call: Any) -> bool:
    skills = eng._agents[agent_id].skills
    for pool, minp in call.pools:
        if pool == "@" + agent_id or (pool in skills and skills[pool] >= minp):
            return True
    return False


def check(eng: AcdEngine, cmds: list[Command]) -> None:
    for c in cmds:
        if isinstance(c, Offer) and eng.call_state(c.call_id) == "offered" \
                and eng.call_agent(c.call_id) == c.agent_id:
            assert eng.agent_state(c.agent_id)[0] in ("reserved", "ringing")
            assert eligible(eng, c.agent_id, eng._calls[c.call_id]), f"{c.agent_id} may not take {c.call_id}"
        if isinstance(c, Event) and c.kind == Kind.ACD_ENQUEUE and eng.call_state(c.call_id) == "waiting":
            assert c.call_id is not None
            assert eng.position(c.call_id, 0.0).position == c.data["position"]
    waiting = [c for c in eng._calls.values() if c.state == WAITING]
    for s in SKILLS:
        assert eng.waiting_count(s) == sum(1 for c in waiting if c.skill == s)
        states = [eng.agent_state(a)[0] for a in eng.agent_ids() if s in AGENTS[a]]
        assert eng._staffed[s] == sum(1 for st in states if st != "logged_out")
        assert eng._serving[s] == sum(1 for st in states if st not in ("logged_out", "not_ready"))
    free = [a for a in eng.agent_ids() if eng.agent_state(a)[0] == "available"]
    for a in free:
        for c in waiting:
            assert not eligible(eng, a, c), f"agent {a} is free but call {c.id} waits"
    busy = {}
    for a in eng.agent_ids():
        call = eng.agent_call(a)
        state = eng.agent_state(a)[0]
        assert (call is not None) == (state in ("reserved", "ringing", "on_call")), (a, state, call)
        if call is not None:
            assert call not in busy, "one call, two agents"
            busy[call] = a
            assert eng.call_agent(call) == a


def make_engine() -> AcdEngine:
    return engine(AGENTS, queues={"fault": {"min_proficiency": 5, "escalation": [
        {"after_s": 60, "min_proficiency": 1}, {"after_s": 120, "add_skills": ["billing"]},
        {"after_s": 180, "move_to": "billing"}]},
        "billing": {"max_wait_s": 200, "max_waiting": 6}},
        vip={"tier": "vip", "desk_skill": "vip_desk", "account_agent_wait_s": 5, "desk_wait_s": 5},
        ring_guard_s=2,
        tiers=[{"name": "vip"}, {"name": "priority", "callback_on_abandon": {"min_wait_s": 1}},
               {"name": "normal", "aging_step_s": 30},
               {"name": "blacklist", "last_resort": True, "max_wait_s": 100}])


class Walk:
    """Applies one random operation at a time and checks the invariants after each."""

    def __init__(self) -> None:
        self.eng = make_engine()
        self.now = 0.0
        self.n = 0
        self.log: list[Event] = []

    def step(self, o: tuple[Any, ...]) -> None:
        eng, now = self.eng, self.now
        calls = sorted(eng._calls)
        cmds: list[Command] = []
        try:
            if o[0] == "enqueue":
                self.n += 1
                cmds = eng.enqueue(f"c{self.n}", o[1], o[2], f"13{self.n % 5}", now, account_agent=o[3])
            elif o[0] == "wait":
                self.now += o[1]
                cmds = eng.tick(self.now)
                nd = eng.next_deadline()
                assert nd is None or nd > self.now
            elif o[0] == "agent":
                fn = {"ready": lambda: eng.set_ready(o[1], now),
                      "nr": lambda: eng.set_not_ready(o[1], "break", now),
                      "out": lambda: eng.logout(o[1], now),
                      "in": lambda: eng.login(o[1], now, ready=True)}[o[2]]
                cmds = fn()
            else:
                want = {"answer": "offered", "fail": "offered", "end": "talking"}.get(o[0])
                pool = [c for c in calls if want is None or eng.call_state(c) == want] or calls
                if not pool:
                    return
                cid = pool[o[1] % len(pool)]
                cmds = {"answer": lambda: eng.ring_answered(cid, now),
                        "fail": lambda: eng.ring_failed(cid, now),
                        "end": lambda: eng.call_ended(cid, now),
                        "abandon": lambda: eng.abandon(cid, now),
                        "callback": lambda: eng.request_callback(cid, now),
                        "retier": lambda: eng.retier(cid, o[2], now)}[o[0]]()
        except AcdError:
            pass  # an input the state does not allow: refused, and the state must still be sound
        self.log.extend(c for c in cmds if isinstance(c, Event))
        check(eng, cmds)

    def finish(self) -> None:
        enq = {e.call_id for e in self.log if e.kind == Kind.ACD_ENQUEUE}
        answered = [e.call_id for e in self.log if e.kind == Kind.ACD_ANSWER]
        assert set(answered) <= enq
        assert len(answered) == len(set(answered)), "a call answered twice"


@settings(max_examples=150, deadline=None)
@given(st.lists(op, min_size=1, max_size=80))
def test_no_free_agent_ever_idles_next_to_a_waiting_call_it_could_take(ops: list[tuple[Any, ...]]) -> None:
    walk = Walk()
    for o in ops:
        walk.step(o)
    walk.finish()


def test_long_seeded_random_walk_keeps_the_invariants() -> None:
    rnd = random.Random(5)
    walk = Walk()
    agents = sorted(AGENTS)
    for _ in range(6000):
        r = rnd.random()
        if r < 0.12:
            o: tuple[Any, ...] = ("enqueue", rnd.choice(SKILLS), rnd.choice(TIERS),
                                  rnd.choice([None, "1001"]))
        elif r < 0.45:
            o = ("wait", rnd.uniform(0.1, 15.0))
        elif r < 0.6:
            o = ("agent", rnd.choice(agents), rnd.choice(["ready", "ready", "nr", "out", "in"]))
        else:
            o = (rnd.choice(["answer", "answer", "end", "end", "fail", "abandon", "callback", "retier"]),
                 rnd.randrange(30), rnd.choice(TIERS))
        walk.step(o)
    walk.finish()
    # the walk must really connect calls (5 caller numbers recur, so a new call often takes over the
    # place of that caller's kept callback instead of adding a second waiting item)
    assert sum(1 for e in walk.log if e.kind == Kind.ACD_ANSWER) > 80
    assert any(e.kind == Kind.ACD_OVERFLOW and e.data.get("reason") == "redial" for e in walk.log)
