"""KPI metrics from summed facts: roll-up to the groupings asked for, derived rates and times, the
per-tier service levels, targets, Erlang C staffing, outbound and survey sections.

Pure: `assemble(facts, cfg, window, dims)` takes the facts the SQL summed per local half hour
(kpi/compute.py, through kpi/source.py) and returns the report dict documented in docs/kpis.md
("Report JSON"), versioned by `SCHEMA`. No database, no clock: the window carries `now`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .config import KpiConfig
from .facts import CALL_DIMS, HALF_HOUR, Facts, Window, hh_start
from .loop import loop_metrics
from .staffing import staffing

SCHEMA = "ctiserver.kpi.report/1"
TIME_DIMS = ("halfhour", "hour", "day", "week", "month", "band")
ENTITY_DIMS = ("queue", "tier", "agent")
ALL_DIMS = TIME_DIMS + ENTITY_DIMS
FAMILY_DIMS = {
    "calls": set(CALL_DIMS),
    "legs": {"queue", "tier", "agent"},
    "agent_time": {"agent"},
    "dispositions": {"queue", "tier", "agent"},
    "workorders": {"agent"},
    "ratings": {"queue", "tier", "agent"},
    "revisits": {"queue", "agent"},
    "qc": {"queue", "agent"},
}
BUSY_STATES = ("on_call", "wrap_up")
IDLE_STATES = ("available", "reserved", "ringing")


class ReportError(ValueError):
    """A report request that cannot be answered as asked (bad range, unknown grouping)."""


# ---------------------------------------------------------------------------------- roll-up

def time_label(hh: int, dim: str, band_table: Sequence[str]) -> str:
    start = hh_start(hh)
    if dim == "halfhour":
        return start.strftime("%Y-%m-%dT%H:%M")
    if dim == "hour":
        return start.strftime("%Y-%m-%dT%H:00")
    if dim == "day":
        return start.strftime("%Y-%m-%d")
    if dim == "week":
        y, w, _ = start.isocalendar()
        return f"{y}-W{w:02d}"
    if dim == "month":
        return start.strftime("%Y-%m")
    if dim == "band":
        return band_table[(start.hour * 60 + start.minute) // 30]
    raise ReportError(f"not a time grouping: {dim}")


Key = tuple[Any, ...]


def _rollup(rows: list[dict[str, Any]], dims: Sequence[str], band_table: Sequence[str],
            value_keys: Sequence[str]) -> dict[Key, dict[str, Any]]:
    out: dict[Key, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    labels: dict[tuple[int, str], str] = {}
    for r in rows:
        acc = out[_row_key(r, dims, band_table, labels)]
        for v in value_keys:
            acc[v] += r.get(v) or 0
    return out


def _row_key(r: dict[str, Any], dims: Sequence[str], band_table: Sequence[str],
             labels: dict[tuple[int, str], str]) -> Key:
    key: list[Any] = []
    for d in dims:
        if d in TIME_DIMS:
            hd = (r["hh"], d)
            label = labels.get(hd)
            if label is None:
                label = labels[hd] = time_label(int(r["hh"]), d, band_table)
            key.append(label)
        else:
            key.append(r.get(f"d_{d}"))
    return tuple(key)


def _rollup_map(rows: list[dict[str, Any]], dims: Sequence[str], band_table: Sequence[str],
                name: str, value: str) -> dict[Key, dict[Any, int]]:
    out: dict[Key, dict[Any, int]] = defaultdict(lambda: defaultdict(int))
    labels: dict[tuple[int, str], str] = {}
    for r in rows:
        out[_row_key(r, dims, band_table, labels)][r[name]] += r[value] or 0
    return out


CALL_SUMS = ("offered", "ivr", "ivr_contained", "wanted", "queued", "blocked", "answered", "wait_ms",
             "within_sl", "within_tier", "abandoned", "short_abandoned", "abandon_ms", "short_abandon_ms",
             "abandoned_ringing", "callbacks", "queued_callbacks", "abandon_callbacks", "overflowed",
             "timed_out", "lost", "in_queue",
             "queue_exits", "queue_ms", "transferred", "fcr_repeat_base", "fcr_no_repeat", "fcr_disp_base",
             "fcr_resolved", "fcr_both_base", "fcr_both", "answered_offers_1", "answered_offers_2",
             "answered_offers_3plus")
LEG_SUMS = ("offers", "answers", "ronas", "transfers", "handled", "talk_n", "talk_ms", "hold_n", "hold_ms",
            "ring_n", "ring_ms")
WO_SUMS = ("opened", "closed", "closed_on_time", "reopened")
RATING_SUMS = ("responses", "score_sum")
REVISIT_SUMS = ("due", "done")
QC_SUMS = ("qc_inspected", "qc_score_sum", "qc_passed", "qc_fatal")


def _div(a: float | None, b: float | None, nd: int = 6) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, nd)


def _secs(ms: float | None, n: float | None) -> float | None:
    if ms is None or n is None or n == 0:
        return None
    return round(ms / n / 1000.0, 3)


def derive(cfg: KpiConfig, c: dict[str, Any] | None, legs: dict[str, Any] | None,
           states: dict[str, int] | None, disp: dict[str, int] | None, disp_resolved: int | None,
           wo: dict[str, Any] | None, ratings: dict[str, Any] | None = None,
           revisits: dict[str, Any] | None = None, qc: dict[str, Any] | None = None) -> dict[str, Any]:
    """Metrics from summed facts. A family that cannot be split the way asked gives None values."""
    c = {v: 0 for v in CALL_SUMS} if c is None else {v: c.get(v, 0) for v in CALL_SUMS}
    sl = cfg.service_level
    excl = sl.exclude_short_abandons
    short = c["short_abandoned"] if excl else 0
    sl_offered = c["queued"] - c["queued_callbacks"] - short - c["in_queue"]
    abandoned_counted = c["abandoned"] - short
    wanted_net = c["wanted"] - c["callbacks"] - c["in_queue"]
    m: dict[str, Any] = {
        # traffic
        "calls_offered": c["offered"],
        "ivr_calls": c["ivr"],
        "ivr_contained": c["ivr_contained"],
        "ivr_containment_rate": _div(c["ivr_contained"], c["ivr"]),
        "agent_requests": c["wanted"],
        "queued": c["queued"],
        "queued_rate": _div(c["queued"], c["offered"]),
        "in_queue": c["in_queue"],
        "blocked": c["blocked"],
        "busy_rate": _div(c["blocked"], c["wanted"]),
        # answering
        "answered": c["answered"],
        "answered_share": _div(c["answered"], c["offered"]),
        "answered_rate": _div(c["answered"], c["queued"]),
        "sl_offered": sl_offered,
        "answered_within_sl": c["within_sl"],
        "service_level": _div(c["within_sl"], sl_offered),
        # the textbook definition: answered in time ÷ every queued call that finished, short abandons included
        "service_level_textbook": _div(c["within_sl"], c["queued"] - c["queued_callbacks"] - c["in_queue"]),
        "answered_within_sl_share": _div(c["within_sl"], c["answered"]),
        # how many agents were offered a call before one answered it (1, 2, 3 or more)
        "answered_by_offers": {"1": c["answered_offers_1"], "2": c["answered_offers_2"],
                               "3+": c["answered_offers_3plus"]},
        "asa_s": _secs(c["wait_ms"], c["answered"]),
        "avg_queue_s": _secs(c["queue_ms"], c["queue_exits"]),
        # loss
        "abandoned": c["abandoned"],
        "short_abandoned": c["short_abandoned"],
        "abandoned_counted": abandoned_counted,
        "abandon_rate": _div(abandoned_counted, sl_offered),
        "avg_abandon_s": _secs(c["abandon_ms"] - (c["short_abandon_ms"] if excl else 0), abandoned_counted),
        "abandoned_ringing": c["abandoned_ringing"],
        # Exponential-patience MLE (censored): time at risk in queue / abandons. Feeds Erlang A.
        "est_patience_s": _secs(c["queue_ms"], c["abandoned"]),
        "overflowed": c["overflowed"],
        "timed_out": c["timed_out"],
        "callbacks": c["callbacks"],
        "callbacks_after_abandon": c["abandon_callbacks"],
        "call_loss": c["lost"],
        "call_loss_rate": _div(c["lost"], wanted_net),
        # connection rates (接通率)
        "ivr_connection_rate": _div(c["ivr"], c["offered"]),
        "agent_connection_rate": _div(c["answered"], wanted_net),
        "customer_loss_rate": _div(c["lost"], wanted_net),
        "transferred_calls": c["transferred"],
        "transfer_rate": _div(c["transferred"], c["answered"]),
    }
    method = cfg.fcr.method
    base, good = {"repeat": ("fcr_repeat_base", "fcr_no_repeat"),
                  "disposition": ("fcr_disp_base", "fcr_resolved"),
                  "both": ("fcr_both_base", "fcr_both")}[method]
    m["fcr_eligible"] = c[base]
    m["fcr_resolved"] = c[good]
    m["fcr_rate"] = _div(c[good], c[base])
    # handling
    if legs is not None:
        m.update({
            "offers": legs["offers"],
            "ring_no_answer": legs["ronas"],
            "handled": legs["handled"],
            "transfers": legs["transfers"],
            "avg_talk_s": _secs(legs["talk_ms"], legs["talk_n"]),
            "avg_hold_s": _secs(legs["hold_ms"], legs["hold_n"]),
            "avg_ring_s": _secs(legs["ring_ms"], legs["ring_n"]),
        })
    else:
        m.update({k: None for k in ("offers", "ring_no_answer", "handled", "transfers", "avg_talk_s",
                                    "avg_hold_s", "avg_ring_s")})
    if states is not None and legs is not None:
        direct = states.get("on_call:direct", 0)  # the phone busy outside the ACD (acd engine.device_state)
        on_call = states.get("on_call", 0) + direct
        wrap = states.get("wrap_up", 0)
        idle = sum(states.get(s, 0) for s in IDLE_STATES)
        not_ready = sum(v for s, v in states.items() if s is not None and s.startswith("not_ready"))
        logged_in = sum(v for s, v in states.items() if s not in (None, "logged_out"))
        staffed_h = logged_in / 3_600_000.0
        acw = _secs(wrap, legs["handled"])
        m.update({
            "logged_in_s": round(logged_in / 1000.0, 3),
            "available_s": round(idle / 1000.0, 3),
            "on_call_s": round(on_call / 1000.0, 3),
            "direct_s": round(direct / 1000.0, 3),
            "wrap_s": round(wrap / 1000.0, 3),
            "not_ready_s": round(not_ready / 1000.0, 3),
            "avg_acw_s": acw,
            "occupancy": _div(on_call + wrap, on_call + wrap + idle),
            # Jon Anton's: talk and hold ÷ (talk, hold and idle); wrap-up apart, as its share of logged-in time
            "occupancy_talk": _div(on_call, on_call + idle),
            "wrap_share": _div(wrap, logged_in),
            "not_ready_by_reason_s": dict(sorted(
                (s.split(":", 1)[1] if ":" in s else "", round(v / 1000.0, 3)) for s, v in states.items()
                if s is not None and s.startswith("not_ready") and v)),
            "cost_per_call": (None if cfg.cost_per_agent_hour is None
                              else _div(staffed_h * cfg.cost_per_agent_hour, legs["handled"], 2)),
            "staffed_hours": round(staffed_h, 4),
            "calls_per_staffed_hour": _div(legs["handled"], staffed_h, 3),
        })
        parts = (m["avg_talk_s"], m["avg_hold_s"], acw)
        m["aht_s"] = round(sum(parts), 3) if all(p is not None for p in parts) else None
    else:
        m.update({k: None for k in ("logged_in_s", "available_s", "on_call_s", "direct_s", "wrap_s", "not_ready_s",
                                    "avg_acw_s", "occupancy", "occupancy_talk", "wrap_share",
                                    "not_ready_by_reason_s", "cost_per_call", "staffed_hours",
                                    "calls_per_staffed_hour", "aht_s")})
    # outcomes
    m["dispositions"] = dict(sorted(disp.items())) if disp is not None else None
    m["dispositions_resolved"] = disp_resolved
    if wo is not None:
        m["workorders_opened"] = wo["opened"]
        m["workorders_closed"] = wo["closed"]
        m["workorders_closed_on_time"] = wo["closed_on_time"]
        m["workorder_on_time_rate"] = _div(wo["closed_on_time"], wo["opened"])
        m["workorders_reopened"] = wo["reopened"]
        m["workorder_reopen_rate"] = _div(wo["reopened"], wo["closed"])
    else:
        m.update({k: None for k in ("workorders_opened", "workorders_closed", "workorders_closed_on_time",
                                    "workorder_on_time_rate", "workorders_reopened", "workorder_reopen_rate")})
    # satisfaction: scores of the calls rated, and the satisfaction callbacks of closed work orders (回访)
    if ratings is not None:
        m["survey_responses"] = ratings["responses"]
        m["survey_avg_score"] = _div(ratings["score_sum"], ratings["responses"], 4)
    else:
        m.update({"survey_responses": None, "survey_avg_score": None})
    if revisits is not None:
        m["satisfaction_callbacks_due"] = revisits["due"]
        m["satisfaction_callbacks_done"] = revisits["done"]
        m["satisfaction_callback_rate"] = _div(revisits["done"], revisits["due"])
    else:
        m.update({k: None for k in ("satisfaction_callbacks_due", "satisfaction_callbacks_done",
                                    "satisfaction_callback_rate")})
    # quality inspection (质检): calls scored on the QC sheet, and their average (final) score
    if qc is not None:
        m["qc_inspected"] = qc["qc_inspected"]
        m["qc_avg_score"] = _div(qc["qc_score_sum"], qc["qc_inspected"], 2)
        m["qc_pass_rate"] = _div(qc["qc_passed"], qc["qc_inspected"])
        m["qc_fatal"] = qc["qc_fatal"]
    else:
        m.update({"qc_inspected": None, "qc_avg_score": None, "qc_pass_rate": None, "qc_fatal": None})
    return m


def _key_sort(key: Key) -> tuple[Any, ...]:
    return tuple((v is None, str(v) if v is not None else "") for v in key)


def assemble(facts: Facts, cfg: KpiConfig, win: Window, dims: list[str]) -> dict[str, Any]:
    """Everything after SQL: roll-ups, metrics, tiers, targets, staffing, outbound (pure)."""
    bt = cfg.band_table()

    def family(name: str, rows: list[dict[str, Any]], sums: Sequence[str], ds: Sequence[str]
               ) -> dict[Key, dict[str, Any]] | None:
        if any(d in ENTITY_DIMS and d not in FAMILY_DIMS[name] for d in ds):
            return None
        return _rollup(rows, ds, bt, sums)

    def states_of(ds: Sequence[str]) -> dict[Key, dict[str, int]] | None:
        if any(d in ENTITY_DIMS and d not in FAMILY_DIMS["agent_time"] for d in ds):
            return None
        return _rollup_map(facts.agent_time, ds, bt, "state", "ms")

    def disp_of(ds: Sequence[str]) -> tuple[dict[Key, dict[Any, int]], dict[Key, dict[Any, int]]]:
        return (_rollup_map(facts.dispositions, ds, bt, "category", "n"),
                _rollup_map(facts.dispositions, ds, bt, "category", "resolved"))

    def table(ds: Sequence[str]) -> dict[Key, dict[str, Any]]:
        calls = family("calls", facts.calls, CALL_SUMS, ds) or {}
        legs = family("legs", facts.legs, LEG_SUMS, ds)
        states = states_of(ds)
        disp, disp_res = disp_of(ds)
        wo = family("workorders", facts.workorders, WO_SUMS, ds)
        ratings = family("ratings", facts.ratings, RATING_SUMS, ds)
        revisits = family("revisits", facts.revisits, REVISIT_SUMS, ds)
        qc = family("qc", facts.qc, QC_SUMS, ds)
        keys = set(calls) | set(legs or {}) | set(states or {}) | set(disp) | set(wo or {}) | set(ratings or {}) \
            | set(revisits or {}) | set(qc or {})
        out = {}
        for key in sorted(keys, key=_key_sort):
            out[key] = derive(
                cfg, calls.get(key),
                None if legs is None else legs.get(key, {v: 0 for v in LEG_SUMS}),
                None if states is None else states.get(key, {}),
                dict(disp.get(key, {})), sum(disp_res.get(key, {}).values()),
                None if wo is None else wo.get(key, {v: 0 for v in WO_SUMS}),
                None if ratings is None else ratings.get(key, {v: 0 for v in RATING_SUMS}),
                None if revisits is None else revisits.get(key, {v: 0 for v in REVISIT_SUMS}),
                None if qc is None else qc.get(key, {v: 0 for v in QC_SUMS}))
        return out

    rows = table(dims)
    total = table([]).get((), derive(cfg, None, {v: 0 for v in LEG_SUMS}, {}, {}, 0, {v: 0 for v in WO_SUMS},
                                     {v: 0 for v in RATING_SUMS}, {v: 0 for v in REVISIT_SUMS},
                                     {v: 0 for v in QC_SUMS}))
    return {
        "schema": SCHEMA,
        "timezone": cfg.timezone,
        "from": _iso(win.start, cfg),
        "to": _iso(win.end, cfg),
        "by": dims,
        "settings": {
            "sl_threshold_s": cfg.service_level.threshold_s,
            "sl_target": cfg.service_level.target,
            "short_abandon_s": cfg.service_level.short_abandon_s,
            "exclude_short_abandons": cfg.service_level.exclude_short_abandons,
            "fcr_method": cfg.fcr.method,
            "fcr_window_h": cfg.fcr.window_h,
        },
        "rows": [{"key": dict(zip(dims, key, strict=True)), "metrics": m} for key, m in rows.items()],
        "total": total,
        "tiers": _tiers(facts, cfg, bt),
        "targets": _targets(total, cfg),
        "staffing": _staffing(facts, cfg, bt, total),
        "outbound": _outbound(facts, dims, bt),
        "survey": _survey(facts),
        "loop": loop_metrics(facts),
    }


def _iso(ts: float, cfg: KpiConfig) -> str:
    return datetime.fromtimestamp(ts, cfg.zone()).isoformat()


def _tiers(facts: Facts, cfg: KpiConfig, bt: Sequence[str]) -> list[dict[str, Any]]:
    by_tier = _rollup(facts.calls, ["tier"], bt, CALL_SUMS)
    out = []
    for (tier,), c in sorted(by_tier.items(), key=lambda kv: _key_sort(kv[0])):
        # calls that never reached a queue have no tier: no service level, so no target either
        tgt = cfg.tier_targets.for_tier(tier) if tier is not None else None
        short = c["short_abandoned"] if cfg.service_level.exclude_short_abandons else 0
        sl_offered = c["queued"] - c["queued_callbacks"] - short - c["in_queue"]
        sl = _div(c["within_tier"], sl_offered)
        out.append({
            "tier": tier,
            "calls_offered": c["offered"],
            "sl_offered": sl_offered,
            "answered": c["answered"],
            "threshold_s": tgt.threshold_s if tgt else None,
            "target": tgt.target if tgt else None,
            "service_level": sl,
            "met": None if sl is None or tgt is None else sl >= tgt.target - 1e-9,
            "asa_s": _secs(c["wait_ms"], c["answered"]),
            "abandon_rate": _div(c["abandoned"] - short, sl_offered),
        })
    return out


def _targets(total: dict[str, Any], cfg: KpiConfig) -> list[dict[str, Any]]:
    t = cfg.targets
    spec = [
        ("service_level", ">=", cfg.service_level.target),
        ("asa_s", "<=", t.asa_s_max),
        ("abandon_rate", "<=", t.abandon_rate_max),
        ("avg_acw_s", "<=", t.acw_s_max),
        ("avg_ring_s", "<=", t.ring_s_max),
        ("avg_talk_s", "<=", t.talk_s_max),
        ("transfer_rate", "<=", t.transfer_rate_max),
        ("occupancy", ">=", t.occupancy_min),
        ("fcr_rate", ">=", t.fcr_min),
        ("workorder_on_time_rate", ">=", t.workorder_on_time_min),
    ]
    out = []
    for metric, op, target in spec:
        actual = total.get(metric)
        met = None if actual is None else (actual >= target - 1e-9 if op == ">=" else actual <= target + 1e-9)
        out.append({"metric": metric, "op": op, "target": target, "actual": actual, "met": met})
    return out


def _staffing(facts: Facts, cfg: KpiConfig, bt: Sequence[str], total: dict[str, Any]) -> list[dict[str, Any]]:
    """Erlang C agents needed per half hour for the SL target, and the SL the logged-in agents give."""
    calls = _rollup(facts.calls, ["halfhour"], bt, CALL_SUMS)
    legs = _rollup(facts.legs, ["halfhour"], bt, LEG_SUMS)
    states = _rollup_map(facts.agent_time, ["halfhour"], bt, "state", "ms")
    sl = cfg.service_level
    fallback_aht = total.get("aht_s")
    out = []
    for key in sorted(set(calls) | set(states), key=_key_sort):
        c = calls.get(key, {})
        lg = legs.get(key, {})
        st = states.get(key, {})
        arrivals = int(c.get("queued", 0))
        handled = lg.get("handled", 0)
        wrap = st.get("wrap_up", 0)
        aht: float | None
        if handled:
            aht = round((lg.get("talk_ms", 0) + lg.get("hold_ms", 0) + wrap) / handled / 1000.0, 3)
        else:
            aht = fallback_aht
        logged_in = sum(v for s, v in st.items() if s not in (None, "logged_out")) / (HALF_HOUR * 1000.0)
        row = {"halfhour": key[0],
               **staffing(arrivals, HALF_HOUR, aht, logged_in, sl.threshold_s, sl.target).as_dict()}
        out.append(row)
    return out


OB_SUMS = ("contacts", "attempts", "results", "reached_attempts", "machine", "reached", "confirmed")


def _ob_metrics(o: dict[str, Any]) -> dict[str, Any]:
    return {
        "contacts": o["contacts"],
        "attempts": o["attempts"],
        "reached": o["reached"],
        "confirmed": o["confirmed"],
        "reach_rate": _div(o["reached"], o["contacts"]),
        "confirm_rate": _div(o["confirmed"], o["reached"]),
        "machine_rate": _div(o["machine"], o["results"]),
        "attempts_per_contact": _div(o["attempts"], o["contacts"], 3),
        "connection_rate": _div(o["reached_attempts"], o["attempts"]),
    }


def _outbound(facts: Facts, dims: Sequence[str], bt: Sequence[str]) -> dict[str, Any]:
    ds = [d for d in dims if d in TIME_DIMS] + ["campaign"]
    rolled = _rollup(facts.outbound, ds, bt, OB_SUMS)
    total = _rollup(facts.outbound, [], bt, OB_SUMS).get((), {v: 0 for v in OB_SUMS})
    return {
        "rows": [{"key": dict(zip(ds, key, strict=True)), "metrics": _ob_metrics(o)}
                 for key, o in sorted(rolled.items(), key=lambda kv: _key_sort(kv[0]))],
        "total": _ob_metrics(total),
    }


def _survey(facts: Facts) -> list[dict[str, Any]]:
    per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in facts.survey:
        rating = r["rating"]
        label = str(int(rating)) if rating is not None and float(rating).is_integer() \
            and 1 <= rating <= 5 else "invalid"
        per[r["d_campaign"] or ""][label] += r["n"]
        per["*"][label] += r["n"]
    out = []
    for campaign in sorted(per):
        counts = per[campaign]
        valid = {str(i): counts.get(str(i), 0) for i in range(1, 6)}
        n = sum(valid.values())
        avg = round(sum(int(k) * v for k, v in valid.items()) / n, 4) if n else None
        out.append({"campaign": campaign, "counts": valid, "invalid": counts.get("invalid", 0),
                    "responses": n, "average": avg})
    return out
