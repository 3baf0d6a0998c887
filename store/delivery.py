"""One delivery pass: claim due outbox rows, send them, record what happened.

Database work runs in a worker thread so the event loop keeps sending while SQLite writes. The
same pass runs in the background loop and in tests (with `respx` or a real receiver).
"""

from __future__ import annotations

from collections import Counter

import anyio

from backend.clock import to_ms
from backend.delivery.sender import Sender
from store import outbox
from store.store import Store

BATCH = 500


async def deliver_once(store: Store, sender: Sender, owner: str, limit: int = BATCH,
                       lease_ms: int = outbox.LEASE_MS) -> Counter:
    """Send what is due now; returns the number of rows per outcome (empty when nothing was due)."""
    claims = await anyio.to_thread.run_sync(outbox.claim, store, owner, limit, lease_ms)
    if not claims:
        return Counter()
    sendable = [claim for claim in claims if claim.job is not None]
    outcomes = await sender.send_all([claim.job for claim in sendable])
    for claim, outcome in zip(sendable, outcomes):
        claim.outcome = outcome
    return await anyio.to_thread.run_sync(outbox.record, store, claims)


def sender_for(store: Store, client) -> Sender:
    """A sender whose lease checks read the store's clock."""
    return Sender(client, lambda: to_ms(store.now()))
