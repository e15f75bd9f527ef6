"""The event catalogue: one record shape for everything the store logs.

Every feature writes `Event`s; the store appends them; KPIs are SQL over them.
`kind` is a dotted name from `Kind`; the typed columns are the ones KPIs group
and filter by, everything else goes in `data` (JSON).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Kind:
    """Event kinds and the `data` keys each carries (a contract between features)."""

    # --- call tracker (from AMI) -----------------------------------------
    CALL_NEW = "call.new"  # data: uniqueid, channel, caller_num, caller_name, exten, context, direction
    # the caller of a call changed after call.new (an Originate's channel gets its CallerID just after it is
    # created: NewCallerid); data: uniqueid, caller_num, caller_name
    CALL_CALLERID = "call.callerid"
    CALL_LEG = "call.leg"  # a further channel joined a call; data: uniqueid, channel
    CALL_ANSWER = "call.answer"  # data: uniqueid, channel
    CALL_HANGUP = "call.hangup"  # a channel left; data: uniqueid, channel, cause, cause_txt
    CALL_END = "call.end"  # the last channel of a call left; data: duration_s, answered(bool), caller_num, caller_name
    AMI_CONNECTED = "ami.connected"  # data: server, uptime, last_reload, restarted(bool)
    AMI_LOST = "ami.lost"  # data: server, reason

    # --- IVR ----------------------------------------------------------------
    IVR_START = "ivr.start"  # data: tree, version, caller
    IVR_NODE = "ivr.node"  # data: node, node_kind, title ({zh, en}, when the node has one)
    IVR_DTMF = "ivr.dtmf"  # data: node, digits
    IVR_END = "ivr.end"  # data: outcome ('self_service'|'agent'|'hangup'|'error'), node

    # --- ACD (queue = skill name; tier column is the caller's tier) ----------
    ACD_ENQUEUE = "acd.enqueue"  # data: caller, position
    ACD_OFFER = "acd.offer"  # agent rung; data: ring_timeout_s
    # data: wait_s (enqueue -> answer), ring_s; agent_uniqueid (the agent channel's, when known: fallback calls)
    ACD_ANSWER = "acd.answer"
    ACD_RONA = "acd.rona"  # ring no answer; data: ring_s
    ACD_ABANDON = "acd.abandon"  # caller hung up while waiting/ringing; data: wait_s (position: fallback calls)
    ACD_OVERFLOW = "acd.overflow"  # left the queue to another destination; data: target, reason, wait_s
    ACD_BLOCKED = "acd.blocked"  # refused at the door (full/closed/no agents); data: reason
    # data: target, kind ('blind'|'attended'), context (the dialplan context it went to; desktop transfers)
    ACD_TRANSFER = "acd.transfer"
    # a transfer that could not complete (agent_id: the transferring agent); data: target, target_kind,
    # reason ('unreachable'|'busy'|'noanswer'), dial_status, returned_to ('agent'|'queue'|'fallback'), queue
    ACD_TRANSFER_FAILED = "acd.transfer_failed"
    ACD_COMPLETE = "acd.complete"  # agent leg ended; data: talk_s, hold_s
    ACD_CALLBACK = "acd.callback"  # callback requested/scheduled; data: reason, due_ts
    # a callback closed (call_id: the call that asked for it); data: status ('done'|'not_reached'|
    # 'expired'|'cancelled'), attempts, outcome, callback (its id)
    ACD_CALLBACK_END = "acd.callback_end"
    ACD_VOICEMAIL = "acd.voicemail"  # a caller left a message at a voicemail destination; data: box, path, duration_s
    ACD_RETIER = "acd.retier"  # a supervisor moved a waiting caller to another tier; data: previous
    AGENT_STATE = "agent.state"  # data: state, previous, reason

    # --- outbound ---------------------------------------------------------
    # data: campaign, contact, number, attempt. An ACD callback's agent leg, rung before the customer is
    # dialled, is logged with data leg='agent' and no campaign (an outbound call, not a try on the customer).
    OUT_ATTEMPT = "outbound.attempt"
    OUT_RESULT = "outbound.result"  # data: campaign, contact, outcome, attempt, dtmf
    # a satisfaction score; call_id, agent_id, queue: of the call (or work order's call) being rated;
    # data: rating (1..5), campaign (None from the IVR), source
    SURVEY_RATING = "survey.rating"
    # a satisfaction callback (回访) of a closed work order; call_id, agent_id, queue: the order's call;
    # data: id (the work order), action ('due' when selected | 'done' customer reached | 'not_reached'),
    # category, mode ('agent'|'survey')
    WORKORDER_CALLBACK = "workorder.callback"

    # --- outages and repair (issue 16) -------------------------------------
    OUTAGE = "outage"  # data: id, action ('add'|'update'|'close'), kind, user
    # a fault call attached to an open outage (call_id: the call); data: outage, reports (the count now)
    OUTAGE_REPORT = "outage.report"
    # a repair order's step; data: id, step ('dispatch'|'ack'|'arrive'|'report'|'restore'|'cancel'), crew,
    # area, area_class, outage, on_time (arrive/report: done by the deadline)
    REPAIR = "repair"
    REPAIR_ALERT = "repair.alert"  # data: id, step, level ('reminder'|'escalation'), due_ts, crew
    # a repair order's call to its crew: data id, attempt, outcome ('dialing'|'accepted'|'no_key'|
    # 'no_answer'|'busy'|'congestion'|'failed'|'given_up'), digit
    REPAIR_CALL = "repair.call"
    SMS = "sms"  # a message settled; data: id, kind, state ('delivered'|'failed'|'fallback'|'excluded'), ref

    # --- desktop ----------------------------------------------------------
    DISPOSITION = "disposition"  # data: category, note, resolved(bool)
    WORKORDER = "workorder"  # data: id, action ('open'|'dispatched'|...), category

    # --- recording, live monitoring, QC (ctiserver/recording, ctiserver/qc) ---------------------
    RECORDING_START = "recording.start"  # the dialplan started MixMonitor on a leg; data: uniqueid, spool, channel
    RECORDING_DONE = "recording.done"  # indexed; data: id, duration_s, size, codec
    RECORDING_DELETED = "recording.deleted"  # retention; data: id, kind, days, path
    RECORDING_ACCESS = "recording.access"  # played or downloaded; data: id, user, action, range
    MONITOR = "monitor"  # a supervisor listens/whispers/barges; data: mode, supervisor, phone, action, channel
    QC = "qc"  # inspection task changed; data: task, action ('scored'|'acknowledged'|'appealed'|'decided'), score

    # --- workforce management (ctiserver/wfm) ---------------------------------------------------
    # a shift handover (agent_id: the leader acting); data: id, action ('handed'|'acknowledged'), user,
    # boundary_ts (the shift change), incoming (handed) / outgoing, rostered (acknowledged)
    WFM_HANDOVER = "wfm.handover"


@dataclass(slots=True)
class Event:
    """One row of the append-only event log."""

    kind: str
    ts: float  # epoch seconds, UTC, from the emitter's injected clock
    call_id: str | None = None  # Asterisk Linkedid (or our own id for outbound/sim)
    agent_id: str | None = None
    queue: str | None = None
    tier: str | None = None
    server: str | None = None  # which Asterisk
    data: dict[str, Any] = field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ts": self.ts,
            "call_id": self.call_id,
            "agent_id": self.agent_id,
            "queue": self.queue,
            "tier": self.tier,
            "server": self.server,
            "data": self.data,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Event:
        return cls(
            kind=row["kind"],
            ts=float(row["ts"]),
            call_id=row.get("call_id"),
            agent_id=row.get("agent_id"),
            queue=row.get("queue"),
            tier=row.get("tier"),
            server=row.get("server"),
            data=dict(row.get("data") or {}),
        )
