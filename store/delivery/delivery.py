"""One delivery pass: claim due outbox rows (of one target, for a lane), send them, record what
happened, and keep the lease of what is still in flight.

Outcomes are written back every RECORD_SECONDS while the pass is still sending, so a worker that dies
mid-pass resends only the rows in flight (or finished in the last moment) when its lease runs out.
While requests are in flight their lease is extended every third of its length, so no other worker
takes a row that is still being sent; a request whose lease is about to end all the same is abandoned
by the sender (see `backend.delivery.sender`). A pass cancelled because its worker stops gives the
rows in flight back to the queue at once (sent again, under the same messageId, if the request had
reached the destination). Database work runs in a worker thread so the event loop keeps
sending while the database writes.
"""

from __future__ import annotations

from collections import Counter

import anyio

from backend.clock import to_ms
from backend.delivery.policy import Outcome
from backend.delivery.sender import DEADLINE_SECONDS, Sender
from store.db.store import Store
from store.delivery import outbox
from store.delivery.outbox import Claim

BATCH = 500
RECORD_SECONDS = 0.25


async def deliver_once(store: Store, sender: Sender, owner: str, limit: int = BATCH,
                       lease_ms: int = outbox.LEASE_MS, target_id: str | None = None) -> Counter:
    """Send what is due now (for one target, if given); returns the number of rows per outcome
    (empty when nothing was due)."""
    claims = await anyio.to_thread.run_sync(outbox.claim, store, owner, limit, lease_ms, target_id)
    counts: Counter = Counter()
    done: list[Claim] = [claim for claim in claims if claim.job is None]
    in_flight = {id(claim): claim for claim in claims if claim.job is not None}
    sending = anyio.Event()

    async def record() -> None:
        batch = done[:]
        del done[:len(batch)]
        if batch:
            counts.update(await anyio.to_thread.run_sync(outbox.record, store, batch))

    async def send(claim: Claim) -> None:
        claim.outcome = await sender.send(claim.job)
        in_flight.pop(id(claim), None)
        done.append(claim)

    async def record_while_sending() -> None:
        while not sending.is_set():
            with anyio.move_on_after(RECORD_SECONDS):
                await sending.wait()
            await record()

    async def keep_leases() -> None:
        while not sending.is_set():
            with anyio.move_on_after(lease_ms / 3000):
                await sending.wait()
            leases = list({id(claim.lease): claim.lease for claim in in_flight.values()}.values())
            if leases and not sending.is_set():
                ends, now_ms = await anyio.to_thread.run_sync(outbox.heartbeat, store, leases, lease_ms)
                for lease in leases:
                    lease.extend(ends[lease.token], now_ms)

    try:
        async with anyio.create_task_group() as background:
            background.start_soon(record_while_sending)
            background.start_soon(keep_leases)
            async with anyio.create_task_group() as senders:
                for claim in claims:
                    if claim.job is not None:
                        senders.start_soon(send, claim)
            sending.set()
    except anyio.get_cancelled_exc_class():  # the worker is stopping: what is in flight goes back to the queue
        with anyio.CancelScope(shield=True):
            for claim in in_flight.values():
                claim.outcome = Outcome("released")
                done.append(claim)
            await record()
        raise
    await record()
    return counts


def sender_for(store: Store, deadline_seconds: float = DEADLINE_SECONDS) -> Sender:
    """A sender whose lease checks read the store's clock (use it as an async context manager)."""
    return Sender(lambda: to_ms(store.now()), deadline_seconds)
