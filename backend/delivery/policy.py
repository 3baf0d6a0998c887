"""What a response means for a delivery, and when to try again.

408, 429, 5xx and transport errors are retried with jittered exponential backoff until the retry
window (4 hours from the first attempt) closes; a `Retry-After` on a 429 or 503 sets the next attempt
without counting an attempt; any other 4xx is final. What is still failing when the window closes is
dead-lettered.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import httpx

RETRY_WINDOW_MS = 4 * 3_600_000
BASE_BACKOFF_MS = 5_000
MAX_BACKOFF_MS = 30 * 60_000
EXCERPT_CHARS = 500


@dataclass(frozen=True)
class Outcome:
    """The result of one attempt. `kind` is delivered, retry (spends an attempt), throttled (a
    Retry-After wait that spends none), failed (final) or released (not sent: the lease ran out)."""

    kind: str
    status: int | None = None
    latency_ms: int = 0
    error: str | None = None
    retry_after_ms: int | None = None


def classify(response: httpx.Response, latency_ms: int, now: datetime) -> Outcome:
    """The outcome of an HTTP response (its body, read in full, and its headers are looked at only
    when it is not a success: decoding every success's body cost the sender a few per cent)."""
    status = response.status_code
    if 200 <= status < 300:
        return Outcome("delivered", status, latency_ms)
    error = f"HTTP {status}: {response.text[:EXCERPT_CHARS]}".rstrip(": ")
    if status in (429, 503):
        wait = retry_after_ms(response.headers.get("retry-after"), now)
        if wait is not None:
            return Outcome("throttled", status, latency_ms, error, wait)
    if status in (408, 429) or status >= 500:
        return Outcome("retry", status, latency_ms, error)
    return Outcome("failed", status, latency_ms, error)


# Requests that can never succeed as configured: a malformed or unsupported URL, a header value that
# cannot be sent, a body or setting of the wrong type. Their rows are dead-lettered at once.
NEVER_SUCCEEDS = (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError, UnicodeError, ValueError,
                  TypeError)
DELTA_SECONDS = re.compile(r"[0-9]{1,10}")


def request_error(error: Exception, latency_ms: int) -> Outcome:
    """The outcome of a request that raised: final when it can never succeed, else retried (network
    errors, timeouts, resets, and anything unforeseen)."""
    kind = "failed" if isinstance(error, NEVER_SUCCEEDS) else "retry"
    return Outcome(kind, None, latency_ms, f"{type(error).__name__}: {error}"[:EXCERPT_CHARS])


def paused(wait_ms: int) -> Outcome:
    """Not sent: the destination asked, in an earlier answer's Retry-After, to wait this long."""
    return Outcome("throttled", None, 0, "not sent: the destination asked to wait (Retry-After)", wait_ms)


def deadline_passed(seconds: float, latency_ms: int) -> Outcome:
    return Outcome("retry", None, latency_ms, f"no complete response within {seconds:g} s")


def lease_ending(latency_ms: int) -> Outcome:
    """Abandoned: the request was still open when its lease was about to end (its heartbeats did not
    get through), and another worker may soon take the row; retried, under the same messageId."""
    return Outcome("retry", None, latency_ms, "no complete response before the row's lease ran out")


def retry_after_ms(value: str | None, now: datetime) -> int | None:
    """A Retry-After header as milliseconds from `now`: delta-seconds in ASCII digits, or an HTTP
    date; anything else counts as absent. Waits beyond the retry window are cut to it."""
    if not value:
        return None
    value = value.strip()
    if DELTA_SECONDS.fullmatch(value):
        return min(int(value) * 1000, RETRY_WINDOW_MS)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    try:
        return min(max(0, int((when - now).total_seconds() * 1000)), RETRY_WINDOW_MS)
    except OverflowError:
        return None


def backoff_ms(attempts: int, rng: random.Random | None = None) -> int:
    """The wait after the `attempts`-th failed attempt: exponential from 5 s, capped at 30 min, with
    "equal jitter" (half fixed, half random) so many failing rows do not retry in step."""
    ceiling = min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** max(0, attempts - 1))
    return ceiling // 2 + int((rng or random).random() * (ceiling // 2))
