"""Callers waiting in the ACD, rebuilt from the event log after a takeover (ctiserver/ha/).

The ACD engine lives in the memory of the node that led. When that node dies, its callers' FastAGI
sessions die with it and the dialplan brings each caller to the next node (`CTI_RESUME`). The new leader
reads the ACD events of recent calls and folds them into who was still waiting, where and since when:

    acd.enqueue                     -> waiting (skill = its queue, tier, since = this enqueue; a `resumed`
                                       enqueue keeps the place it resumes)
    acd.overflow to queue:<q>       -> still waiting, in q (also: ha_released, handed on by a leader that
                                       stepped down)
    acd.retier                      -> still waiting, in the new tier
    acd.rona / acd.offer            -> still waiting (an offer that died with the old leader is no answer)
    acd.answer / abandon / blocked / callback / complete, another overflow, call.end -> not waiting

Callbacks that keep a caller's place are durable rows of their own (acd_callbacks) that the callback
service restores when it starts; they are not rebuilt here.

`waiting_callers` is the pure fold; `resume_order` sorts the callers the way the engine serves them
(tier rank, then place), so a batch enqueued in that order gives free agents to the same callers as
before the takeover: a VIP who was first is still first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..events import Kind

RELEASED = "ha_released"  # ctiserver/acd/runtime.py RELEASED_REASON (this module stays free of the runtime)
_ENDS = frozenset({Kind.ACD_ANSWER, Kind.ACD_ABANDON, Kind.ACD_BLOCKED, Kind.ACD_CALLBACK, Kind.ACD_COMPLETE,
                   Kind.CALL_END})


@dataclass(frozen=True, slots=True)
class Waiting:
    """A caller the previous leader held in a queue."""

    call_id: str
    skill: str
    tier: str
    since: float  # when they were queued (their place and their wait count from here)
    caller: str = ""
    lang: str = ""


QUEUED_VAR = "CTI_QUEUED"  # the channel variable the ACD marks a queued caller with (see queued_mark)


def queued_mark(skill: str, tier: str, since: float, lang: str) -> str:
    """What the ACD writes on a caller's channel once they are queued: `skill|tier|since|lang`.

    The event store learns of an enqueue a flush interval later; a leader killed in between takes the
    only record with it, and the caller would walk the IVR again. The channel outlives the CTI, so the
    node that takes over reads the caller's place from it when the log does not have it (cleared when
    the ACD is done with the caller)."""
    return f"{skill}|{tier}|{since:.3f}|{lang}"


def from_mark(call_id: str, caller: str, mark: str, skills: Iterable[str], tiers: Iterable[str]) -> Waiting | None:
    """The waiting caller a `queued_mark` names; None for an empty, malformed or unknown one."""
    parts = mark.strip().strip('"').split("|")
    if len(parts) != 4 or parts[0] not in set(skills) or parts[1] not in set(tiers):
        return None
    try:
        since = float(parts[2])
    except ValueError:
        return None
    return Waiting(call_id, parts[0], parts[1], since, caller, parts[3])


@dataclass(frozen=True, slots=True)
class AcdRecord:
    """One stored event, as much of it as the fold needs."""

    kind: str
    ts: float
    call_id: str
    queue: str | None = None
    tier: str | None = None
    data: Mapping[str, Any] | None = None


def waiting_callers(records: Iterable[AcdRecord]) -> list[Waiting]:
    """The callers still waiting after `records` (in log order: ts, then id), oldest place first.

    Callbacks the ACD queued for the outbound side (`kind: callback`) and consultation legs are left out."""
    state: dict[str, Waiting | None] = {}
    for r in records:
        data = r.data or {}
        current = state.get(r.call_id)
        if r.kind == Kind.ACD_ENQUEUE:
            if data.get("kind") in ("callback", "consult"):
                state[r.call_id] = None
                continue
            kept = current if current is not None and data.get("resumed") else None
            state[r.call_id] = Waiting(r.call_id, r.queue or "", r.tier or "", kept.since if kept else r.ts,
                                       str(data.get("caller") or (kept.caller if kept else "")),
                                       str(data.get("lang") or (kept.lang if kept else "")))
        elif current is None:
            continue
        elif r.kind == Kind.ACD_OVERFLOW:
            target = str(data.get("target") or "")
            if data.get("reason") == RELEASED:
                continue  # handed on to the next CTI node by a leader that stepped down: still waiting
            state[r.call_id] = replace(current, skill=target[6:]) if target.startswith("queue:") else None
        elif r.kind == Kind.ACD_RETIER:
            state[r.call_id] = replace(current, tier=str(data.get("tier") or r.tier or current.tier))
        elif r.kind in _ENDS:
            state[r.call_id] = None
    return sorted((w for w in state.values() if w is not None), key=lambda w: (w.since, w.call_id))


def resume_order(waiting: Sequence[Waiting], tier_rank: Mapping[str, int]) -> list[Waiting]:
    """In the order the engine would serve them: tier rank (unknown tiers last), then place."""
    last = max(tier_rank.values(), default=0) + 1
    return sorted(waiting, key=lambda w: (tier_rank.get(w.tier, last), w.since, w.call_id))


RESUME_KINDS = (Kind.ACD_ENQUEUE, Kind.ACD_OVERFLOW, Kind.ACD_RETIER, *sorted(_ENDS))
