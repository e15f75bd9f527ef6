"""The forecast on generated history whose seasonality the test knows, and on a simulated quarter."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest

from ctiserver.calendar import Calendar, load_calendar
from ctiserver.events import Event
from ctiserver.wfm.forecast import ForecastError, forecast_queue, special
from ctiserver.wfm.history import SLOTS, QueueHistory, build_history
from ctiserver.wfm.render import FORMATTERS
from ctiserver.wfm.report import forecast_result
from ctiserver.wfm.synth import generate

ROOT = Path(__file__).resolve().parents[2]
CAL = load_calendar(ROOT / "config")  # the repository's calendar: 2026's holidays and make-up days
FIRST = dt.date(2026, 6, 29)  # a Monday; 13 weeks of history end on Sunday 2026-09-27


def _mape(pairs: list[tuple[float, float]]) -> float:
    return sum(abs(p - a) / a for p, a in pairs) / len(pairs)


def test_known_seasonality_holidays_and_outage() -> None:
    """13 weeks with a Monday peak, quiet weekends, 中秋 holidays, a make-up Sunday and one outage day:
    the two weeks after (国庆 included, with the make-up Saturday 10-10) are forecast near the truth."""
    outage = dt.date(2026, 9, 14)  # a Monday with three times the calls (a storm)
    h, truth = generate(CAL, "billing", FIRST, 91, outages={outage: 3.0}, seed=7)
    t0 = time.perf_counter()
    fc = forecast_queue(h, CAL, dt.date(2026, 9, 28), 14, {outage})
    took = time.perf_counter() - t0
    print(f"forecast of 14 days from 91 days of history (+ held-out week): {took:.2f} s")
    days = [(fc.day_total(d), truth.day_total(d)) for d in fc.days]
    print("day MAPE against the truth:", round(_mape(days), 4))
    assert _mape(days) < 0.08
    # the holidays of 国庆 are forecast like quiet days, the make-up Saturday like a working day
    holiday, makeup, monday = dt.date(2026, 10, 6), dt.date(2026, 10, 10), dt.date(2026, 9, 28)
    assert special(CAL, holiday) == "holiday_on_workday" and special(CAL, makeup) == "makeup"
    assert fc.day_total(holiday) < 0.45 * fc.day_total(dt.date(2026, 9, 29))
    assert abs(fc.day_total(makeup) / truth.day_total(makeup) - 1) < 0.12
    # the outage Monday did not inflate Mondays
    assert abs(fc.day_total(monday) / truth.day_total(monday) - 1) < 0.08
    # intraday shape: the 10:00 peak beats 03:00 by far on a working day; handle time near 240 s
    assert fc.calls[(monday, 20)] > 20 * fc.calls[(monday, 6)]
    assert abs(fc.aht_s[(monday, 20)] / 240.0 - 1) < 0.1
    # half-hour accuracy against the truth
    hh = [(fc.calls[(d, s)], truth.calls[(d, s)]) for d in fc.days for s in range(SLOTS) if truth.calls[(d, s)] > 5]
    assert _mape(hh) < 0.12
    # the held-out week (09-21..27, with 中秋 but no holiday seen before it) is measured and reported
    assert fc.accuracy is not None and fc.accuracy.start == dt.date(2026, 9, 21)
    assert fc.accuracy.wape_day is not None and fc.accuracy.wape_half_hour is not None


def test_held_out_week_accuracy_on_a_plain_week() -> None:
    """History ending before any holiday: the held-out week is ordinary and its errors are small."""
    h, truth = generate(CAL, "outage", FIRST, 63, seed=3, base=400.0)
    fc = forecast_queue(h, CAL, dt.date(2026, 8, 31), 7)
    acc = fc.accuracy
    assert acc is not None and acc.start == dt.date(2026, 8, 24)
    # Poisson noise alone: the truth's own half-hour WAPE against the same actuals (the floor)
    week = [acc.start + dt.timedelta(days=i) for i in range(7)]
    floor = sum(abs(truth.calls[(d, s)] - h.offered.get((d, s), 0.0)) for d in week for s in range(SLOTS)) / \
        sum(h.offered.get((d, s), 0.0) for d in week for s in range(SLOTS))
    print("held-out accuracy:", acc.as_dict(), "noise floor of the half-hour WAPE:", round(floor, 4))
    assert acc.wape_day is not None and acc.wape_day < 0.06
    assert acc.mape_day is not None and acc.mape_day < 0.06
    assert acc.wape_half_hour is not None and acc.wape_half_hour < 1.2 * floor
    assert acc.aht_wape_half_hour is not None and acc.aht_wape_half_hour < 0.15


def test_output_formats_carry_the_accuracy() -> None:
    h, _ = generate(CAL, "billing", FIRST, 42, seed=5, base=300.0)
    fc = forecast_queue(h, CAL, dt.date(2026, 8, 10), 14)
    result = forecast_result([fc])
    assert len(result["rows"]) == 14 * SLOTS
    table = FORMATTERS["table"](result)
    assert "held-out week from 2026-08-03" in table and "WAPE" in table
    assert FORMATTERS["csv"](result).splitlines()[0] == "queue,date,time,kind,calls,aht_s"
    assert '"wape"' in FORMATTERS["json"](result)
    daily = forecast_result([fc], by="day")
    assert len(daily["rows"]) == 14


def test_too_little_history_is_a_clear_error() -> None:
    h, _ = generate(CAL, "billing", FIRST, 5, seed=1)
    with pytest.raises(ForecastError, match="at least 7"):
        forecast_queue(h, CAL, FIRST + dt.timedelta(days=5), 7)


def test_history_from_events_counts_offered_handle_time_and_patience() -> None:
    cal = Calendar()
    t = cal.at(dt.date(2026, 9, 1), 9 * 60 + 5)  # 09:05 local: half hour 18
    evs = [Event("acd.enqueue", t, "c1", None, "billing", "vip", None, {}),
           Event("acd.enqueue", t + 60, "c2", None, "billing", None, None, {}),
           Event("acd.answer", t + 10, "c1", "a1", "billing", "vip", None, {"wait_s": 10.0}),
           Event("acd.complete", t + 200, "c1", "a1", "billing", "vip", None,
                 {"talk_s": 150.0, "hold_s": 20.0, "wrap_up_s": 30.0}),
           Event("acd.abandon", t + 90, "c2", None, "billing", None, None, {"wait_s": 30.0}),
           Event("call.new", t, "c3", None, None, None, None, {})]
    hist = build_history(((e.kind, e.ts, e.queue, e.tier, e.data) for e in evs), cal)
    h = hist["billing"]
    key = (dt.date(2026, 9, 1), 18)
    assert h.offered[key] == 2 and h.handled[key] == 1 and h.handle_s[key] == 200.0
    assert h.patience_s() == 40.0  # (10 + 30) s of waiting / 1 abandon
    assert h.tier_mix() == {"normal": 0.5, "vip": 0.5}


def _simulated_quarter() -> tuple[dict[str, QueueHistory], dict[dt.date, float]]:
    """91 days of one queue through the real ACD engine: a day's calls scaled by weekday and day kind."""
    from ctiserver.acd.config import AcdConfig
    from ctiserver.sim.scenario import Scenario, ScenarioFile
    from ctiserver.sim.simulate import simulate

    acd = AcdConfig.model_validate({"skills": ["billing"], "tiers": [{"name": "vip"}, {"name": "normal"}],
                                    "vip": {"tier": "vip", "desk_skill": None}, "ring_guard_s": 0,
                                    "redial_window_s": 0, "queue_defaults": {"wrap_up_s": 0}})
    weekday = (1.2, 1.0, 1.0, 1.0, 1.1, 0.5, 0.4)
    arrivals = {f"{h:02d}:{m:02d}": (6.0 if 9 <= h < 12 or 14 <= h < 17 else 2.0)
                for h in range(8, 20) for m in (0, 30)}
    rows: list[Any] = []
    expected: dict[dt.date, float] = {}
    for i in range(91):
        day = FIRST + dt.timedelta(days=i)
        kind = CAL.day_kind(day)
        makeup = kind == "working" and day.weekday() >= 5
        scale = 0.4 if kind == "holiday" else (1.0 if makeup else weekday[day.weekday()])
        expected[day] = scale * sum(arrivals.values())
        spec = ScenarioFile.model_validate({
            "start": f"{day.isoformat()}T00:00", "hours": 24, "arrivals": arrivals, "arrival_scale": scale,
            "skills": {"billing": 1}, "tiers": {"vip": 1, "normal": 9}, "seed": 100 + i,
            "handle_time": {"dist": "exponential", "mean_s": 180}, "patience": {"dist": "exponential", "mean_s": 60},
            "ring_time": {"dist": "fixed", "mean_s": 2}, "config_agents": False,
            "agents": [{"prefix": "a", "count": 6, "skills": {"billing": 5}, "shifts": ["07:30-21:00"]}]})
        res = simulate(Scenario(spec, acd, CAL.zone), keep_events=True)
        rows += [(e.kind, e.ts, e.queue, e.tier, e.data) for e in res.events]
    return build_history(rows, CAL), expected


def test_simulated_quarter() -> None:
    """A quarter of simulated traffic (the production ACD engine's own events): the last week held out
    and the week after forecast; accuracy printed, day totals near what the simulation was told."""
    t0 = time.perf_counter()
    hist, expected = _simulated_quarter()
    t1 = time.perf_counter()
    h = hist["billing"]
    fc = forecast_queue(h, CAL, dt.date(2026, 9, 21), 7, history_end=dt.date(2026, 9, 20))
    print(f"simulated quarter: {sum(h.offered.values()):.0f} calls in {t1 - t0:.2f} s; forecast "
          f"{time.perf_counter() - t1:.2f} s; held-out accuracy {fc.accuracy.as_dict() if fc.accuracy else None}")
    assert fc.accuracy is not None and fc.accuracy.wape_day is not None and fc.accuracy.wape_day < 0.12
    normal = [d for d in fc.days if special(CAL, d) is None]
    assert _mape([(fc.day_total(d), expected[d]) for d in normal]) < 0.12
    assert h.patience_s() is not None and 40 < (h.patience_s() or 0) < 90  # the simulation's callers wait 60 s
    assert abs(fc.aht_s[(dt.date(2026, 9, 21), 20)] / 180.0 - 1) < 0.15
