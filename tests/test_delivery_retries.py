"""Reliable delivery: retries by response class, Retry-After, dead letters and re-drive, leases, order
per profile, and disabled targets (outbound HTTP mocked with respx; the clock is frozen and moved)."""

from datetime import timedelta

import httpx
import pytest
import respx

from store.catalog import activations, audiences
from store.compute import runs
from store.delivery import outbox
from tests.conftest import NOW
from tests.delivery_helpers import activate, audience, bodies, connect, deliver, outbox_states, sign_up, webhook
from tests.ingest_helpers import rows, send

pytestmark = pytest.mark.anyio
HOOK = "https://hooks.example.com/in"


@pytest.fixture
def activation(store, space_id):
    sign_up(store, space_id, "ann")
    members = audience(store, space_id)
    connection = connect(store, space_id, members.id, "webhooks-actions", {})
    return activate(store, space_id, members.id, connection.id, "Audience Membership Changed", mapping=webhook())


def later(store, **delta):
    store.clock.set(store.now() + timedelta(**delta))


def attempts(store):
    return rows(store, "select outcome, status from delivery_attempt order by id")


async def test_429_with_retry_after_waits_that_long_without_spending_an_attempt(store, activation):
    with respx.mock:
        respx.post(HOOK).mock(side_effect=[httpx.Response(429, headers={"Retry-After": "30"}), httpx.Response(200)])
        assert await deliver(store) == {"throttled": 1}
        assert rows(store, "select attempts, next_attempt_at_ms - :now from outbox",
                    now=int(NOW.timestamp() * 1000)) == [(0, 30_000)]
        later(store, seconds=29)
        assert await deliver(store) == {}
        later(store, seconds=1)
        assert await deliver(store) == {"delivered": 1}
    assert attempts(store) == [("throttled", 429), ("delivered", 200)]


async def test_503_is_retried_with_backoff_until_it_succeeds(store, activation):
    with respx.mock:
        route = respx.post(HOOK).mock(side_effect=[httpx.Response(503, text="busy"), httpx.Response(200)])
        assert await deliver(store) == {"retry": 1}
        [(tries, wait)] = rows(store, "select attempts, next_attempt_at_ms - :now from outbox", now=int(NOW.timestamp() * 1000))
        assert tries == 1 and 2_500 <= wait <= 5_000
        later(store, seconds=5)
        assert await deliver(store) == {"delivered": 1}
    first, second = bodies(route)
    assert first == second, "a retry resends the same payload with the same messageId"
    health = outbox.health_of(store, [activation.id])[activation.id]
    assert (health.delivered, health.retrying, health.last_error) == (1, 0, "HTTP 503: busy")


async def test_a_timeout_is_retried(store, activation):
    with respx.mock:
        respx.post(HOOK).mock(side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200)])
        assert await deliver(store) == {"retry": 1}
        later(store, seconds=5)
        assert await deliver(store) == {"delivered": 1}
    assert attempts(store) == [("retry", None), ("delivered", 200)]


async def test_a_400_is_dead_lettered_at_once_and_can_be_redriven(store, activation):
    with respx.mock:
        respx.post(HOOK).mock(side_effect=[httpx.Response(400, json={"error": "bad field"}), httpx.Response(200)])
        assert await deliver(store) == {"dead": 1}
        later(store, hours=1)
        assert await deliver(store) == {}, "a 4xx other than 408/429 is never retried"
        [dead] = outbox.dead_letters(store, target_id=activation.id)
        assert dead.last_status == 400 and "bad field" in dead.last_error
        health = outbox.health_of(store, [activation.id])[activation.id]
        assert health.dead_lettered == 1 and "bad field" in health.last_error
        assert outbox.redrive(store, target_id=activation.id) == 1
        assert await deliver(store) == {"delivered": 1}


async def test_retries_stop_after_four_hours(store, activation):
    with respx.mock:
        respx.post(HOOK).respond(500)
        for _ in range(300):
            if await deliver(store) == {"dead": 1}:
                break
            later(store, minutes=1)
    assert outbox_states(store) == {"dead": 1}
    [(first, last, tries)] = rows(store, "select first_attempt_at_ms, last_attempt_at_ms, attempts from outbox")
    assert 3 * 3_600_000 < last - first <= 4 * 3_600_000 + 60_000
    assert 10 <= tries <= 20, "exponential backoff, capped at 30 minutes"


async def test_a_leased_row_is_not_claimed_twice_until_its_lease_expires(store, activation):
    first = outbox.claim(store, "worker-1", 10)
    assert len(first) == 1
    assert outbox.claim(store, "worker-2", 10) == []
    later(store, seconds=61)
    second = outbox.claim(store, "worker-2", 10)
    assert [c.rows[0].message_id for c in second] == [first[0].rows[0].message_id]
    assert second[0].rows[0].payload == first[0].rows[0].payload, "the payload is built once and kept"


async def test_a_profiles_exit_waits_for_its_entry_to_be_delivered(store, space_id):
    sign_up(store, space_id, "ann")
    members = audience(store, space_id, query="trait('plan') = 'pro'")
    connection = connect(store, space_id, members.id, "webhooks-actions", {})
    activate(store, space_id, members.id, connection.id, "Audience Membership Changed", mapping=webhook())
    send(store, space_id, {"type": "identify", "userId": "ann", "traits": {"plan": "free"}})
    runs.run(store, members.id, reason="forced")
    with respx.mock:
        route = respx.post(HOOK).mock(side_effect=[httpx.Response(500), httpx.Response(200), httpx.Response(200)])
        assert await deliver(store) == {"retry": 1}, "the exit is not sent while the entry is pending"
        later(store, seconds=5)
        assert await deliver(store) == {"delivered": 1}
        assert await deliver(store) == {"delivered": 1}
    assert [b["traits"]["signed_up_users"] for b in bodies(route)] == [True, True, False]


async def test_a_disabled_activation_holds_its_rows_and_queues_nothing_new(store, space_id, activation):
    activations.update_activation(store, space_id, activation.audience_id, activation.id, enabled=False)
    sign_up(store, space_id, "bob")
    runs.run(store, activation.audience_id, reason="forced")
    with respx.mock:
        route = respx.post(HOOK).respond(200)
        assert await deliver(store) == {}
        activations.update_activation(store, space_id, activation.audience_id, activation.id, enabled=True)
        assert await deliver(store) == {"delivered": 1}
    assert [b["userId"] for b in bodies(route)] == ["ann"], "bob entered while disabled and is not replayed"


async def test_perform_resync_reads_true_until_the_resync_is_delivered(store, space_id, activation):
    assert outbox.health_of(store, [activation.id])[activation.id].resync_pending
    with respx.mock:
        respx.post(HOOK).respond(200)
        await deliver(store)
    assert not outbox.health_of(store, [activation.id])[activation.id].resync_pending
    activations.update_activation(store, space_id, activation.audience_id, activation.id, perform_resync=True)
    assert outbox_states(store) == {"delivered": 1, "pending": 1}


async def test_removing_an_activation_cancels_what_it_had_pending(store, space_id, activation):
    activations.remove_activation(store, space_id, activation.audience_id, activation.id)
    assert outbox_states(store) == {"cancelled": 1}
    assert await deliver(store) == {}


async def test_removing_the_audience_cancels_what_its_targets_had_pending(store, space_id, activation):
    audiences.remove_audience(store, space_id, activation.audience_id)
    assert outbox_states(store) == {"cancelled": 1}
    assert await deliver(store) == {}
