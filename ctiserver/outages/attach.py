"""Duplicate fault reports: a fault call from a customer inside an open outage is attached to the outage
(the agent's pop shows it with its count; the IVR has already told the caller the expected restoration).

The IVR says where a fault call is: it reaches one of `outages.yaml` `attach_at_nodes` (the demo tree's
`fault_known`: "the outage in your area is being repaired, expected back at ..."). On that `ivr.node`
event the caller (from the call's `ivr.start`) is looked up, the open outage covering their area or
account is found, and the call is attached to it once.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from ..events import Event, Kind
from ..lifecycle import TaskOwner
from .service import OutageService

log = logging.getLogger(__name__)

Lookup = Callable[[str], Awaitable[dict[str, Any] | None]]  # caller number -> customer (area, account)


class FaultAttacher:
    def __init__(self, outages: OutageService, lookup: Lookup, nodes: frozenset[str]) -> None:
        self.outages, self.lookup, self.nodes = outages, lookup, nodes
        self._callers: dict[str, str] = {}  # call_id -> caller, while its IVR session runs
        self._done: set[str] = set()
        self._tasks: TaskOwner | None = None

    def on_event(self, event: Event) -> None:
        """An event listener of the server (plain: the work runs in a task of this feature)."""
        cid = event.call_id or ""
        if event.kind == Kind.IVR_START and cid:
            self._callers[cid] = str(event.data.get("caller") or "")
        elif event.kind == Kind.IVR_END:
            self._callers.pop(cid, None)
            self._done.discard(cid)
        elif event.kind == Kind.IVR_NODE and event.data.get("node") in self.nodes and cid not in self._done:
            caller = self._callers.get(cid, "")
            if caller and self._tasks is not None and not self._tasks.closing:
                self._done.add(cid)
                self._tasks.spawn(self._attach(cid, caller), name=f"outage-attach-{cid}")

    async def _attach(self, call_id: str, caller: str) -> None:
        customer = await self.lookup(caller)
        area = str((customer or {}).get("area") or "")
        account = str((customer or {}).get("account") or "")
        outage = await self.outages.for_customer(area=area, account=account)
        if outage is None:
            return
        n = await self.outages.attach(outage, call_id=call_id, account=account, number=caller)
        log.info("fault call %s from %s attached to outage %s (%d reports)", call_id, caller, outage.id, n)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FaultAttacher]:
        async with TaskOwner("outage reports", grace_s=2.0) as tasks:
            self._tasks = tasks
            try:
                yield self
            finally:
                self._tasks = None
