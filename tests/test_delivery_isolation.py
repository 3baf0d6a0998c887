"""Nothing one destination does stalls another: broken settings, malformed Retry-After, dripping and
paused destinations, leases outlived by slow requests, and secrets kept out of every error surface."""

import logging
from datetime import timedelta

import anyio
import httpx
import pytest
import respx

from backend.delivery import policy
from backend.delivery.sender import Lease
from server.cli import main
from server.worker import DeliveryWorker
from store.catalog import activations, spaces
from store.db.store import Store
from store.delivery import outbox
from tests.conftest import NOW
from tests.databases import database_url
from tests.delivery_helpers import (activate, audience, connect, deliver, outbox_states, sign_up, wait_until,
                                    webhook)
from tests.ingest_helpers import rows
from tests.receiver import Receiver

pytestmark = pytest.mark.anyio
HEALTHY = "https://healthy.example/in"


def members_with_activation(store, space_id, users, mapping, name="Members"):
    sign_up(store, space_id, *users)
    members = audience(store, space_id, name=name)
    connection = connect(store, space_id, members.id, "webhooks-actions", {})
    return activate(store, space_id, members.id, connection.id, mapping=mapping)


@pytest.mark.parametrize("bad", [webhook("http://[::1"), webhook(HEALTHY, headers={"X-Team": "équipe"})])
async def test_an_activation_that_cannot_build_its_request_fails_alone(store, space_id, bad):
    broken = members_with_activation(store, space_id, ["ann"], bad, name="Broken")
    members_with_activation(store, space_id, [], webhook(HEALTHY), name="Healthy")
    with respx.mock:
        route = respx.post(HEALTHY).respond(200)
        counts = await deliver(store)
    assert counts["delivered"] == 1 and counts["dead"] == 1, counts
    assert len(route.calls) == 1
    [(state, error)] = rows(store, "select state, last_error from outbox where target_id = :t", t=broken.id)
    assert state == "dead" and error, "dead-lettered at once, with its reason"


def test_retry_after_is_parsed_strictly():
    now = NOW
    assert policy.retry_after_ms("²", now) is None, "'²'.isdigit() is true, but it is no delta-seconds"
    assert policy.retry_after_ms("٣", now) is None and policy.retry_after_ms("1e3", now) is None
    assert policy.retry_after_ms(" 30 ", now) == 30_000
    assert policy.retry_after_ms("9" * 40, now) is None
    assert policy.retry_after_ms("Sun, 22 Nov 2026 09:31:00 GMT", now) == 60_000
    assert policy.retry_after_ms("Sun, 99 Foo 99999 99:99:99 GMT", now) is None
    assert policy.classify(httpx.Response(429, headers={"retry-after": "²".encode()}), 5, now).kind == "retry"


async def test_a_malformed_retry_after_is_a_plain_retry(store, space_id):
    activation = members_with_activation(store, space_id, ["ann"], webhook(HEALTHY))
    with respx.mock:
        respx.post(HEALTHY).mock(return_value=httpx.Response(429, headers=[(b"Retry-After", "²".encode())]))
        assert await deliver(store) == {"retry": 1}
    assert rows(store, "select attempts, state from outbox where target_id = :t", t=activation.id) == [(1, "pending")]


async def test_a_retry_after_holds_back_the_rest_of_the_queue_unclaimed(store, space_id):
    activation = members_with_activation(store, space_id, ["ann", "bob", "cy"], webhook(HEALTHY))
    [first] = outbox.claim(store, "worker-1", 1)
    first.outcome = policy.Outcome("throttled", 429, error="slow down", retry_after_ms=30_000)
    outbox.record(store, [first])
    assert rows(store, "select next_attempt_at_ms - :now, attempts from outbox where target_id = :t",
                now=int(NOW.timestamp() * 1000), t=activation.id) == [(30_000, 0)] * 3
    assert outbox.claim(store, "worker-1", 3) == [], "nothing of the paused destination is claimed before then"


