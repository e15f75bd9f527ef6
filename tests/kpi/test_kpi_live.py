"""Live = history: the wallboard's figures, folded event by event from a simulated day, equal the KPI report
of the same events, at the end of the day and at any moment during it (per tier, per queue, in total)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ctiserver.events import Event
from ctiserver.kpi.config import load_kpi_config
from ctiserver.kpi.live import LiveFigures
from ctiserver.kpi.report import build_report
from ctiserver.sim.scenario import load_scenario
from ctiserver.sim.simulate import simulate

ROOT = Path(__file__).resolve().parents[2]
KEYS = ("calls_offered", "answered", "service_level", "asa_s", "abandon_rate", "abandoned_counted", "in_queue")


@pytest.fixture(scope="module")
def day() -> tuple[Any, list[Event], float]:
    cfg = load_kpi_config(ROOT / "config")
    sc = load_scenario(ROOT / "config" / "scenarios" / "weekday.yaml", ROOT / "config", cfg.zone())
    res = simulate(sc, 7)
    return cfg, sorted(res.events, key=lambda e: e.ts), sc.start_ts


def pick(m: dict[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in KEYS}


async def check(cfg: Any, seen: list[Event], start: float, now: float, live: LiveFigures) -> None:
    figs = live.figures(now)["today"]
    by_tier = await build_report(seen, cfg, start, start + 86400, ["tier"], now=now)
    by_queue = await build_report(seen, cfg, start, start + 86400, ["queue"], now=now)
    assert figs["total"] == pick(by_tier["total"])
    assert figs["queues"] == {r["key"]["queue"]: pick(r["metrics"]) for r in by_queue["rows"]
                              if r["key"]["queue"] is not None}
    tiers = {t["tier"]: t for t in by_tier["tiers"] if t["tier"] is not None}
    assert set(figs["tiers"]) == set(tiers)
    for name, f in figs["tiers"].items():
        assert f["service_level"] == tiers[name]["service_level"]  # the tier's own target time
        assert f["asa_s"] == tiers[name]["asa_s"]
        assert f["abandon_rate"] == tiers[name]["abandon_rate"]
        assert f["calls_offered"] == tiers[name]["calls_offered"]


async def test_live_figures_equal_the_report_during_and_after_a_simulated_day(
        day: tuple[Any, list[Event], float]) -> None:
    cfg, evs, start = day
    live = LiveFigures(cfg)
    noon, last = start + 12 * 3600 + 600, start + 86400 - 0.001
    seen: list[Event] = []
    checked: list[float] = []
    for ev in evs:
        if not checked and ev.ts > noon:
            await check(cfg, seen, start, noon, live)  # mid-day: calls waiting, half hour under way
            figs = live.figures(noon)
            assert figs["halfhour"]["total"]["calls_offered"] > 0
            assert figs["waiting"] == figs["today"]["total"]["in_queue"]
            checked.append(noon)
        if len(checked) == 1 and ev.ts > last:
            await check(cfg, seen, start, last, live)  # the day's last moment
            assert live.figures(last)["today"]["total"]["calls_offered"] > 1000
            checked.append(last)
        live.add(ev)
        seen.append(ev)
    assert len(checked) == 2
    # After midnight the calls of the day before still finishing do not count on the new day's board.
    assert live.figures(evs[-1].ts)["today"]["total"]["calls_offered"] == 0


def figures_from_scratch(cfg: Any, seen: list[Event], now: float) -> dict[str, Any]:
    """The figures as LiveFigures computed them before it kept its sums: every call of the day, summed anew."""
    from ctiserver.kpi.builder import FactBuilder
    from ctiserver.kpi.facts import Window
    from ctiserver.kpi.live import _add, figures_of
    from ctiserver.kpi.sums import call_sums, half_hour

    live = LiveFigures(cfg)
    start, end = live.day_range(now)
    builder = FactBuilder()
    day = None
    for ev in seen:  # as LiveFigures.add forgets the calls of the days before
        if ev.call_id is None:
            continue
        d = cfg.calendar.today(ev.ts)
        if day is None or d > day:
            day = d
            builder.forget_before(cfg.calendar.at(d) - cfg.window.max_call_s)
        builder.add(ev)
    facts = builder.call_facts()
    win = Window.build(start, end, now, cfg.zone(), 86400.0)
    rows = call_sums(facts, cfg, win, ["queue", "tier"])
    hh_now = half_hour(now, win)
    out: dict[str, Any] = {}
    for label, keep in (("today", lambda r: True), ("halfhour", lambda r: r["hh"] == hh_now)):
        total: dict[str, Any] = {}
        tiers: dict[str, dict[str, Any]] = {}
        queues: dict[str, dict[str, Any]] = {}
        for r in rows:
            if keep(r):
                _add(total, r)
                if r["d_tier"] is not None:
                    _add(tiers.setdefault(r["d_tier"], {}), r)
                if r["d_queue"] is not None:
                    _add(queues.setdefault(r["d_queue"], {}), r)
        out[label] = {"total": figures_of(cfg, total or None),
                      "tiers": {t: figures_of(cfg, s, cfg.tier_targets.for_tier(t).threshold_s)
                                for t, s in sorted(tiers.items())},
                      "queues": {q: figures_of(cfg, s) for q, s in sorted(queues.items())}}
    fresh = now - cfg.window.max_call_s
    waits = [now - (f.t_enq if f.t_enq is not None else f.t0) for f in facts
             if not f.is_out and start <= f.t0 < end and f.t_ans is None and f.t_ab is None and f.t_ovf is None
             and f.t_cb is None and f.t_end is None and f.t0 >= fresh and f.t_enq is not None]
    out["waiting"] = len(waits)
    out["longest_wait_s"] = round(max(waits), 1) if waits else 0.0
    out["rows"] = sorted(rows, key=_row_key)
    return out


def _row_key(r: dict[str, Any]) -> tuple[Any, ...]:
    return r["hh"], r["d_queue"] or "", r["d_tier"] or ""


def test_kept_sums_give_the_figures_of_a_full_pass_at_every_refresh(day: tuple[Any, list[Event], float]) -> None:
    """LiveFigures keeps each call's share of the sums and redoes only the calls that changed, those still
    waiting and their callers' other calls; refreshed at random moments through a simulated day (and past
    midnight) it gives the figures and every sum (first-call resolution's too) of a pass over every call. The
    simulator's callers are made to call again (a few numbers for many calls) so first-call resolution links
    calls, some numbers change mid-call, and some callers are left waiting for ever (their share changes with
    the time alone, once `max_call_s` has passed)."""
    import random

    cfg, evs, _start = day
    rng = random.Random(5)
    numbers = [f"1380000{i:04d}" for i in range(40)]
    renamed: dict[str, str] = {}
    redone: list[Event] = []
    stuck = {ev.call_id for ev in evs if ev.kind == "acd.enqueue" and rng.random() < 0.02}
    queued: set[str | None] = set()
    for ev in evs:
        if ev.call_id in stuck and ev.call_id in queued:
            continue  # nothing after the enqueue: waiting for ever
        if ev.kind == "acd.enqueue":
            queued.add(ev.call_id)  # few callers, so calls share them; a caller named by a later event too
        if ev.call_id is not None and isinstance(ev.data, dict) and ev.kind in ("call.new", "ivr.start", "acd.enqueue"):
            who = renamed.setdefault(ev.call_id, rng.choice(numbers))
            if ev.kind == "acd.enqueue" and rng.random() < 0.1:
                who = rng.choice(numbers)
            key = "caller_num" if ev.kind == "call.new" else "caller"
            ev = Event(ev.kind, ev.ts, ev.call_id, ev.agent_id, ev.queue, ev.tier, ev.server, {**ev.data, key: who})
        redone.append(ev)
    live = LiveFigures(cfg)
    seen: list[Event] = []
    checks = 0
    for i, ev in enumerate(redone):
        live.add(ev)
        seen.append(ev)
        if rng.random() < 0.004 or i == len(redone) - 1:
            now = ev.ts + rng.choice((0.0, 30.0, 900.0, cfg.window.max_call_s + 60.0))
            got = live.figures(now)
            got["rows"] = sorted(live.rows(), key=_row_key)
            assert got == figures_from_scratch(cfg, seen, now), f"at event {i}"
            checks += 1
    assert checks > 20
