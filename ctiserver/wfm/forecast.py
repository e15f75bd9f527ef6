"""Forecast offered calls and handle time per queue and half hour for the coming days.

Why this shape (the usual call-centre "top-down" forecast):
1. Daily totals carry the weekly seasonality and the trend: statsmodels' Holt-Winters
   (`ExponentialSmoothing`, damped additive trend, weekly season) on the daily series.
2. Days that break the weekly rhythm come from the one calendar: a holiday on a weekday, a
   make-up workday on a weekend (调休上班). Their effect is a factor against what the same weekday
   would have been (estimated from history when it holds such days, else "a holiday is like a rest
   day, a make-up day like a working day"); the series is divided by it before fitting and the
   forecast multiplied by it after, so one 国庆 week does not teach the model a new weekly shape.
3. Outage days (a storm, a feeder fault; the caller finds them in the outage records, outage_days.py,
   which says why exclusion rather than a regressor) are replaced by what that weekday normally brings
   before fitting and left out of the profiles, the handle time and the accuracy check.
4. The daily seasonality is the intraday profile: each half hour's share of the day, per kind of
   day (working / rest / holiday, a holiday falling back to rest when history has too few).
5. Handle time: the daily AHT smoothed by statsmodels' simple exponential smoothing, times each
   half hour's AHT ratio.
Accuracy is measured honestly: the last full week of history is held out, the same procedure is
fitted on the weeks before it, and MAPE/WAPE per half hour and per day are reported.

Pure: numbers in, numbers out; no clock (the caller says from which day), no IO.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..calendar import Calendar
from .history import SLOTS, QueueHistory

PROFILE_WEEKS = 6  # weeks of history the intraday profiles and AHT ratios average over
MIN_SLOT_HANDLED = 5  # below this many handled calls a half hour's AHT ratio is 1


@dataclass(frozen=True)
class Accuracy:
    """Held-out-week errors. MAPE over half hours (days) with calls; WAPE = sum |error| / sum actual."""

    start: dt.date
    days: int
    mape_half_hour: float | None
    wape_half_hour: float | None
    mape_day: float | None
    wape_day: float | None
    aht_wape_half_hour: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "days": self.days,
                "half_hour": {"mape": _r(self.mape_half_hour), "wape": _r(self.wape_half_hour),
                              "aht_wape": _r(self.aht_wape_half_hour)},
                "day": {"mape": _r(self.mape_day), "wape": _r(self.wape_day)}}


@dataclass
class QueueForecast:
    """Expected offered calls and mean handle time per (day, half hour) for one queue."""

    queue: str
    days: list[dt.date]
    calls: dict[tuple[dt.date, int], float]
    aht_s: dict[tuple[dt.date, int], float]
    day_kind: dict[dt.date, str]
    model: str  # which daily model was fitted (for the output)
    factors: dict[str, float] = field(default_factory=dict)  # special-day factors used
    accuracy: Accuracy | None = None
    patience_s: float | None = None
    tier_mix: dict[str, float] = field(default_factory=dict)
    # days of major outages (history: kept out of the model; forecast window: announced, not in the numbers)
    outage_days: dict[dt.date, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # what the caller could not read

    def day_total(self, day: dt.date) -> float:
        return sum(self.calls.get((day, s), 0.0) for s in range(SLOTS))


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


class ForecastError(ValueError):
    """Not enough history to forecast."""


def _default_kind(calendar: Calendar, day: dt.date) -> str:
    return "rest" if day.weekday() in {("mon", "tue", "wed", "thu", "fri", "sat", "sun").index(w)
                                       for w in calendar.weekend} else "working"


def special(calendar: Calendar, day: dt.date) -> str | None:
    """'holiday_on_workday', 'holiday_on_rest' or 'makeup' when the calendar overrides the weekday, else None."""
    kind, default = calendar.day_kind(day), _default_kind(calendar, day)
    if kind == "holiday":
        return "holiday_on_workday" if default == "working" else "holiday_on_rest"
    if kind == "working" and default == "rest":
        return "makeup"
    return None


def _reference(totals: dict[dt.date, float], normal: set[dt.date], day: dt.date) -> float | None:
    """What `day`'s weekday normally brings: median of the same weekday's normal days within ±3 weeks."""
    near = [totals[day + dt.timedelta(weeks=k)] for k in (-3, -2, -1, 1, 2, 3)
            if day + dt.timedelta(weeks=k) in normal]
    return float(np.median(near)) if near else None


def _resembles(kind: str) -> str:
    """A make-up workday is measured against working days, a holiday against rest days."""
    return "working" if kind == "makeup" else "rest"


def _typical(calendar: Calendar, values: dict[dt.date, float], day: dt.date, like: str,
             allowed: set[dt.date] | None = None) -> float | None:
    """Mean of `values` on the days of `day`'s week (Monday..Sunday) whose weekday is of kind `like`;
    with `allowed`, only those days, in that week and three weeks either side (history); else only
    that week (forecast)."""
    monday = day - dt.timedelta(days=day.weekday())
    span = range(-21, 28) if allowed is not None else range(7)
    picked = [values[d] for d in (monday + dt.timedelta(days=i) for i in span)
              if d in values and (allowed is None or d in allowed) and _default_kind(calendar, d) == like]
    return float(np.mean(picked)) if picked else None


def _factors(calendar: Calendar, totals: dict[dt.date, float], normal: set[dt.date]) -> dict[str, float]:
    """Special-day factors: a make-up day against the typical working day around it, a holiday against
    the typical rest day around it; medians over history's such days, 1.0 where history has none."""
    seen: dict[str, list[float]] = {"holiday_on_workday": [], "holiday_on_rest": [], "makeup": []}
    for d, v in totals.items():
        kind = special(calendar, d)
        if kind is None:
            continue
        ref = _typical(calendar, totals, d, _resembles(kind), normal)
        if ref and ref > 0:
            seen[kind].append(v / ref)
    return {k: float(np.median(v)) if v else 1.0 for k, v in seen.items()}