def test_due_targets_are_the_enabled_targets_with_unleased_rows_due_and_no_lane_running(store, space_id):
    busy = members_with_activation(store, space_id, ["ann", "bob"], webhook(HEALTHY), name="Busy")
    quiet = members_with_activation(store, space_id, ["cy"], webhook(HEALTHY), name="Quiet")
    paused = members_with_activation(store, space_id, ["dee"], webhook(HEALTHY), name="Paused")
    activations.update_activation(store, space_id, paused.audience_id, paused.id, enabled=False)
    assert outbox.due_targets(store) == {busy.id, quiet.id}
    assert outbox.due_targets(store, running={busy.id}) == {quiet.id}, "a running lane is not looked for"
    outbox.claim(store, "worker-1", 10, target_id=quiet.id)
    assert outbox.due_targets(store) == {busy.id}, "leased rows are not due"
    store.clock.set(NOW + timedelta(seconds=61))
    assert outbox.due_targets(store) == {busy.id, quiet.id}, "rows whose lease ran out are due again"


async def test_a_late_outcome_never_undoes_a_delivery(store, space_id):
    members_with_activation(store, space_id, ["ann"], webhook(HEALTHY))
    [stale] = outbox.claim(store, "worker-1", 10)
    store.clock.set(NOW + timedelta(seconds=61))
    [fresh] = outbox.claim(store, "worker-2", 10)
    fresh.outcome = policy.Outcome("delivered", 200)
    assert outbox.record(store, [fresh]) == {"delivered": 1}
    for late in (policy.Outcome("retry", 504, error="timeout"), policy.Outcome("failed", 400, error="bad")):
        stale.outcome = late
        assert outbox.record(store, [stale]) == {"stale": 1}
    assert outbox_states(store) == {"delivered": 1}
    assert rows(store, "select outcome from delivery_attempt") == [("delivered",)]


async def test_a_heartbeat_keeps_a_row_in_flight_from_other_workers(store, space_id):
    members_with_activation(store, space_id, ["ann"], webhook(HEALTHY))
    [claim] = outbox.claim(store, "worker-1", 10)
    store.clock.set(NOW + timedelta(seconds=40))
    outbox.heartbeat(store, [claim.lease])
    store.clock.set(NOW + timedelta(seconds=70))
    assert outbox.claim(store, "worker-2", 10) == [], "the lease was extended while the request was in flight"
    store.clock.set(NOW + timedelta(seconds=101))
    [taken] = outbox.claim(store, "worker-2", 10)
    ends, _ = outbox.heartbeat(store, [claim.lease])
    assert ends == {claim.lease.token: 0}, "a lease another worker took over is lost: nothing more is sent under it"
    assert taken.rows[0].id == claim.rows[0].id


async def test_a_request_is_abandoned_when_its_lease_is_about_to_end():
    lease = Lease("worker-1:abc", until_ms=10_000, length_ms=4_000)
    started = anyio.current_time()
    with lease.bounding(now_ms=9_500) as scope:
        await anyio.sleep(5)
    assert scope.cancel_called and anyio.current_time() - started < 1, "0.5 s left, less the 1 s margin: at once"
    lease = Lease("worker-1:abc", until_ms=10_000, length_ms=4_000)
    with lease.bounding(now_ms=8_900) as scope:
        lease.extend(until_ms=0, now_ms=8_900)
        await anyio.sleep(5)
    assert scope.cancel_called and anyio.current_time() - started < 2, "a lost lease stops what is open under it"


@pytest.fixture
def live_store(tmp_path):
    store = Store(database_url(tmp_path, "live"))
    yield store
    store.close()


def neighbour_states(store, name):
    """(state, attempts, rows) of the outbox rows of the audience called `name`."""
    return rows(store, "select o.state, o.attempts, count(*) from outbox o join audience u on u.id = o.computation_id "
                       "where u.name = :name group by o.state, o.attempts", name=name)


