"""The ACD's events as Asterisk's `queue_log`, so tools written for app_queue (QueueMetrics-style reports,
scripts) read ctiserver's calls.

One line per queue event in the layout Asterisk 22's app_queue writes, `epoch|callid|queue|agent|VERB|
data1|data2|...` (checked against a queue_log written by a real `Queue()` in the sandbox:
tests/kpi/test_kpi_queue_log_asterisk.py; what deliberately differs is in docs/kpis.md):

    ENTERQUEUE|url|callerid|position                       acd.enqueue (not a takeover's resumed one)
    CONNECT|holdtime|agent's channel uniqueid|ringtime      acd.answer (not the agent's own callback leg)
    COMPLETECALLER|holdtime|calltime|origposition           acd.complete (COMPLETEAGENT: the agent hung up)
    ABANDON|position|origposition|waittime                  acd.abandon
    EXITWITHTIMEOUT|position|origposition|waittime          acd.overflow for timeout, max_wait, tier_max_wait
    EXITWITHKEY|key|position|origposition|waittime          acd.overflow for a key the caller pressed
    RINGNOANSWER|ringtime in ms                             acd.rona
    BLINDTRANSFER|extension|context|holdtime|calltime|origposition          acd.transfer, blind
    ATTENDEDTRANSFER|BRIDGE|target|holdtime|calltime|origposition          acd.transfer, attended
                                                            (either ends the stay: no COMPLETE line after it)
    ADDMEMBER|PAUSED or empty / REMOVEMEMBER|               agent.state logging in / out (callid MANAGER)
    PAUSEALL|reason / UNPAUSEALL|reason                     agent.state into / out of not_ready

As Asterisk counts them: times are whole seconds, a duration is the difference of two whole-second
stamps (time(NULL) - start), CONNECT's ring time is truncated to seconds, RINGNOANSWER's is in ms.
`NONE` where a line belongs to no call, queue or agent. Pure: events in, lines out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

from ..events import Event, Kind
from .builder import TIMEOUT_REASONS, json_num, json_str

QUEUE_LOG_KINDS = (Kind.ACD_ENQUEUE, Kind.ACD_ANSWER, Kind.ACD_COMPLETE, Kind.ACD_ABANDON, Kind.ACD_OVERFLOW,
                   Kind.ACD_RONA, Kind.ACD_TRANSFER, Kind.AGENT_STATE)
NONE = "NONE"
MANAGER = "MANAGER"  # Asterisk's callid of a member added or removed over AMI (QueueAdd/QueueRemove)


def _clean(v: Any) -> str:
    """A field: no separators or line breaks inside (they would shift every later field)."""
    return "" if v is None else str(v).replace("|", "/").replace("\n", " ").replace("\r", " ")


def _span(t0: float | None, t1: float, fallback: float | None) -> str:
    """Whole seconds from t0 to t1 as Asterisk counts them (two time(NULL) stamps), else `fallback` rounded."""
    if t0 is not None:
        return str(max(0, math.floor(t1) - math.floor(t0)))
    return str(max(0, round(fallback))) if fallback is not None else "0"


def _pos(data: dict[str, Any], key: str = "position") -> int:
    v = json_num(data, key)
    return int(v) if v is not None and v >= 1 else 1


class QueueLogWriter:
    """Folds events (in time order) into queue_log lines; remembers each call's enqueue (time and
    position) and answer."""

    def __init__(self) -> None:
        self._enq: dict[str, float] = {}
        self._opos: dict[str, int] = {}
        self._ans: dict[str, float] = {}
        self._xfer: set[str] = set()  # calls whose stay ended in a transfer line
        self._state: dict[str, str] = {}

    def lines(self, evs: Iterable[Event]) -> Iterator[str]:
        for ev in evs:
            line = self.line(ev)
            if line is not None:
                yield line

    def line(self, ev: Event) -> str | None:
        data = ev.data if isinstance(ev.data, dict) else {}
        k = ev.kind
        queue = ev.queue or NONE
        agent = f"Agent/{ev.agent_id}" if ev.agent_id else NONE

        def out(verb: str, *fields: Any, callid: str | None = None, q: str = queue, who: str = agent) -> str:
            return "|".join([str(int(ev.ts)), _clean(callid or ev.call_id or NONE), _clean(q), _clean(who), verb,
                             *(_clean(f) for f in fields)])

        if k == Kind.AGENT_STATE:
            return self._agent(ev, data, out)
        cid = ev.call_id
        if cid is None:
            return None
        q0 = self._enq.get(cid)
        opos = self._opos.get(cid, 1)
        waited = _span(q0, ev.ts, json_num(data, "wait_s"))
        if k == Kind.ACD_ENQUEUE:
            if data.get("resumed") and q0 is not None:
                return None  # the same stay, picked up by another node after a takeover
            # a new stay (a first call, or transferred back into a queue): Asterisk's Queue() starts afresh
            self._enq[cid], self._opos[cid] = ev.ts, _pos(data)
            self._ans.pop(cid, None)
            self._xfer.discard(cid)
            return out("ENTERQUEUE", "", json_str(data, "caller") or "", self._opos[cid])
        a = self._ans.get(cid)
        hold = _span(q0, a, None) if a is not None else "0"
        if k == Kind.ACD_ANSWER:
            if json_str(data, "kind") == "callback":
                return None
            self._ans.setdefault(cid, ev.ts)
            ring = json_num(data, "ring_s")
            return out("CONNECT", waited, json_str(data, "agent_uniqueid") or "",
                       max(0, math.floor(ring)) if ring is not None else 0)
        if k == Kind.ACD_COMPLETE:
            if cid in self._xfer:
                return None  # Asterisk ends a transferred call's stay with the transfer line alone
            talk = (json_num(data, "talk_s") or 0.0) + (json_num(data, "hold_s") or 0.0)
            # who hung up: Asterisk's AgentComplete Reason (fallback calls); the ACD's own calls do not say
            verb = "COMPLETEAGENT" if json_str(data, "reason") == "agent" else "COMPLETECALLER"
            return out(verb, hold, _span(a, ev.ts, talk), opos)
        if k == Kind.ACD_ABANDON:
            return out("ABANDON", _pos(data), opos, waited, who=NONE)  # Asterisk: no agent, even mid-ring
        if k == Kind.ACD_OVERFLOW:
            reason = json_str(data, "reason")
            if reason in TIMEOUT_REASONS:
                return out("EXITWITHTIMEOUT", 1, opos, waited, who=NONE)
            key = json_str(data, "key")
            if key is not None:
                return out("EXITWITHKEY", key, 1, opos, waited, who=NONE)
            return None  # another reason (full, no agents, redial, withdrawn): no app_queue line says it
        if k == Kind.ACD_RONA:
            ring = json_num(data, "ring_s")
            return out("RINGNOANSWER", max(0, round(ring * 1000)) if ring is not None else 0)
        if k == Kind.ACD_TRANSFER:
            target = json_str(data, "target") or json_str(data, "to") or ""
            talked = _span(a, ev.ts, None) if a is not None else "0"
            self._xfer.add(cid)
            if json_str(data, "kind") == "attended":
                return out("ATTENDEDTRANSFER", "BRIDGE", target, hold, talked, opos)
            return out("BLINDTRANSFER", json_str(data, "code") or target, json_str(data, "context") or "",
                       hold, talked, opos)
        return None

    def _agent(self, ev: Event, data: dict[str, Any], out: Any) -> str | None:
        """An agent's states as an app_queue member's: logged in = a member of its queues, not ready =
        paused in all of them (PAUSEALL, as Asterisk logs a pause given without a queue)."""
        if ev.agent_id is None:
            return None
        state = json_str(data, "state") or ""
        prev = self._state.get(ev.agent_id, json_str(data, "previous") or "logged_out")
        self._state[ev.agent_id] = state
        reason = json_str(data, "reason") or ""
        if state == prev:  # another not-ready reason: Asterisk logs a pause of a paused member again
            changed = state == "not_ready" and reason != (json_str(data, "previous_reason") or "")
            return out("PAUSEALL", reason, callid=NONE, q=NONE) if changed else None
        if prev == "logged_out":
            return out("ADDMEMBER", "PAUSED" if state == "not_ready" else "", callid=MANAGER, q=NONE)
        if state == "logged_out":
            return out("REMOVEMEMBER", "", callid=MANAGER, q=NONE)
        if state == "not_ready":
            return out("PAUSEALL", reason, callid=NONE, q=NONE)
        if prev == "not_ready":
            return out("UNPAUSEALL", json_str(data, "previous_reason") or "", callid=NONE, q=NONE)
        return None


def queue_log(evs: Iterable[Event]) -> Iterator[str]:
    """queue_log lines of `evs` (sorted by time first)."""
    return QueueLogWriter().lines(sorted(evs, key=lambda e: e.ts))
