"""Build a week's roster with OR-Tools CP-SAT: who works which shift, covering the staffing need.

The model (docs/wfm.md says why CP-SAT): one boolean per agent, day and shift variant (pattern ×
start × meal place, shifts.py). Hard rules: at most one shift a day, the agent's patterns and
contract days, max days and paid hours a week, max consecutive days, the minimum rest between two
shifts, no shift on an unavailable day. Soft: per half hour of the week, minutes on the phones
against the requirement, in total and per queue for the agents with that skill; the objective is
the least under-staffing (weighted `UNDER_WEIGHT`) plus over-staffing. Coverage is counted in
minutes so a 15-minute break takes half an agent out of its half hour.

Reproducible: one search worker, a fixed seed and a *deterministic* time limit, so the same
inputs give the same roster on an idle laptop and on a busy CI machine. Pure: no IO, no clock.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from .shifts import DAY_SLOTS, SLOT_MIN, Agent, Assignment, Carried, RosterConfig, Variant, variants, violations

WEEK_SLOTS = 7 * DAY_SLOTS
UNDER_WEIGHT = 10


@dataclass
class Roster:
    week: dt.date  # Monday
    assignments: list[Assignment]
    need: dict[str, list[float]]  # queue -> agents on the phones required per half hour of the week
    status: str = ""
    objective: float | None = None
    solve_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def total_need(need: dict[str, list[float]]) -> list[float]:
    return [sum(v[t] for v in need.values()) for t in range(WEEK_SLOTS)]


def coverage(assignments: list[Assignment], agents: list[Agent], queue: str | None = None) -> list[float]:
    """Agents on the phones per half hour of the week (of those with skill `queue`, when given)."""
    skills = {a.id: a.skills for a in agents}
    out = [0.0] * WEEK_SLOTS
    for asg in assignments:
        if queue is not None and queue not in skills.get(asg.agent, frozenset()):
            continue
        base = asg.day * DAY_SLOTS + asg.variant.start
        for off, share in asg.variant.coverage():
            if 0 <= base + off < WEEK_SLOTS:
                out[base + off] += share
    return out


def met_share(assignments: list[Assignment], agents: list[Agent], need: dict[str, list[float]]
              ) -> tuple[float, int, int]:
    """(share, met, counted) of half hours with a requirement where the total and every queue are covered."""
    total = total_need(need)
    cov = coverage(assignments, agents)
    per_q = {q: coverage(assignments, agents, q) for q in need}
    counted = met = 0
    for t in range(WEEK_SLOTS):
        if total[t] <= 0:
            continue
        counted += 1
        if cov[t] + 1e-9 >= total[t] and all(per_q[q][t] + 1e-9 >= need[q][t] for q in need):
            met += 1
    return (met / counted if counted else 1.0), met, counted


def _groups(cfg: RosterConfig, agents: list[Agent], queues: set[str], week: dt.date) -> list[list[Agent]]:
    """Agents the cover model cannot tell apart (same queues, patterns, contract, days available)."""
    out: dict[tuple[Any, ...], list[Agent]] = {}
    for a in agents:
        off = tuple(d for d in range(7) if week + dt.timedelta(days=d) in a.unavailable)
        key = (tuple(sorted(a.skills & queues)), tuple(cfg.allowed(a)), a.days_per_week, off)
        out.setdefault(key, []).append(a)
    return list(out.values())


def _solver(seconds: float, seed: int) -> Any:
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = seed
    solver.parameters.max_deterministic_time = seconds
    return solver


def build_roster(cfg: RosterConfig, agents: list[Agent], week: dt.date, need: dict[str, list[float]], *,
                 seconds: float | None = None, seed: int = 1, before: dict[str, Carried] | None = None) -> Roster:
    """Solve; `need[q]` holds WEEK_SLOTS required agents on the phones (already grossed up for shrinkage).

    Two stages, because agents with the same skills and rules are interchangeable and a model with a
    boolean per agent spends its time on their symmetry (measured: 164 s for a 32-agent week without
    reaching 95 %): (1) how many agents of each group work each shift variant each day, against the
    coverage (integers, small); (2) per group, which agent takes which of those shifts, under the
    per-agent rules (booleans, small). The result is checked against every rule by `violations`.
    `before` (`shifts.carried` of last week's roster) carries the rest and the run of days across the
    week boundary: per agent in stage 2, and in stage 1 as the counts they allow (a Monday shift starting
    at or before s can only go to the group's agents rested enough for s; the first L days can hold at
    most n·L shifts minus one for each agent whose run would pass the limit within them).
    """
    from ortools.sat.python import cp_model

    if week.weekday() != 0:
        raise ValueError(f"a roster week starts on a Monday; {week} is not one")
    for q, per_slot_need in need.items():
        if len(per_slot_need) != WEEK_SLOTS:
            raise ValueError(f"need for {q}: {len(per_slot_need)} half hours, a week has {WEEK_SLOTS}")
    budget = seconds if seconds is not None else cfg.solver_seconds
    rules = cfg.rules
    pattern_variants = {name: variants(name, p) for name, p in cfg.patterns.items()}
    groups = _groups(cfg, agents, set(need), week)
    min_rest = math.ceil(rules.min_rest_h * 60 / SLOT_MIN - 1e-9)
    max_paid = math.floor(rules.max_hours_per_week * 60 / SLOT_MIN + 1e-9)
    k = rules.max_consecutive_days

    def too_close(v: Variant, w: Variant) -> bool:  # v on a day, w on the next
        return DAY_SLOTS + w.start - (v.start + v.length) < min_rest

    # --- stage 1: shift counts per group, day and variant --------------------------------------
    m = cp_model.CpModel()
    y: dict[tuple[int, int, Variant], Any] = {}
    slot_terms: list[list[tuple[Any, int]]] = [[] for _ in range(WEEK_SLOTS)]
    queue_terms: dict[str, list[list[tuple[Any, int]]]] = {q: [[] for _ in range(WEEK_SLOTS)] for q in need}
    for gi, g in enumerate(groups):
        n = len(g)
        rep = g[0]
        pool = [v for p in cfg.allowed(rep) for v in pattern_variants[p]]
        per_day: list[Any] = []
        for d in range(7):
            if week + dt.timedelta(days=d) in rep.unavailable:
                per_day.append(0)
                continue
            vs: list[Any] = []
            for v in pool:
                c = m.new_int_var(0, n, f"y{gi}_{d}_{v.label}")
                y[(gi, d, v)] = c
                vs.append(c)
                base = d * DAY_SLOTS + v.start
                for off, share in v.coverage():
                    t, minutes = base + off, round(share * SLOT_MIN)
                    if 0 <= t < WEEK_SLOTS and minutes:
                        slot_terms[t].append((c, minutes))
                        for q in need:
                            if q in rep.skills:
                                queue_terms[q][t].append((c, minutes))
            m.add(sum(vs) <= n)
            per_day.append(sum(vs))
        days = sum(per_day)
        if rep.days_per_week is not None:
            m.add(days == n * rep.days_per_week)
        m.add(days <= n * rules.max_days_per_week)
        m.add(sum(v.paid_slots * c for (gj, _, v), c in y.items() if gj == gi) <= n * max_paid)
        for d0 in range(0, 7 - k):
            m.add(sum(per_day[d0:d0 + k + 1]) <= n * k)
        prior = [(before or {}).get(a.id) for a in g]
        for length in range(1, min(k, 7) + 1):
            must_rest = sum(1 for c in prior if c is not None and c.run > k - length)
            if must_rest:
                m.add(sum(per_day[:length]) <= n * length - must_rest)
        monday = [v for v in pool if (gi, 0, v) in y]
        for w in monday:
            tired = sum(1 for c in prior if c is not None and c.last is not None and too_close(c.last, w))
            if tired:
                m.add(sum(y[(gi, 0, v)] for v in monday if v.start <= w.start) <= n - tired)
        for d in range(6):
            for v in pool:
                if (gi, d, v) in y:
                    bad = [y[(gi, d + 1, w)] for w in pool if (gi, d + 1, w) in y and too_close(v, w)]
                    if bad:
                        m.add(y[(gi, d, v)] + sum(bad) <= n)
    penalties = []
    total = total_need(need)
    for t in range(WEEK_SLOTS):
        req = round(total[t] * SLOT_MIN)
        # over-staffing = coverage - need + under-staffing; the coverage's sum is linear in the counts, so
        # the objective takes it directly instead of a variable per half hour (a lighter LP)
        cov = sum(c * mins for c, mins in slot_terms[t])
        penalties.append(cov)
        if req > 0:
            under = m.new_int_var(0, req, f"u{t}")
            m.add(cov + under >= req)
            penalties.append((UNDER_WEIGHT + 1) * under)
        if len(need) > 1:
            for q, per_slot in queue_terms.items():
                rq = round(need[q][t] * SLOT_MIN)
                if rq > 0:
                    uq = m.new_int_var(0, rq, f"u{q}{t}")
                    m.add(sum(c * mins for c, mins in per_slot[t]) + uq >= rq)
                    penalties.append(UNDER_WEIGHT * uq)
    m.minimize(sum(penalties))
    solver = _solver(budget * 0.8, seed)
    status = solver.solve(m)
    if status == cp_model.UNKNOWN:  # no solution within the budget: once more with four times as long
        solver = _solver(budget * 3.2, seed)
        status = solver.solve(m)
    name = solver.status_name(status)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise ValueError(f"no roster satisfies the rules ({name}): check contract days against availability")
    wall = solver.wall_time
    objective = solver.objective_value
    counts = {key: solver.value(c) for key, c in y.items() if solver.value(c) > 0}

    # --- stage 2: who works which of those shifts ----------------------------------------------
    chosen: list[Assignment] = []
    unfilled = 0
    for gi, g in enumerate(groups):
        shifts = {(d, v): c for (gj, d, v), c in counts.items() if gj == gi}
        if not shifts:
            continue
        m2 = cp_model.CpModel()
        x: dict[tuple[int, int, Variant], Any] = {}
        for ai in range(len(g)):
            for (d, v) in shifts:
                x[(ai, d, v)] = m2.new_bool_var(f"x{ai}_{d}_{v.label}")
        for (d, v), c in shifts.items():
            m2.add(sum(x[(ai, d, v)] for ai in range(len(g))) <= c)
        filled = []
        for ai, a in enumerate(g):
            per_day = [sum(b for (aj, d, _), b in x.items() if aj == ai and d == day) for day in range(7)]
            for e in per_day:
                m2.add(e <= 1)
            if a.days_per_week is not None:
                m2.add(sum(per_day) == a.days_per_week)
            m2.add(sum(per_day) <= rules.max_days_per_week)
            m2.add(sum(v.paid_slots * b for (aj, _, v), b in x.items() if aj == ai) <= max_paid)
            for d0 in range(0, 7 - k):
                m2.add(sum(per_day[d0:d0 + k + 1]) <= k)
            mine = (before or {}).get(a.id)
            if mine is not None and mine.run and k - mine.run + 1 <= 7:  # a day off within the first ones
                first = max(1, k - mine.run + 1)
                m2.add(sum(per_day[:first]) <= first - 1)
            if mine is not None and mine.last is not None:
                last = mine.last
                for (aj, d, v), b in x.items():
                    if aj == ai and d == 0 and too_close(last, v):
                        m2.add(b == 0)
            for (aj, d, v), b in x.items():
                if aj != ai:
                    continue
                bad = [b2 for (aj2, d2, w), b2 in x.items() if aj2 == ai and d2 == d + 1 and too_close(v, w)]
                if bad:
                    m2.add(b + sum(bad) <= 1)
            filled += [v.paid_slots * b for (aj, _, v), b in x.items() if aj == ai]
        m2.maximize(sum(filled))
        s2 = _solver(max(budget * 0.2 / len(groups), 0.5), seed)
        st2 = s2.solve(m2)
        wall += s2.wall_time
        if st2 not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            raise ValueError(f"no assignment of agents to shifts ({s2.status_name(st2)}): check contract days")
        got = [(ai, d, v) for (ai, d, v), b in x.items() if s2.boolean_value(b)]
        unfilled += sum(shifts.values()) - len(got)
        chosen += [Assignment(g[ai].id, d, v) for ai, d, v in got]
    chosen.sort(key=lambda s: (s.agent, s.day))
    roster = Roster(week, chosen, need, name, objective, wall)
    if unfilled:
        roster.notes.append(f"{unfilled} shift(s) of the cover plan could not be given to an agent under the rules")
    broken = violations(chosen, cfg, agents, week, before)
    if broken:  # the model and the checker disagree: a bug; say so rather than hand out a bad roster
        raise AssertionError("the solver's roster breaks rules: " + "; ".join(broken))
    return roster


def need_from_staffing(needs: list[Any], week: dt.date, shrinkage: float) -> dict[str, list[float]]:
    """Staffing rows (SlotNeed) of the week -> queue -> required agents on the phones per half hour,
    grossed up by the shrinkage the roster does not place itself (meetings, training, absence)."""
    out: dict[str, list[float]] = {}
    for n in needs:
        d = (dt.date.fromisoformat(n.day) - week).days
        if 0 <= d < 7:
            out.setdefault(n.queue, [0.0] * WEEK_SLOTS)[d * DAY_SLOTS + n.slot] = n.required / (1.0 - shrinkage)
    return out


def _hhmm(slot: int) -> str:
    slot %= DAY_SLOTS
    return f"{slot // 2:02d}:{(slot % 2) * 30:02d}"


def assignment_row(asg: Assignment, week: dt.date, agents: dict[str, Agent] | None = None) -> dict[str, Any]:
    v = asg.variant
    a = (agents or {}).get(asg.agent)
    return {"agent": asg.agent, "name": a.name if a else "", "team": a.team if a else "",
            "date": (week + dt.timedelta(days=asg.day)).isoformat(), "day": asg.day, "pattern": v.pattern,
            "start": _hhmm(v.start), "end": _hhmm(v.start + v.length),
            "meal": _hhmm(v.start + v.meal[0]) if v.meal else None, "paid_h": v.paid_slots * SLOT_MIN / 60}


def to_doc(r: Roster, agents: list[Agent]) -> dict[str, Any]:
    """The roster as JSON-ready data (what is saved, served and exported)."""
    by_id = {a.id: a for a in agents}
    share, met, counted = met_share(r.assignments, agents, r.need)
    return {"week": r.week.isoformat(), "status": r.status, "objective": r.objective, "solve_s": round(r.solve_s, 2),
            "notes": r.notes, "met_share": round(share, 4), "met": met, "counted": counted,
            "assignments": [assignment_row(a, r.week, by_id) for a in r.assignments],
            "need": {q: [round(x, 3) for x in v] for q, v in r.need.items()}}


def variant_for(cfg: RosterConfig, pattern: str, start: str, meal: str | None) -> Variant:
    """The pattern's variant starting at `start` with its meal at `meal`; ValueError when it has none."""
    from .shifts import hhmm_slot

    if pattern not in cfg.patterns:
        raise ValueError(f"unknown pattern {pattern!r} (patterns: {', '.join(sorted(cfg.patterns)) or 'none'})")
    s = hhmm_slot(start)
    for v in variants(pattern, cfg.patterns[pattern]):
        if v.start == s and ((not v.meal and meal is None) or (v.meal and meal is not None
                                                                  and v.start + v.meal[0] == hhmm_slot(meal))):
            return v
    raise ValueError(f"pattern {pattern} has no shift starting {start}" + (f" with its meal at {meal}" if meal else ""))


def from_doc(doc: dict[str, Any], cfg: RosterConfig) -> Roster:
    """A saved roster back (its shifts must still be variants of wfm.yaml's patterns)."""
    week = dt.date.fromisoformat(doc["week"])
    assignments = [Assignment(str(row["agent"]), int(row["day"]),
                              variant_for(cfg, row["pattern"], row["start"], row.get("meal")))
                   for row in doc.get("assignments", [])]
    need = {q: [float(x) for x in v] for q, v in doc.get("need", {}).items()}
    return Roster(week, assignments, need, str(doc.get("status", "")), doc.get("objective"),
                  float(doc.get("solve_s", 0.0)), list(doc.get("notes", [])))


def coverage_rows(r: Roster, agents: list[Agent]) -> list[dict[str, Any]]:
    """Per half hour of the week: required and rostered agents on the phones, in total and per queue."""
    total = total_need(r.need)
    cov = coverage(r.assignments, agents)
    per_q = {q: coverage(r.assignments, agents, q) for q in r.need}
    rows = []
    for t in range(WEEK_SLOTS):
        row: dict[str, Any] = {"date": (r.week + dt.timedelta(days=t // DAY_SLOTS)).isoformat(),
                               "time": _hhmm(t), "required": round(total[t], 2), "rostered": round(cov[t], 2),
                               "gap": round(cov[t] - total[t], 2)}
        for q in sorted(r.need):
            row[f"{q}_required"] = round(r.need[q][t], 2)
            row[f"{q}_skilled"] = round(per_q[q][t], 2)
        row["met"] = cov[t] + 1e-9 >= total[t] and all(per_q[q][t] + 1e-9 >= r.need[q][t] for q in r.need)
        rows.append(row)
    return rows
