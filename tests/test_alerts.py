"""Alerts fired to a local receiver: a size change against 24 hours before, and a destination's delivery
failure rate; each fires once per episode, with the documented payload."""

from datetime import timedelta

import pytest

from store.compute import runs
from store.insights import alerts
from tests.conftest import NOW
from tests.delivery_helpers import activate, audience, connect, deliver, sign_up, webhook
from tests.receiver import Receiver

pytestmark = pytest.mark.anyio


@pytest.fixture
def receiver():
    receiver = Receiver(failures={"/hook": [500] * 5})
    yield receiver
    receiver.close()


async def test_a_size_change_past_the_threshold_fires_once_until_it_is_gone(store, space_id, call, receiver):
    store.clock.set(NOW - timedelta(hours=30))
    sign_up(store, space_id, "ann", "bob")
    members = audience(store, space_id)
    store.clock.set(NOW)
    sign_up(store, space_id, "cy", "dan", "eve")
    runs.run(store, members.id, reason="forced")
    made = (await call.ok("create_alert", spaceId=space_id, type="SIZE_CHANGE", subjectId=members.id,
                          thresholdPercent=100, webhookUrl=f"{receiver.url}/alerts"))["alert"]

    first, again = alerts.check_all(store), alerts.check_all(store)
    store.clock.set(NOW + timedelta(hours=48))
    calm = alerts.check_all(store)

    assert (len(first), again, calm) == (1, [], [])
    [sent] = receiver.at("/alerts")
    assert sent.body == {"type": "alert.fired", "alertId": made["id"], "spaceId": space_id, "kind": "SIZE_CHANGE",
                         "subjectId": members.id, "thresholdPercent": 100.0, "valuePercent": 150.0,
                         "firedAt": "2026-11-22T09:30:00.000Z", "measured": {"size": 5, "sizeBefore": 2},
                         "since": "2026-11-21T09:30:00.000Z"}
    [listed] = (await call.ok("list_alerts", spaceId=space_id))["alerts"]
    assert listed["firing"] is False and [(f["valuePercent"], f["status"]) for f in listed["firings"]] == [(150.0, 200)]
    await call.ok("remove_alert", spaceId=space_id, id=made["id"])
    assert (await call.ok("list_alerts", spaceId=space_id))["alerts"] == []


async def test_a_destination_failing_more_than_the_threshold_fires(store, space_id, call, receiver):
    sign_up(store, space_id, "ann", "bob")
    members = audience(store, space_id)
    connection = connect(store, space_id, members.id, "webhooks-actions", {})
    activate(store, space_id, members.id, connection.id, mapping=webhook(f"{receiver.url}/hook"))
    await call.ok("create_alert", spaceId=space_id, type="DELIVERY_FAILURE_RATE",
                  subjectId=connection.destination_id, thresholdPercent=50, webhookUrl=f"{receiver.url}/alerts")
    assert alerts.check_all(store) == []

    await deliver(store)
    [fired] = alerts.check_all(store)

    assert fired.payload["measured"]["failed"] == fired.payload["measured"]["attempts"] > 0
    assert fired.payload["valuePercent"] == 100.0 and receiver.at("/alerts")[0].body == fired.payload


async def test_a_webhook_that_answers_slowly_is_given_up_within_its_deadline(store, space_id, call, monkeypatch):
    slow = Receiver(drip={"/alerts": 0.5})  # its 16-byte answer would take 8 s
    monkeypatch.setattr(alerts, "WEBHOOK_SECONDS", 1.0)
    try:
        sign_up(store, space_id, "ann")
        members = audience(store, space_id)
        await call.ok("create_alert", spaceId=space_id, type="SIZE_CHANGE", subjectId=members.id,
                      thresholdPercent=10, webhookUrl=f"{slow.url}/alerts")

        [fired] = alerts.check_all(store)
        [listed] = (await call.ok("list_alerts", spaceId=space_id))["alerts"]
    finally:
        slow.close()

    [firing] = listed["firings"]
    assert "status" not in firing and firing["error"] == "no whole answer within 1 s", firing
    assert slow.at("/alerts")[0].body == fired.payload


@pytest.mark.parametrize(("arguments", "field"), [
    ({"webhookUrl": "ftp://example.com/x"}, "webhookUrl"),
    ({"subjectId": "aud_missing"}, "id"),
    ({"type": "DELIVERY_FAILURE_RATE"}, "subjectId"),
])
async def test_an_alert_names_what_is_wrong_with_it(store, space_id, call, arguments, field):
    members = audience(store, space_id)
    given = {"spaceId": space_id, "type": "SIZE_CHANGE", "subjectId": members.id, "thresholdPercent": 10,
             "webhookUrl": "https://hooks.example.com/alerts", **arguments}

    error = await call.error("create_alert", **given)

    assert error["field"] == field
