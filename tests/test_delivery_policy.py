"""The retry policy and the rate limiter on their own: which responses are retried, how long to wait,
and how many requests a token bucket lets through."""

import random
from datetime import datetime, timezone

import httpx
import pytest

from backend.delivery import policy
from backend.delivery.ratelimit import TokenBucket

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 22, 9, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("status, kind", [(200, "delivered"), (204, "delivered"), (408, "retry"), (429, "retry"),
                                          (500, "retry"), (503, "retry"), (400, "failed"), (401, "failed"),
                                          (404, "failed"), (422, "failed")])
def test_responses_are_classified_by_status(status, kind):
    assert policy.classify(httpx.Response(status), 3, NOW).kind == kind


def test_a_failure_s_error_quotes_the_start_of_its_body():
    outcome = policy.classify(httpx.Response(500, text="down for maintenance " * 100), 3, NOW)
    assert outcome.error == f"HTTP 500: {('down for maintenance ' * 100)[:policy.EXCERPT_CHARS]}"
    assert policy.classify(httpx.Response(404), 3, NOW).error == "HTTP 404"


def test_retry_after_in_seconds_or_as_a_date_throttles_without_an_attempt():
    assert policy.classify(httpx.Response(429, headers={"Retry-After": "120"}), 1, NOW) == policy.Outcome(
        "throttled", 429, 1, "HTTP 429", 120_000)
    dated = policy.classify(httpx.Response(503, headers={"retry-after": "Sun, 22 Nov 2026 09:31:00 GMT"}), 1, NOW)
    assert (dated.kind, dated.retry_after_ms) == ("throttled", 60_000)
    assert policy.classify(httpx.Response(429, headers={"retry-after": "soon"}), 1, NOW).kind == "retry"


def test_backoff_doubles_from_five_seconds_with_jitter_up_to_thirty_minutes():
    rng = random.Random(1)
    for attempts, ceiling in [(1, 5_000), (2, 10_000), (3, 20_000), (12, 1_800_000)]:
        waits = [policy.backoff_ms(attempts, rng) for _ in range(50)]
        assert all(ceiling // 2 <= wait <= ceiling for wait in waits)
        assert len(set(waits)) > 1


async def test_a_token_bucket_allows_its_rate_after_the_burst():
    clock = [0.0]

    async def sleep(seconds):
        clock[0] += seconds

    bucket = TokenBucket(rate=10, burst=5, clock=lambda: clock[0], sleep=sleep)
    for _ in range(25):
        await bucket.acquire()
    assert clock[0] == pytest.approx(2.0), "5 at once, then 20 more at 10 a second"
