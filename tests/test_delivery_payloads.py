"""What each destination receives: Segment-spec events, ID sync, personalization, and each adapter's
own request format (outbound HTTP mocked with respx)."""

import base64
import hashlib
import hmac
import json

import pytest
import respx

from backend.delivery import adapters
from store.catalog import audiences
from store.compute import runs
from store.db.errors import InputValidation
from store.delivery import outbox
from tests.conftest import NOW
from tests.delivery_helpers import activate, audience, bodies, connect, deliver, sign_up, webhook
from tests.ingest_helpers import rows, send

pytestmark = pytest.mark.anyio
HOOK = "https://hooks.example.com/in"


@pytest.fixture
def members(store, space_id):
    sign_up(store, space_id, "ann")
    return audience(store, space_id)


def personas(members, emitter=None):
    found = {"computation_class": "audience", "computation_id": members.id, "computation_key": "signed_up_users",
             "namespace": members.space_id, "space_id": members.space_id}
    return {**found, "event_emitter_id": emitter} if emitter else found


async def test_an_entered_activation_sends_the_track_event_segment_sends(store, space_id, members):
    connection = connect(store, space_id, members.id, "webhooks-actions", {})
    activation = activate(store, space_id, members.id, connection.id, mapping=webhook())
    with respx.mock:
        route = respx.post(HOOK).respond(200)
        assert await deliver(store) == {"delivered": 1}
    [event] = bodies(route)
    assert event.pop("messageId") == outbox.message_id(activation.id, *_resync_key(store))
    assert event == {
        "type": "track", "event": "Audience Entered", "userId": "ann", "timestamp": "2026-11-22T09:30:00.000Z",
        "receivedAt": "2026-11-22T09:30:00.000Z",
        "properties": {"audience_key": "signed_up_users", "signed_up_users": True},
        "context": {"library": {"name": "unknown", "version": "unknown"}, "personas": personas(members, activation.id),
                    "traits": {"email": "ann@example.com"}},
        "integrations": {"All": False, "Webhooks (Actions)": True},
    }


async def test_membership_changed_sends_identify_with_personalized_traits_renamed(store, space_id, members):
    connection = connect(store, space_id, members.id, "webhooks-actions", {})
    activate(store, space_id, members.id, connection.id, "Audience Membership Changed", mapping=webhook(),
             personalization={"profile": {"properties": ["plan"], "mapping": {"plan": "tier"}}})
    with respx.mock:
        route = respx.post(HOOK).respond(200)
        await deliver(store)
    [event] = bodies(route)
    assert event["type"] == "identify"
    assert event["traits"] == {"tier": "pro", "email": "ann@example.com", "signed_up_users": True}


async def test_an_exit_sends_false_and_every_identifier_combination(store, space_id):
    sign_up(store, space_id, "ann")
    members = audience(store, space_id, query="trait('plan') = 'pro'")
    send(store, space_id, {"type": "identify", "userId": "ann", "traits": {"email": "ann@work.example", "plan": "free"}})
    connection = connect(store, space_id, members.id, "webhooks-actions", {},
                         id_sync=[{"externalId": "email", "strategy": "last"}])
    activate(store, space_id, members.id, connection.id, "Audience Exited", mapping=webhook(), resync=False)
    runs.run(store, members.id, reason="forced")
    with respx.mock:
        route = respx.post(HOOK).respond(200)
        await deliver(store)
    sent = bodies(route)
    assert [e["properties"]["signed_up_users"] for e in sent] == [False, False]
    assert [e["context"]["traits"]["email"] for e in sent] == ["ann@example.com", "ann@work.example"]
    assert len({e["messageId"] for e in sent}) == 2


@pytest.mark.parametrize("strategy, expected", [("first", ["ann@example.com"]), ("last", ["ann@work.example"]),
                                                ("all", ["ann@example.com", "ann@work.example"])])