def test_slow_paused_and_broken_destinations_do_not_delay_a_healthy_one(live_store):
    store = live_store
    receiver = Receiver(drip={"/drip": 3.0}, failures={"/busy": [(429, {"Retry-After": "40"})] * 50})
    worker = DeliveryWorker(store, deadline_seconds=8).start()
    try:
        for name, url in (("Drip", f"{receiver.url}/drip"), ("Busy", f"{receiver.url}/busy"), ("Broken", "http://[::1")):
            space_id = spaces.create_space(store, name).space.id
            members_with_activation(store, space_id, [f"user-{n}" for n in range(10)], webhook(url), name=name)
        space_id = spaces.create_space(store, "Healthy").space.id
        sign_up(store, space_id, *[f"user-{n}" for n in range(30)])
        members = audience(store, space_id, name="Healthy")
        connection = connect(store, space_id, members.id, "webhooks-actions", {})
        activate(store, space_id, members.id, connection.id, mapping=webhook(f"{receiver.url}/ok"))
        wait_until(lambda: len(receiver.at("/ok")) == 30, seconds=35)
        busy = neighbour_states(store, "Busy")  # a transport error on a loaded machine is a retry: it waits too
        assert {state for state, _, _ in busy} == {"pending"} and sum(count for _, _, count in busy) == 10, \
            "the healthy events all arrived while the paused neighbour still waits out its 40 s Retry-After"
        assert "delivered" not in {state for state, _, _ in neighbour_states(store, "Drip")}, \
            "and while the dripping neighbour has not finished one answer"
        wait_until(lambda: rows(store, "select count(*) from outbox where state = 'dead'") == [(10,)])
    finally:
        worker.stop()
        receiver.close()


def test_a_request_outliving_its_lease_is_sent_once(live_store, monkeypatch):
    monkeypatch.setenv("SEGMENT_AUDIENCES_LEASE_SECONDS", "6")
    store = live_store
    space_id = spaces.create_space(store, "Slow").space.id
    receiver = Receiver(delays={"/slow": 9.0})
    workers = [DeliveryWorker(store, deadline_seconds=30).start() for _ in range(2)]
    try:
        members_with_activation(store, space_id, [f"user-{n}" for n in range(5)], webhook(f"{receiver.url}/slow"))
        wait_until(lambda: rows(store, "select count(*) from outbox where state = 'delivered'") == [(5,)], seconds=60)
    finally:
        for worker in workers:
            worker.stop()
        receiver.close()
    assert len(receiver.received) == 5, "each row was sent once although every request outlived its first lease"
    assert rows(store, "select count(*) from delivery_attempt") == [(5,)]


def test_destination_secrets_never_leave(live_store, caplog, capsys):
    store = live_store
    space_id = spaces.create_space(store, "Secrets").space.id
    token = "Bearer s3cr3t-T0ken\t "
    receiver = Receiver()
    sign_up(store, space_id, "ann")
    members = audience(store, space_id)
    connection = connect(store, space_id, members.id, "pendula",
                         {"flowTriggerUrl": f"{receiver.url}/pendula", "apiToken": token})
    activation = activate(store, space_id, members.id, connection.id)
    worker = DeliveryWorker(store).start()
    caplog.set_level(logging.DEBUG, logger="segment_audiences")
    try:
        wait_until(lambda: rows(store, "select state from outbox") == [("dead",)])
    finally:
        worker.stop()
        receiver.close()
    [(error,)] = rows(store, "select last_error from outbox")
    assert error and "********" in error
    health = outbox.health_of(store, [activation.id])[activation.id]
    assert main(["--db", store.url, "deliveries", "dead-letters"]) == 0
    surfaces = [error, health.last_error, *[e for (e,) in rows(store, "select error from delivery_attempt")],
                capsys.readouterr().out, caplog.text]
    for surface in surfaces:
        assert "s3cr3t" not in surface and "T0ken" not in surface, surface
    activations.remove_activation(store, space_id, members.id, activation.id)


async def test_a_retry_after_pauses_the_lane_without_more_requests(store, space_id):
    members_with_activation(store, space_id, [f"user-{n}" for n in range(5)], webhook(HEALTHY))
    with respx.mock:
        route = respx.post(HEALTHY).respond(429, headers={"Retry-After": "30"})
        assert await deliver(store) == {"throttled": 5}
    assert 1 <= len(route.calls) < 5, "once the destination asked to wait, the lane stopped asking"
    assert {wait for (wait,) in rows(store, "select next_attempt_at_ms - :now from outbox",
                                     now=int(NOW.timestamp() * 1000))} == {30_000}
