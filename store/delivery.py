"""One delivery pass: claim due outbox rows, send them, record what happened.

Outcomes are written back every RECORD_SECONDS while the pass is still sending, so a worker that dies
mid-pass resends only the rows in flight (or finished in the last moment) when its lease runs out.
Database work runs in a worker thread so the event loop keeps sending while SQLite writes.
"""

from __future__ import annotations

from collections import Counter

import anyio

from backend.clock import to_ms
from backend.delivery.sender import Sender
from store import outbox
from store.outbox import Claim
from store.store import Store

BATCH = 500
RECORD_SECONDS = 0.05


async def deliver_once(store: Store, sender: Sender, owner: str, limit: int = BATCH,
                       lease_ms: int = outbox.LEASE_MS) -> Counter:
    """Send what is due now; returns the number of rows per outcome (empty when nothing was due)."""
    claims = await anyio.to_thread.run_sync(outbox.claim, store, owner, limit, lease_ms)
    counts: Counter = Counter()
    done: list[Claim] = [claim for claim in claims if claim.job is None]
    sending = anyio.Event()

    async def record() -> None:
        batch = done[:]
        del done[:len(batch)]
        if batch:
            counts.update(await anyio.to_thread.run_sync(outbox.record, store, batch))

    async def send(claim: Claim) -> None:
        claim.outcome = await sender.send(claim.job)
        done.append(claim)

    async def record_while_sending() -> None:
        while not sending.is_set():
            with anyio.move_on_after(RECORD_SECONDS):
                await sending.wait()
            await record()

    async with anyio.create_task_group() as recorder:
        recorder.start_soon(record_while_sending)
        async with anyio.create_task_group() as senders:
            for claim in claims:
                if claim.job is not None:
                    senders.start_soon(send, claim)
        sending.set()
    await record()
    return counts


def sender_for(store: Store, client) -> Sender:
    """A sender whose lease checks read the store's clock."""
    return Sender(client, lambda: to_ms(store.now()))