async def test_id_sync_strategies_choose_which_identifiers_go_out(store, space_id, strategy, expected):
    sign_up(store, space_id, "ann")
    send(store, space_id, {"type": "identify", "userId": "ann", "traits": {"email": "ann@work.example"}})
    members = audience(store, space_id)
    connection = connect(store, space_id, members.id, "webhooks-actions", {},
                         id_sync=[{"externalId": "email", "strategy": strategy, "mapTo": "Email_Address"}])
    activate(store, space_id, members.id, connection.id, mapping=webhook())
    with respx.mock:
        route = respx.post(HOOK).respond(200)
        await deliver(store)
    sent = bodies(route)
    assert [e["context"]["traits"]["Email_Address"] for e in sent] == expected
    assert all(e["userId"] == "ann" and "anonymousId" not in e for e in sent), \
        "no user_id in the ID sync list: the profile's own user id still names it, never an internal id"


async def test_webhooks_maps_data_signs_the_body_and_sends_its_headers(store, space_id, members):
    connection = connect(store, space_id, members.id, "webhooks-actions", {"sharedSecret": "s3cret"})
    activate(store, space_id, members.id, connection.id, mapping=webhook(
        method="PUT", headers={"X-Team": "growth"},
        data={"who": {"@path": "$.userId"}, "key": {"@path": "$.properties.audience_key"}, "fixed": 1}))
    with respx.mock:
        route = respx.put(HOOK).respond(204)
        await deliver(store)
    request = route.calls.last.request
    assert request.headers["X-Team"] == "growth"
    assert request.headers["X-Signature"] == hmac.new(b"s3cret", request.content, hashlib.sha1).hexdigest()
    assert bodies(route) == [{"who": "ann", "key": "signed_up_users", "fixed": 1}]


async def test_webhooks_send_batch_groups_rows_into_one_array(store, space_id):
    sign_up(store, space_id, "ann", "bob", "cat")
    members = audience(store, space_id)
    connection = connect(store, space_id, members.id, "webhooks-actions", {})
    activate(store, space_id, members.id, connection.id,
             mapping={"actionId": "webhooks-send-batch", "settings": {"url": HOOK, "batchSize": 2}})
    with respx.mock:
        route = respx.post(HOOK).respond(200)
        assert await deliver(store) == {"delivered": 3}
    assert sorted(len(body) for body in bodies(route)) == [1, 2]


async def test_a_webhook_batch_is_signed_as_segment_signs_it(store, space_id):
    sign_up(store, space_id, "ann", "bob")
    members = audience(store, space_id)
    connection = connect(store, space_id, members.id, "webhooks-actions", {"sharedSecret": "s3cret"})
    activate(store, space_id, members.id, connection.id, mapping={"actionId": "webhooks-send-batch", "settings": {
        "url": HOOK, "data": {"who": {"@path": "$.userId"}}}})
    with respx.mock:
        route = respx.post(HOOK).respond(200)
        assert await deliver(store) == {"delivered": 2}
    request = route.calls.last.request
    [batch] = bodies(route)
    first = json.dumps(batch[0], separators=(",", ":")).encode()  # JSON.stringify of the first element's data
    assert request.headers["X-Signature"] == hmac.new(b"s3cret", first, hashlib.sha1).hexdigest()


def test_mapped_paths_index_lists_and_leave_out_what_is_missing():
    event = {"userId": "ann", "properties": {"products": [{"sku": "A-1"}, {"sku": "B-2"}], "empty": None}}
    data = {"first": {"@path": "$.properties.products[0].sku"}, "second": {"@path": "$.properties.products[1].sku"},
            "gone": {"@path": "$.properties.nothing"}, "past": {"@path": "$.properties.products[5].sku"},
            "null": {"@path": "$.properties.empty"}, "listed": [{"@path": "$.nope"}, {"@path": "$.userId"}]}
    assert adapters.resolve(data, event) == {"first": "A-1", "second": "B-2", "null": None, "listed": [None, "ann"]}