def _fit_daily(series: np.ndarray, horizon: int) -> tuple[np.ndarray, str]:
    """Holt-Winters on the adjusted daily totals; simpler models when history is short."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.holtwinters import ExponentialSmoothing, SimpleExpSmoothing

    n = len(series)
    if n < 4:
        return np.full(horizon, float(series.mean()) if n else 0.0), "mean"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        if n >= 21:
            seasonal = "mul" if series.min() > 0 else "add"
            fit = ExponentialSmoothing(series, trend="add", damped_trend=True, seasonal=seasonal,
                                       seasonal_periods=7, initialization_method="estimated").fit(use_brute=False)
            name = f"Holt-Winters (damped additive trend, {'multiplicative' if seasonal == 'mul' else 'additive'} " \
                   f"weekly season)"
        elif n >= 14:
            fit = ExponentialSmoothing(series, seasonal="add", seasonal_periods=7,
                                       initialization_method="estimated").fit(use_brute=False)
            name = "Holt-Winters (additive weekly season, no trend)"
        else:
            fit = SimpleExpSmoothing(series, initialization_method="estimated").fit(use_brute=False)
            name = "simple exponential smoothing"
    out = np.asarray(fit.forecast(horizon), dtype=float)
    return np.clip(np.nan_to_num(out, nan=float(series.mean())), 0.0, None), name


def _smooth_level(series: np.ndarray) -> float:
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.holtwinters import SimpleExpSmoothing

    if len(series) < 4:
        return float(series.mean())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = SimpleExpSmoothing(series, initialization_method="estimated").fit(use_brute=False)
    value = float(np.asarray(fit.forecast(1))[0])
    return value if math.isfinite(value) and value > 0 else float(series.mean())


def _profile_kind(calendar: Calendar, day: dt.date) -> str:
    return calendar.day_kind(day)


def _profiles(h: QueueHistory, calendar: Calendar, days: list[dt.date], outages: set[dt.date]
              ) -> dict[str, np.ndarray]:
    """Each half hour's share of the day's calls per kind of day, over the last PROFILE_WEEKS weeks."""
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for d in days[-PROFILE_WEEKS * 7:]:
        if d in outages:
            continue
        kind = _profile_kind(calendar, d)
        row = np.array([h.offered.get((d, s), 0.0) for s in range(SLOTS)])
        if row.sum() <= 0:
            continue
        sums[kind] = sums.get(kind, np.zeros(SLOTS)) + row
        counts[kind] = counts.get(kind, 0) + 1
    out = {k: v / v.sum() for k, v in sums.items()}
    flat = np.full(SLOTS, 1.0 / SLOTS)
    all_days = sum(sums.values(), np.zeros(SLOTS))
    fallback = all_days / all_days.sum() if all_days.sum() > 0 else flat
    out.setdefault("working", fallback)
    out.setdefault("rest", fallback)
    if counts.get("holiday", 0) < 2:
        out["holiday"] = out["rest"]
    return out


def _aht(h: QueueHistory, days: list[dt.date], outages: set[dt.date]) -> tuple[float, np.ndarray]:
    """(smoothed daily AHT, per-half-hour AHT ratio) from the history's handled calls."""
    daily = []
    for d in days:
        n = sum(h.handled.get((d, s), 0.0) for s in range(SLOTS))
        if n > 0 and d not in outages:
            daily.append(sum(h.handle_s.get((d, s), 0.0) for s in range(SLOTS)) / n)
    if not daily:
        raise ForecastError(f"queue {h.queue}: no handled calls in the history, no handle time to forecast")
    level = _smooth_level(np.array(daily))
    recent = [d for d in days[-PROFILE_WEEKS * 7:] if d not in outages]
    n_slot = np.array([sum(h.handled.get((d, s), 0.0) for d in recent) for s in range(SLOTS)])
    t_slot = np.array([sum(h.handle_s.get((d, s), 0.0) for d in recent) for s in range(SLOTS)])
    overall = t_slot.sum() / n_slot.sum() if n_slot.sum() > 0 else level
    ratio = np.ones(SLOTS)
    ok = n_slot >= MIN_SLOT_HANDLED
    ratio[ok] = (t_slot[ok] / n_slot[ok]) / overall
    return level, ratio


