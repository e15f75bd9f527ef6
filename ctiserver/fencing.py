"""Fencing claims: what a feature asks of the election before a side effect that must not happen twice.

With an `ha:` block (docs/ha.md) every Originate, ring and agent leg is claimed under the leader's epoch
(ctiserver/ha/claims.py): a node that no longer leads, or an action claimed before, is refused with an
exception and the action is not taken. A single node claims nothing (`NO_CLAIMS`). The features get their
`Claims` as a constructor argument from the wiring (ctiserver/app/wiring.py), never set afterwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


class Claims(Protocol):
    """Claim `(kind, key)` once, under this node's leadership; raise (Fenced, AlreadyClaimed) to refuse it."""

    async def in_transaction(self, conn: AsyncConnection, kind: str, key: str) -> None:
        """Inside the caller's transaction: the claim commits (or rolls back) with the action's own record."""
        ...

    async def action(self, kind: str, key: str) -> None:
        """In a transaction of its own (a key unique across every process and term, e.g. a random prefix)."""
        ...

    async def this_term(self, kind: str, key: str) -> None:
        """Like `action` for a key that is unique within this leader's term only (a per-process counter)."""
        ...


class NoClaims:
    """A single node (no `ha:` block): nothing to fence, every claim is granted at once."""

    async def in_transaction(self, conn: AsyncConnection, kind: str, key: str) -> None:
        return None

    async def action(self, kind: str, key: str) -> None:
        return None

    async def this_term(self, kind: str, key: str) -> None:
        return None


NO_CLAIMS: Claims = NoClaims()