@pytest.mark.parametrize("directive", ["@if", "@template", "@case", "@replace"])
def test_mapping_directives_not_supported_are_refused_when_the_activation_is_saved(store, space_id, members,
                                                                                   directive):
    connection = connect(store, space_id, members.id, "webhooks-actions", {})
    with pytest.raises(InputValidation, match=directive) as refused:
        activate(store, space_id, members.id, connection.id,
                 mapping=webhook(data={"name": {directive: {"exists": {"@path": "$.userId"}}}}))
    assert refused.value.field == "destinationMapping.settings.data"


async def test_pendula_gets_the_whole_event_with_the_api_token(store, space_id, members):
    connection = connect(store, space_id, members.id, "pendula",
                         {"flowTriggerUrl": "https://api.pendula.example/flows/f1/trigger", "apiToken": "Bearer tok"})
    activate(store, space_id, members.id, connection.id, "Audience Membership Changed")
    with respx.mock:
        route = respx.post("https://api.pendula.example/flows/f1/trigger").respond(202)
        await deliver(store)
    assert route.calls.last.request.headers["Authorization"] == "Bearer tok"
    [event] = bodies(route)
    assert event["type"] == "identify" and event["traits"]["signed_up_users"] is True
    assert event["integrations"] == {"All": False, "Pendula": True}


async def test_moengage_gets_customer_attributes_and_events_in_its_data_api_format(store, space_id, members):
    connect(store, space_id, members.id, "moengage", {"apiId": "APP1", "apiKey": "KEY", "region": "DC-02"},
            connection_settings={"sendIdentify": True, "sendTrack": True})
    with respx.mock:
        customer = respx.post("https://api-02.moengage.com/v1/customer/APP1").respond(200, json={"status": "success"})
        event = respx.post("https://api-02.moengage.com/v1/event/APP1").respond(200, json={"status": "success"})
        assert await deliver(store) == {"delivered": 1}
    auth = "Basic " + base64.b64encode(b"APP1:KEY").decode()
    assert customer.calls.last.request.headers["Authorization"] == auth
    assert bodies(customer) == [{"type": "customer", "customer_id": "ann",
                                 "attributes": {"email": "ann@example.com", "signed_up_users": True}}]
    millis = str(int(NOW.timestamp() * 1000))
    assert bodies(event) == [{"type": "event", "customer_id": "ann", "actions": [{
        "action": "Audience Entered", "attributes": {"audience_key": "signed_up_users", "signed_up_users": True},
        "current_time": millis, "user_time": millis}]}]


async def test_the_tracking_api_forwarder_posts_a_batch_with_the_write_key(store, space_id, members):
    connect(store, space_id, members.id, "segment-tracking-api", {"endpoint": "http://pipeline.example", "writeKey": "wk"})
    with respx.mock:
        route = respx.post("http://pipeline.example/v1/batch").respond(200, json={"success": True})
        await deliver(store)
    assert route.calls.last.request.headers["Authorization"] == "Basic " + base64.b64encode(b"wk:").decode()
    [body] = bodies(route)
    assert [e["type"] for e in body["batch"]] == ["identify"], "sendIdentify is the connection default"


async def test_a_new_classic_connection_backfills_only_with_historical_data(store, space_id):
    sign_up(store, space_id, "ann")
    with_history = audience(store, space_id)
    without = audience(store, space_id, name="New Only")
    audiences.update_audience(store, space_id, without.id, options={"includeHistoricalData": False})
    settings = {"endpoint": "http://pipeline.example", "writeKey": "wk"}
    connect(store, space_id, with_history.id, "segment-tracking-api", settings)
    connect(store, space_id, without.id, "segment-tracking-api", settings)
    with respx.mock:
        route = respx.post("http://pipeline.example/v1/batch").respond(200)
        await deliver(store)
    assert [e["context"]["personas"]["computation_id"] for e in bodies(route)[0]["batch"]] == [with_history.id]


def _resync_key(store):
    [(profile_id, transition, run_id)] = rows(store, "select profile_id, transition, run_id from outbox")
    return profile_id, transition, run_id