def forecast_queue(h: QueueHistory, calendar: Calendar, start: dt.date, days: int,
                   outages: set[dt.date] | frozenset[dt.date] = frozenset(), *,
                   history_end: dt.date | None = None, accuracy: bool = True) -> QueueForecast:
    """Forecast `days` days from `start` using the history's days before `start` (and before
    `history_end` when given). With `accuracy`, the last full week of that history is also held out
    and forecast from the weeks before it, and the errors are attached."""
    hist_days = [d for d in h.days() if d < start and (history_end is None or d <= history_end)]
    if len(hist_days) < 7:
        raise ForecastError(f"queue {h.queue}: {len(hist_days)} day(s) of history; a forecast needs at least 7")
    outage_set = set(outages)
    totals = {d: sum(h.offered.get((d, s), 0.0) for s in range(SLOTS)) for d in hist_days}
    normal = {d for d in hist_days if d not in outage_set and special(calendar, d) is None}
    factors = _factors(calendar, totals, normal)
    # special days and outages are replaced by what their weekday normally brings before fitting
    mean_normal = float(np.mean([totals[x] for x in normal])) if normal else 0.0
    adjusted = []
    for d in hist_days:
        if d in outage_set or special(calendar, d) is not None:
            ref = _reference(totals, normal, d)
            adjusted.append(ref if ref is not None else mean_normal)
        else:
            adjusted.append(totals[d])
    out_days = [start + dt.timedelta(days=i) for i in range(days)]
    # the model runs to the Sunday of the last week so every special day has its whole week
    last = out_days[-1] + dt.timedelta(days=6 - out_days[-1].weekday())
    horizon = (last - hist_days[-1]).days
    daily, model = _fit_daily(np.array(adjusted, dtype=float), horizon)
    normal_value = {hist_days[-1] + dt.timedelta(days=i + 1): float(v) for i, v in enumerate(daily)}
    normal_value.update(zip(hist_days, adjusted, strict=True))
    profiles = _profiles(h, calendar, hist_days, outage_set)
    aht_level, aht_ratio = _aht(h, hist_days, outage_set)
    calls: dict[tuple[dt.date, int], float] = {}
    aht: dict[tuple[dt.date, int], float] = {}
    kinds: dict[dt.date, str] = {}
    for d in out_days:
        kind = special(calendar, d)
        total = normal_value[d]
        if kind is not None:
            total = factors[kind] * (_typical(calendar, normal_value, d, _resembles(kind)) or total)
        kinds[d] = calendar.day_kind(d)
        prof = profiles[kinds[d]]
        for s in range(SLOTS):
            calls[(d, s)] = total * float(prof[s])
            aht[(d, s)] = aht_level * float(aht_ratio[s])
    fc = QueueForecast(h.queue, out_days, calls, aht, kinds, model, factors, None, h.patience_s(), h.tier_mix())
    if accuracy:
        fc.accuracy = held_out_accuracy(h, calendar, hist_days, outage_set)
    return fc


def held_out_accuracy(h: QueueHistory, calendar: Calendar, hist_days: list[dt.date],
                      outages: set[dt.date]) -> Accuracy | None:
    """Errors of forecasting the history's last 7 days from the days before them (None: < 3 weeks)."""
    if len(hist_days) < 21:
        return None
    test_start = hist_days[-7]
    fc = forecast_queue(h, calendar, test_start, 7, outages, accuracy=False)
    hh_err = hh_act = day_err = day_act = aht_err = aht_act = 0.0
    hh_ape: list[float] = []
    day_ape: list[float] = []
    for d in fc.days:
        if d in outages:
            continue
        actual_day = predicted_day = 0.0
        for s in range(SLOTS):
            a = h.offered.get((d, s), 0.0)
            p = fc.calls[(d, s)]
            hh_err += abs(p - a)
            hh_act += a
            if a > 0:
                hh_ape.append(abs(p - a) / a)
            actual_day += a
            predicted_day += p
            n = h.handled.get((d, s), 0.0)
            if n > 0:
                aht_err += abs(fc.aht_s[(d, s)] - h.handle_s[(d, s)] / n) * n
                aht_act += h.handle_s[(d, s)]
        day_err += abs(predicted_day - actual_day)
        day_act += actual_day
        if actual_day > 0:
            day_ape.append(abs(predicted_day - actual_day) / actual_day)
    return Accuracy(test_start, 7,
                    float(np.mean(hh_ape)) if hh_ape else None, hh_err / hh_act if hh_act else None,
                    float(np.mean(day_ape)) if day_ape else None, day_err / day_act if day_act else None,
                    aht_err / aht_act if aht_act else None)
