"""Sends groups of outbox rows with one shared `httpx.AsyncClient`: at most `max_in_flight` requests
at a time and `requests_per_second` on average per destination, and never after a lease has run out
(so a row another worker has taken over is not sent twice by us)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
import httpx

from backend.clock import from_ms
from backend.delivery import policy
from backend.delivery.adapters import HttpCall, Target
from backend.delivery.ratelimit import TokenBucket

LEASE_MARGIN_MS = 2_000
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@dataclass(frozen=True)
class Job:
    """The requests for one group of rows, all of them leased until `lease_until_ms`."""

    target: Target
    calls: Sequence[HttpCall]
    lease_until_ms: int


class Sender:
    def __init__(self, client: httpx.AsyncClient, now_ms: Callable[[], int]):
        self.client = client
        self.now_ms = now_ms
        self.limits: dict[str, tuple[anyio.Semaphore, TokenBucket | None]] = {}

    async def send(self, job: Job) -> policy.Outcome:
        """Make the job's requests in order; the first that does not succeed decides the outcome."""
        outcome = policy.Outcome("delivered")
        total_ms = 0
        for call in job.calls:
            outcome = await self._call(job, call)
            total_ms += outcome.latency_ms
            if outcome.kind != "delivered":
                break
        return policy.Outcome(outcome.kind, outcome.status, total_ms, outcome.error, outcome.retry_after_ms)

    async def _call(self, job: Job, call: HttpCall) -> policy.Outcome:
        slot, bucket = self._limits(job.target)
        async with slot:
            if bucket is not None:
                await bucket.acquire()
            if self.now_ms() > job.lease_until_ms - LEASE_MARGIN_MS:
                return policy.Outcome("released")
            started = time.perf_counter()
            try:
                response = await self.client.request(call.method, call.url, headers=call.headers,
                                                     content=call.body, timeout=TIMEOUT)
            except httpx.HTTPError as error:
                return policy.transport_error(error, _elapsed_ms(started))
            outcome = policy.classify(response.status_code, dict(response.headers), response.text,
                                      _elapsed_ms(started), from_ms(self.now_ms()))
            if outcome.kind == "throttled" and bucket is not None and outcome.retry_after_ms:
                bucket.pause(outcome.retry_after_ms / 1000)
            return outcome

    def _limits(self, target: Target) -> tuple[anyio.Semaphore, TokenBucket | None]:
        """The destination instance's in-flight slots and rate bucket, made on first use."""
        if target.destination_id not in self.limits:
            rate = target.requests_per_second
            self.limits[target.destination_id] = (anyio.Semaphore(target.max_in_flight),
                                                  TokenBucket(rate) if rate else None)
        return self.limits[target.destination_id]


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
