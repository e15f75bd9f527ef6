"""Screen-pop content: the caller's record as the agent page shows it (keys read by static/agent.js)."""

from __future__ import annotations

from typing import Any

from .ports import CustomerLookup


async def make_pop(customers: CustomerLookup, *, call_id: str, number: str, queue: str | None = None,
                   ivr_path: list[str] | None = None, wait_s: float | None = None,
                   phase: str = "offer") -> dict[str, Any]:
    """Build the pop for `hub.publish_pop`: caller number, customer record (or none), IVR path, wait.

    `phase` is "offer" (ringing) or "answer". An unknown number still pops, with no record.
    """
    record = await customers.by_phone(number) if number else None
    return {"call_id": call_id, "phase": phase, "number": number, "queue": queue,
            "ivr_path": list(ivr_path or []), "wait_s": wait_s, "customer": record}
