"""A token bucket per destination: at most `rate` requests per second on average, bursts of up to
`burst`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio

EPSILON = 1e-9  # refill arithmetic in floats: a token short by rounding is a whole token


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = anyio.sleep):
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.tokens = self.burst
        self.clock = clock
        self.sleep = sleep
        self.updated = clock()
        self.lock = anyio.Lock()

    async def acquire(self) -> None:
        """Wait until a request may be made, and take its token."""
        async with self.lock:
            while True:
                now = self.clock()
                self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1 - EPSILON:
                    self.tokens = max(0.0, self.tokens - 1)
                    return
                await self.sleep((1 - self.tokens) / self.rate)
