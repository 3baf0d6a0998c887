"""Shared set-up for delivery tests: members in an audience, destinations connected, one pass sent."""

import time
from collections import Counter
from datetime import timedelta

import orjson

from store.catalog import activations, audiences, destination_instances, destinations
from store.compute import runs
from store.delivery.delivery import deliver_once, sender_for
from tests.conftest import NOW
from tests.ingest_helpers import rows, send

QUERY = "event('Signed Up').count() >= 1"


def sign_up(store, space_id, *users, email=True):
    send(store, space_id, *[{"type": "identify", "userId": user,
                             **({"traits": {"email": f"{user}@example.com", "plan": "pro"}} if email else {}),
                             "timestamp": (NOW - timedelta(hours=2)).isoformat()} for user in users])
    send(store, space_id, *[{"type": "track", "userId": user, "event": "Signed Up",
                             "timestamp": (NOW - timedelta(hours=1)).isoformat()} for user in users])


def audience(store, space_id, name="Signed Up Users", query=QUERY):
    created = audiences.create_audience(store, space_id, name=name, audience_type="USERS", query=query, options=None)
    runs.run(store, created.id, reason="initial")
    return created


def connect(store, space_id, audience_id, slug, settings, *, id_sync=None, connection_settings=None):
    destination = destination_instances.add_destination(store, space_id, slug, f"My {slug}", settings)
    return destinations.connect(store, space_id, audience_id, destination.id, "destination", id_sync,
                                connection_settings).connection


def activate(store, space_id, audience_id, connection_id, activation_type="Audience Entered", *,
             resync=True, mapping=None, personalization=None, enabled=None):
    return activations.add_activation(store, space_id, audience_id, connection_id, activation_name="Sync",
                                      activation_type=activation_type, perform_resync=resync,
                                      personalization=personalization, destination_mapping=mapping, enabled=enabled)


def webhook(url="https://hooks.example.com/in", **settings):
    return {"actionId": "webhooks-send", "settings": {"url": url, **settings}}


async def deliver(store, owner="worker-1") -> Counter:
    async with sender_for(store) as sender:
        return await deliver_once(store, sender, owner)


def bodies(route) -> list:
    return [orjson.loads(call.request.content) for call in route.calls]


def outbox_states(store) -> Counter:
    return Counter(state for (state,) in rows(store, "select state from outbox"))


def wait_until(check, seconds=60):
    """Poll a condition until it holds, failing after `seconds` (tests wait on conditions, not sleeps)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")
