"""Shift handover (交接班): what the outgoing 95598 shift hands the next one. Pure.

The rulebook's handover: the outgoing shift leader hands over unfinished work orders and chases, open
outages, incidents and system state, with a free-text note; the incoming leader acknowledges it; the
outgoing leader may not log out before the incoming one has logged in. Here:

- `boundary`: which shift change a handover at `now` is for, from the roster (the leaders' shifts):
  the end of the leader shift under way (or just ended), who hands over and who takes over.
- `build_handover`: the handover's content from what the store holds at that moment (open work orders
  near their deadline, active and coming outages, callbacks still to make, the shift's notable calls,
  the system's state) and the clock. "Near the deadline" = due before the incoming shift ends: what the next shift must
  act on; everything overdue is listed first.
- `logout_warning`: the rule's warning for a leader about to log out.
- `handover_text`: the printable text (one definition for print and export).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..calendar import Calendar
from ..events import Event, Kind
from .adherence import Planned

RECENT_S = 2 * 3600.0  # a leader shift that ended this recently is still the one being handed over
DEFAULT_HORIZON_S = 8 * 3600.0  # "near the deadline" when the incoming shift's end is unknown
NOTABLE_CATEGORIES = frozenset({"complaint", "report"})  # work orders every leader hears of (投诉, 举报)
LOW_RATING = 2  # a satisfaction score at or below this is notable
CALLBACK_OPEN = frozenset({"pending", "queued", "dialing"})


@dataclass(frozen=True)
class Boundary:
    """A shift change: the outgoing leader shift [shift_start, at) and the leaders on duty after `at`."""

    at: float
    shift_start: float
    outgoing: tuple[str, ...]
    incoming: tuple[str, ...]
    incoming_until: float | None  # the end of the incoming leaders' shift (the latest of them)

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "shift_start": self.shift_start, "outgoing": list(self.outgoing),
                "incoming": list(self.incoming), "incoming_until": self.incoming_until}


def boundary(plans: Iterable[Planned], leaders: set[str] | frozenset[str], now: float) -> Boundary | None:
    """The shift change a handover at `now` belongs to (None: no leader shift under way or just ended).

    The leader shift under way that ends first (or, between shifts, the one that ended last, up to
    RECENT_S ago) is outgoing; the leaders whose shift covers its end and goes on past it are incoming."""
    shifts = [p for p in plans if p.agent in leaders]
    running = [p for p in shifts if p.start <= now < p.end]
    if running:
        at = min(p.end for p in running)
    else:
        ended = [p.end for p in shifts if now - RECENT_S <= p.end <= now]
        if not ended:
            return None
        at = max(ended)
    outgoing = [p for p in shifts if p.end == at]
    incoming = [p for p in shifts if p.start <= at < p.end]
    return Boundary(at, min(p.start for p in outgoing), tuple(sorted({p.agent for p in outgoing})),
                    tuple(sorted({p.agent for p in incoming})),
                    max((p.end for p in incoming), default=None))


def boundary_at(plans: Iterable[Planned], leaders: set[str] | frozenset[str], at: float) -> Boundary | None:
    """The shift change at `at` (a leader shift ends then), else None."""
    shifts = [p for p in plans if p.agent in leaders]
    outgoing = [p for p in shifts if p.end == at]
    if not outgoing:
        return None
    incoming = [p for p in shifts if p.start <= at < p.end]
    return Boundary(at, min(p.start for p in outgoing), tuple(sorted({p.agent for p in outgoing})),
                    tuple(sorted({p.agent for p in incoming})), max((p.end for p in incoming), default=None))


def passed(plans: Iterable[Planned], leaders: set[str] | frozenset[str], now: float,
           within: float = RECENT_S) -> list[Boundary]:
    """The shift changes of (now - within, now], latest first."""
    plans = list(plans)
    ends = sorted({p.end for p in plans if p.agent in leaders and now - within < p.end <= now}, reverse=True)
    return [b for b in (boundary_at(plans, leaders, at) for at in ends) if b is not None]


def boundary_for(plans: Iterable[Planned], leaders: set[str] | frozenset[str], now: float,
                 user: str, done: set[float] | frozenset[float] = frozenset()) -> Boundary | None:
    """The shift change `user` acts on at `now`: one that just passed (RECENT_S) in which they were
    outgoing and whose time is not in `done` (handed over already), else the coming one (`boundary`).
    A leader who stays past the end of their shift still hands *that* shift over."""
    plans = list(plans)
    mine = [b for b in passed(plans, leaders, now) if user in b.outgoing and b.at not in done]
    return mine[0] if mine else boundary(plans, leaders, now)


@dataclass
class HandoverInputs:
    """What the store holds when the handover is drawn up (rows as dicts, the shift's events)."""

    open_orders: list[dict[str, Any]]  # work orders not yet replied: id, category, status, due_ts, ...
    shift_orders: list[dict[str, Any]]  # work orders accepted during the shift (any status)
    outages: list[dict[str, Any]]  # open outages: id, kind, cause, scope, start_ts, expected_restore_ts
    callbacks: list[dict[str, Any]]  # ACD callbacks: id, number, skill, tier, reason, status, attempts, due_ts
    events: list[Event]  # the shift's events (survey ratings, repair alerts, VIP abandons are picked)


def _order(row: dict[str, Any], now: float) -> dict[str, Any]:
    due = float(row["due_ts"])
    raw = row.get("dispatch_due_ts")
    dispatch_due = float(raw) if raw is not None and row.get("status") == "open" else None
    return {"id": row["id"], "category": row.get("category", ""), "status": row.get("status", ""),
            "customer": row.get("customer_name", ""), "content": str(row.get("content", ""))[:200],
            "due_ts": due, "overdue": due <= now,
            "dispatch_due_ts": dispatch_due, "dispatch_overdue": dispatch_due is not None and dispatch_due <= now,
            "created_by": row.get("created_by", "")}


def _notable(inputs: HandoverInputs, b: Boundary) -> list[dict[str, Any]]:
    """The shift's calls a leader must hear of: complaints and reports taken, low satisfaction scores,
    repair steps escalated to the leader, VIP callers who gave up waiting."""
    out: list[dict[str, Any]] = []
    for row in inputs.shift_orders:
        if row.get("category") in NOTABLE_CATEGORIES and b.shift_start <= float(row["created_ts"]) < b.at:
            out.append({"ts": float(row["created_ts"]), "what": row["category"], "ref": f"work order {row['id']}",
                        "call_id": row.get("call_id") or "", "agent": row.get("created_by", ""),
                        "detail": f"{row.get('customer_name', '')}: {str(row.get('content', ''))[:120]}"})
    for e in inputs.events:
        if not b.shift_start <= e.ts < b.at:
            continue
        if e.kind == Kind.SURVEY_RATING and isinstance(e.data.get("rating"), int) and \
                e.data["rating"] <= LOW_RATING:
            out.append({"ts": e.ts, "what": "low_rating", "ref": f"rating {e.data['rating']}",
                        "call_id": e.call_id or "", "agent": e.agent_id or "", "detail": e.queue or ""})
        elif e.kind == Kind.REPAIR_ALERT and e.data.get("level") == "escalation":
            out.append({"ts": e.ts, "what": "repair_escalation", "ref": f"repair order {e.data.get('id')}",
                        "call_id": "", "agent": "", "detail": f"step {e.data.get('step')}, crew {e.data.get('crew')}"})
        elif e.kind == Kind.ACD_ABANDON and e.tier == "vip":
            out.append({"ts": e.ts, "what": "vip_abandon", "ref": e.queue or "", "call_id": e.call_id or "",
                        "agent": "", "detail": f"waited {float(e.data.get('wait_s') or 0):.0f} s"})
    return sorted(out, key=lambda x: x["ts"])


def system_state(health: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The server's health (`CtiServer.health()`) as the lines a leader hands over: each Asterisk link, the
    event store, calls live now, the HA role. Empty when the caller has none to give."""
    if not health:
        return []
    out = []
    for name, st in sorted((health.get("ami") or {}).items()):
        ok = bool(st.get("connected"))
        out.append({"what": f"Asterisk {name}", "ok": ok,
                    "state": "connected" if ok else f"DOWN ({st.get('last_error') or 'not connected'})"
                    + (f", {st.get('reconnects')} reconnects" if st.get("reconnects") else "")})
    db = health.get("db") or {}
    if db:
        ok = bool(db.get("db_ok"))
        out.append({"what": "event store", "ok": ok and not db.get("pending"),
                    "state": ("ok" if ok else "DOWN") + (f", {db['pending']} events waiting" if db.get("pending")
                                                          else "")})
    if "live_calls" in health:
        out.append({"what": "live calls", "ok": True, "state": str(health["live_calls"])})
    ha = health.get("ha") or {}
    if ha.get("enabled"):
        out.append({"what": "HA", "ok": bool(ha.get("leader")),
                    "state": f"{ha.get('role')} on {ha.get('node')}, leader {ha.get('leader') or 'none'}"})
    return out


def build_handover(inputs: HandoverInputs, b: Boundary, now: float, health: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """The handover's content as of `now`. Orders: overdue, or due (reply or dispatch) before the incoming
    shift ends; outages: open and started, or starting before then; callbacks: all still to make; the
    system's state from `health` (the server's health figures, when given)."""
    until = b.incoming_until if b.incoming_until is not None else b.at + DEFAULT_HORIZON_S
    orders = [_order(r, now) for r in inputs.open_orders]
    due = [o for o in orders if o["due_ts"] < until or (o["dispatch_due_ts"] is not None and
                                                         o["dispatch_due_ts"] < until)]
    due.sort(key=lambda o: (not (o["overdue"] or o["dispatch_overdue"]),
                            min(o["due_ts"], o["dispatch_due_ts"] or o["due_ts"]), o["id"]))
    outages = []
    for o in inputs.outages:
        if o.get("status", "open") != "open" or float(o["start_ts"]) >= until:
            continue
        scope = o.get("scope") or {}
        outages.append({"id": o["id"], "kind": o["kind"], "cause": o["cause"],
                        "areas": list(scope.get("areas", [])), "start_ts": float(o["start_ts"]),
                        "expected_restore_ts": o.get("expected_restore_ts"),
                        "active": float(o["start_ts"]) <= now, "reports": int(o.get("reports") or 0)})
    outages.sort(key=lambda o: (not o["active"], o["start_ts"]))
    callbacks = sorted(({k: c.get(k) for k in ("id", "number", "skill", "tier", "reason", "status", "attempts",
                                                "due_ts", "next_ts")}
                        for c in inputs.callbacks if c.get("status") in CALLBACK_OPEN),
                       key=lambda c: (float(c["due_ts"] or 0), c["id"]))
    notable = _notable(inputs, b)
    return {"boundary": b.as_dict(), "generated_ts": now, "horizon_ts": until,
            "summary": {"open_orders": len(orders), "orders_due": len(due),
                        "overdue": sum(1 for o in due if o["overdue"] or o["dispatch_overdue"]),
                        "outages": len(outages), "active_outages": sum(1 for o in outages if o["active"]),
                        "callbacks": len(callbacks), "notable": len(notable)},
            "orders": due, "outages": outages, "callbacks": callbacks, "notable": notable,
            "system": system_state(health)}


def logout_warning(b: Boundary | None, user: str, logged_in: set[str], acknowledged: bool) -> str | None:
    """The rulebook's rule for an outgoing leader: no logout before the incoming leader has logged in
    (and taken the handover). None: nothing stands in the way."""
    if b is None or user not in b.outgoing:
        return None
    if b.incoming and not logged_in & set(b.incoming):
        return f"the incoming shift leader ({', '.join(b.incoming)}) has not logged in yet"
    if not acknowledged:
        return "the incoming shift leader has not acknowledged your handover yet"
    return None


def _clock(calendar: Calendar, ts: float | None) -> str:
    return "-" if ts is None else calendar.local(float(ts)).strftime("%m-%d %H:%M")


def handover_text(doc: dict[str, Any], calendar: Calendar) -> str:
    """A saved handover as plain text, for print and export."""
    b, c = doc["content"]["boundary"], doc["content"]
    lines = [f"Shift handover #{doc['id']}  {_clock(calendar, b['shift_start'])} - {_clock(calendar, b['at'])}",
             f"Outgoing: {doc['outgoing']}   Incoming: {', '.join(b['incoming']) or '-'}",
             f"Handed over: {_clock(calendar, doc['created_ts'])}   Acknowledged: "
             + (f"{doc['acked_by']} at {_clock(calendar, doc['acked_ts'])}" if doc.get("acked_ts") else "not yet"),
             "", "Note:", *(f"  {x}" for x in (doc.get("note") or "-").splitlines()), "",
             f"Work orders due before {_clock(calendar, c['horizon_ts'])} ({len(c['orders'])} of "
             f"{c['summary']['open_orders']} open):"]
    lines += [f"  #{o['id']} {o['category']} {o['status']} due {_clock(calendar, o['due_ts'])}"
              f"{' OVERDUE' if o['overdue'] or o['dispatch_overdue'] else ''}  {o['customer']}: {o['content']}"
              for o in c["orders"]] or ["  none"]
    lines += ["", "Outages:"]
    lines += [f"  #{o['id']} {o['kind']} {'ACTIVE' if o['active'] else 'coming'} {', '.join(o['areas'])}: "
              f"{o['cause']} (restore {_clock(calendar, o['expected_restore_ts'])}, {o['reports']} reports)"
              for o in c["outages"]] or ["  none"]
    lines += ["", "Callbacks to make:"]
    lines += [f"  #{x['id']} {x['number']} {x['skill']}/{x['tier']} {x['status']} due {_clock(calendar, x['due_ts'])}"
              for x in c["callbacks"]] or ["  none"]
    lines += ["", "System:"]
    lines += [f"  {x['what']}: {x['state']}" for x in c.get("system", [])] or ["  -"]
    lines += ["", "Notable calls:"]
    lines += [f"  {_clock(calendar, n['ts'])} {n['what']} {n['ref']} {n['agent']} {n['detail']}"
              for n in c["notable"]] or ["  none"]
    return "\n".join(lines) + "\n"
