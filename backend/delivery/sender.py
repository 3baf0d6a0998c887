"""Sends groups of outbox rows: per lane (a destination instance, or an activation with its own URL)
its own `httpx.AsyncClient` and connection pool, at most `max_in_flight` requests at a time and
`requests_per_second` on average, each request within a total deadline, and none open after its lease
has run out: a request still open when its lease is about to end (its heartbeats did not reach the
database) is abandoned and retried, so two workers never have one row in flight at once. A pool per lane keeps a
destination that holds connections open from slowing every other request's pool bookkeeping. A
`Retry-After` pauses the lane: until then its requests are not made and their rows wait as asked.

Whatever goes wrong with one request (a malformed URL, a header that cannot be encoded, a dripping
response, a connection reset) ends that request's attempt with an outcome; nothing escapes to stop
other requests or other lanes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio
import httpx

from backend.clock import from_ms
from backend.delivery import policy, warehouse_sink
from backend.delivery.adapters import HttpCall, Target
from backend.delivery.warehouse_sink import SqlWrite
from backend.delivery.ratelimit import TokenBucket

LEASE_MARGIN_MS = 2_000
CONNECT_SECONDS = 5.0
DEADLINE_SECONDS = 20.0  # connect, send and the whole response, however slowly it arrives


@dataclass
class Lease:
    """The claim a worker holds on rows: its fencing token, until when (a heartbeat moves `until_ms`),
    and how long it lasts from a claim or heartbeat."""

    token: str
    until_ms: int
    length_ms: int
    open_requests: set[anyio.CancelScope] = field(default_factory=set, compare=False, repr=False)

    def seconds_left(self, now_ms: int) -> float:
        """How long a request may still be open: until shortly before the lease ends."""
        return (self.until_ms - min(LEASE_MARGIN_MS, self.length_ms // 4) - now_ms) / 1000

    def nearly_over(self, now_ms: int) -> bool:
        """Too close to its end to start a request: another worker may take the rows soon."""
        return self.seconds_left(now_ms) <= 0

    def extend(self, until_ms: int, now_ms: int) -> None:
        """A heartbeat moved the lease's end: requests open under it may stay open longer."""
        self.until_ms = until_ms
        for scope in self.open_requests:
            scope.deadline = anyio.current_time() + self.seconds_left(now_ms)

    @contextmanager
    def bounding(self, now_ms: int) -> Iterator[anyio.CancelScope]:
        """A scope that cancels what runs in it when the lease is about to end (see `extend`)."""
        with anyio.move_on_after(self.seconds_left(now_ms)) as scope:
            self.open_requests.add(scope)
            try:
                yield scope
            finally:
                self.open_requests.discard(scope)


@dataclass(frozen=True)
class Job:
    """The requests for one group of rows, all of them held under `lease`."""

    target: Target
    calls: Sequence[HttpCall | SqlWrite]
    lease: Lease


@dataclass
class Lane:
    """What requests to one lane share; a Retry-After pauses the lane until `paused_until_ms`."""

    client: httpx.AsyncClient
    slots: anyio.Semaphore
    bucket: TokenBucket | None
    paused_until_ms: int = 0


class Sender:
    """Use as `async with Sender(now_ms) as sender:`; closes every lane's client on the way out."""

    def __init__(self, now_ms: Callable[[], int], deadline_seconds: float = DEADLINE_SECONDS):
        self.now_ms = now_ms
        self.deadline_seconds = deadline_seconds
        self.lanes: dict[str, Lane] = {}

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(self, *exc_info) -> None:
        for lane in self.lanes.values():
            await lane.client.aclose()

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

    async def _call(self, job: Job, call: HttpCall | SqlWrite) -> policy.Outcome:
        lane = self._lane(job.target)
        if isinstance(call, SqlWrite):
            return await self._write(job, lane, call)
        async with lane.slots:
            if lane.bucket is not None:
                await lane.bucket.acquire()
            now_ms = self.now_ms()
            if job.lease.nearly_over(now_ms):
                return policy.Outcome("released")
            if now_ms < lane.paused_until_ms:
                return policy.paused(lane.paused_until_ms - now_ms)
            started = time.perf_counter()
            response = None
            timeout = httpx.Timeout(self.deadline_seconds, connect=CONNECT_SECONDS)
            try:
                with anyio.move_on_after(self.deadline_seconds), job.lease.bounding(now_ms) as lease_scope:
                    response = await lane.client.request(call.method, call.url, headers=call.headers,
                                                         content=call.body, timeout=timeout)
            except Exception as error:  # one request's boundary: its failure is this attempt's outcome
                return policy.request_error(error, _elapsed_ms(started))
            if response is None and lease_scope.cancel_called:
                return policy.lease_ending(_elapsed_ms(started))
            if response is None:
                return policy.deadline_passed(self.deadline_seconds, _elapsed_ms(started))
            outcome = policy.classify(response, _elapsed_ms(started), from_ms(self.now_ms()))
            if outcome.kind == "throttled" and outcome.retry_after_ms:
                lane.paused_until_ms = max(lane.paused_until_ms, self.now_ms() + outcome.retry_after_ms)
            return outcome

    async def _write(self, job: Job, lane: Lane, call: SqlWrite) -> policy.Outcome:
        """A warehouse write, in a worker thread (the database's driver blocks), within its lease."""
        async with lane.slots:
            if job.lease.nearly_over(self.now_ms()):
                return policy.Outcome("released")
            started = time.perf_counter()
            return await anyio.to_thread.run_sync(warehouse_sink.write, call, lambda: _elapsed_ms(started))

    def _lane(self, target: Target) -> Lane:
        """The lane's client, in-flight slots and rate bucket, made on first use."""
        if target.lane not in self.lanes:
            rate = target.requests_per_second
            limits = httpx.Limits(max_connections=target.max_in_flight, max_keepalive_connections=target.max_in_flight)
            self.lanes[target.lane] = Lane(httpx.AsyncClient(limits=limits), anyio.Semaphore(target.max_in_flight),
                                           TokenBucket(rate) if rate else None)
        return self.lanes[target.lane]


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
