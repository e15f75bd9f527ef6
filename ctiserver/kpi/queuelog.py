"""The ACD's events as Asterisk's `queue_log`, so tools written for app_queue (QueueMetrics-style reports,
scripts) read ctiserver's calls.

One line per queue event, as Asterisk writes it: `epoch|uniqueid|queue|agent|VERB|data1|data2|...`
(Asterisk's documented queue_log; the `NONE` placeholders where a line belongs to no call or queue):

    ENTERQUEUE|url|callerid|position          acd.enqueue
    CONNECT|holdtime|bridged uniqueid|ringtime acd.answer (not the agent's own callback leg)
    COMPLETECALLER|holdtime|calltime|origpos   acd.complete (COMPLETEAGENT when the agent hung up)
    ABANDON|position|origposition|waittime     acd.abandon
    EXITWITHTIMEOUT|position|origpos|waittime  acd.overflow for timeout, max_wait or tier_max_wait
    EXITWITHKEY|key|position|origpos|waittime  acd.overflow for a key the caller pressed
    RINGNOANSWER|ringtime ms                   acd.rona
    TRANSFER|extension|context|holdtime|calltime|origposition   acd.transfer
    ADDMEMBER / REMOVEMEMBER|                  agent.state logging in / logging out
    PAUSE|reason / UNPAUSE|reason              agent.state into / out of not_ready

Times are whole seconds, as Asterisk writes them. Pure: events in, lines out.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ..events import Event, Kind
from .builder import TIMEOUT_REASONS, json_num, json_str

QUEUE_LOG_KINDS = (Kind.ACD_ENQUEUE, Kind.ACD_ANSWER, Kind.ACD_COMPLETE, Kind.ACD_ABANDON, Kind.ACD_OVERFLOW,
                   Kind.ACD_RONA, Kind.ACD_TRANSFER, Kind.AGENT_STATE)
NONE = "NONE"


def _clean(v: Any) -> str:
    """A field: no separators or line breaks inside (they would shift every later field)."""
    return "" if v is None else str(v).replace("|", "/").replace("\n", " ").replace("\r", " ")


def _secs(v: float | None) -> str:
    return str(max(0, round(v))) if v is not None else "0"


class QueueLogWriter:
    """Folds events (in time order) into queue_log lines; remembers each call's enqueue and answer."""

    def __init__(self) -> None:
        self._enq: dict[str, float] = {}
        self._ans: dict[str, float] = {}
        self._state: dict[str, str] = {}

    def lines(self, evs: Iterable[Event]) -> Iterator[str]:
        for ev in evs:
            line = self.line(ev)
            if line is not None:
                yield line

    def line(self, ev: Event) -> str | None:
        data = ev.data if isinstance(ev.data, dict) else {}
        k = ev.kind
        cid = ev.call_id or NONE
        queue = ev.queue or NONE
        agent = f"Agent/{ev.agent_id}" if ev.agent_id else NONE

        def out(verb: str, *fields: Any) -> str:
            return "|".join([str(int(ev.ts)), _clean(cid), _clean(queue), _clean(agent), verb,
                             *(_clean(f) for f in fields)])

        if k == Kind.AGENT_STATE:
            return self._agent(ev, data, out)
        if ev.call_id is None:
            return None
        q0 = self._enq.get(ev.call_id)
        waited = ev.ts - q0 if q0 is not None else json_num(data, "wait_s")
        if k == Kind.ACD_ENQUEUE:
            self._enq.setdefault(ev.call_id, ev.ts)
            return out("ENTERQUEUE", "", json_str(data, "caller") or "", 1)
        if k == Kind.ACD_ANSWER:
            if json_str(data, "kind") == "callback":
                return None
            self._ans.setdefault(ev.call_id, ev.ts)
            return out("CONNECT", _secs(waited), ev.call_id, _secs(json_num(data, "ring_s")))
        if k == Kind.ACD_COMPLETE:
            talk = (json_num(data, "talk_s") or 0.0) + (json_num(data, "hold_s") or 0.0)
            verb = "COMPLETEAGENT" if json_str(data, "hangup_by") == "agent" else "COMPLETECALLER"
            a = self._ans.get(ev.call_id)
            hold = a - q0 if a is not None and q0 is not None else 0.0
            return out(verb, _secs(hold), _secs(talk), 1)
        if k == Kind.ACD_ABANDON:
            return out("ABANDON", 1, 1, _secs(waited))
        if k == Kind.ACD_OVERFLOW:
            reason = json_str(data, "reason")
            if reason in TIMEOUT_REASONS:
                return out("EXITWITHTIMEOUT", 1, 1, _secs(waited))
            key = json_str(data, "key")
            if key is not None:
                return out("EXITWITHKEY", key, 1, 1, _secs(waited))
            return None  # an overflow to another queue or the door: the next ENTERQUEUE says where
        if k == Kind.ACD_RONA:
            ring = json_num(data, "ring_s")
            return out("RINGNOANSWER", str(round(ring * 1000)) if ring is not None else "0")
        if k == Kind.ACD_TRANSFER:
            a = self._ans.get(ev.call_id)
            hold = a - q0 if a is not None and q0 is not None else 0.0
            talk = ev.ts - a if a is not None else 0.0
            return out("TRANSFER", json_str(data, "target") or json_str(data, "to") or "", "ctiserver",
                       _secs(hold), _secs(talk), 1)
        return None

    def _agent(self, ev: Event, data: dict[str, Any], out: Any) -> str | None:
        if ev.agent_id is None:
            return None
        state = json_str(data, "state") or ""
        prev = self._state.get(ev.agent_id, json_str(data, "previous") or "logged_out")
        self._state[ev.agent_id] = state
        if state == prev:
            return None
        reason = json_str(data, "reason") or ""
        if prev == "logged_out":
            return out("ADDMEMBER", "")
        if state == "logged_out":
            return out("REMOVEMEMBER", "")
        if state == "not_ready":
            return out("PAUSE", reason)
        if prev == "not_ready":
            return out("UNPAUSE", json_str(data, "previous_reason") or "")
        return None


def queue_log(evs: Iterable[Event]) -> Iterator[str]:
    """queue_log lines of `evs` (sorted by time first)."""
    return QueueLogWriter().lines(sorted(evs, key=lambda e: e.ts))
