"""Computed traits and account-level audiences delivered as Segment sends them (engine-semantics §4.2),
and a disabled audience sending nothing (outbound HTTP mocked with respx)."""

import base64
from datetime import timedelta

import orjson
import pytest
import respx

from store.catalog import audiences, computed_traits
from store.compute import runs
from store.db.errors import Conflict, InputValidation
from tests.conftest import NOW
from tests.delivery_helpers import activate, bodies, connect, deliver, sign_up, webhook
from tests.ingest_helpers import send

pytestmark = pytest.mark.anyio
HOOK = "https://hooks.example.com/in"
MOE = "http://moe.example"
PIPELINE = "http://pipeline.example"


def order(user, revenue, hours_ago=1):
    return {"type": "track", "userId": user, "event": "Order Completed", "properties": {"revenue": revenue},
            "timestamp": (NOW - timedelta(hours=hours_ago)).isoformat()}


@pytest.fixture
def revenue(store, space_id):
    """ann with 160 in orders and a computed total_revenue, computed once."""
    sign_up(store, space_id, "ann")
    send(store, space_id, order("ann", 100, 3), order("ann", 60, 2))
    trait = computed_traits.create_computed_trait(store, space_id, name="Total Revenue", definition_type="USERS",
                                                  query="event('Order Completed').sum(property('revenue'))")
    runs.run(store, trait.id, reason="initial")
    return trait


async def test_a_computed_trait_value_change_reaches_moengage_as_attribute_and_event(store, space_id, revenue):
    connect(store, space_id, revenue.id, "moengage", {"apiId": "APP", "apiKey": "k", "endpoint": MOE},
            connection_settings={"sendIdentify": True, "sendTrack": True})
    with respx.mock:
        customers = respx.post(f"{MOE}/v1/customer/APP").respond(200)
        events = respx.post(f"{MOE}/v1/event/APP").respond(200)
        assert await deliver(store) == {"delivered": 1}, "a new connection backfills the current value"
        send(store, space_id, order("ann", 300))
        run = runs.run(store, revenue.id, reason="forced")
        assert run.entered == 1
        assert await deliver(store) == {"delivered": 1}
    assert [body["attributes"] for body in bodies(customers)] == [
        {"email": "ann@example.com", "total_revenue": 160}, {"email": "ann@example.com", "total_revenue": 460}]
    assert [body["customer_id"] for body in bodies(customers)] == ["ann", "ann"]
    [_, changed] = bodies(events)
    assert changed["actions"][0]["action"] == "Trait Computed"
    assert changed["actions"][0]["attributes"] == {"trait_key": "total_revenue", "total_revenue": 460}


async def test_a_computed_trait_reaches_a_webhook_as_identify_and_as_track(store, space_id, revenue):
    connection = connect(store, space_id, revenue.id, "webhooks-actions", {})
    identify = activate(store, space_id, revenue.id, connection.id, "Audience Membership Changed", resync=False,
                        mapping=webhook())
    track = activate(store, space_id, revenue.id, connection.id, "All Events", resync=False,
                     mapping=webhook(f"{HOOK}/track"))
    send(store, space_id, order("ann", 300))
    runs.run(store, revenue.id, reason="forced")
    with respx.mock:
        identifies = respx.post(HOOK).respond(200)
        tracks = respx.post(f"{HOOK}/track").respond(200)
        assert await deliver(store) == {"delivered": 2}
    personas = {"computation_class": "trait", "computation_id": revenue.id, "computation_key": "total_revenue",
                "namespace": space_id, "space_id": space_id}
    [sent] = bodies(identifies)
    assert sent["type"] == "identify" and sent["userId"] == "ann"
    assert sent["traits"] == {"email": "ann@example.com", "total_revenue": 460}
    assert sent["context"]["personas"] == {**personas, "event_emitter_id": identify.id}
    [sent] = bodies(tracks)
    assert sent["event"] == "Trait Computed"
    assert sent["properties"] == {"trait_key": "total_revenue", "total_revenue": 460}
    assert sent["context"]["personas"] == {**personas, "event_emitter_id": track.id}


async def test_an_unchanged_value_sends_nothing_and_a_cleared_one_sends_null(store, space_id, revenue):
    connection = connect(store, space_id, revenue.id, "webhooks-actions", {})
    activate(store, space_id, revenue.id, connection.id, "Audience Membership Changed", resync=False, mapping=webhook())
    assert runs.run(store, revenue.id, reason="forced").entered == 0
    computed_traits.update_computed_trait(store, space_id, revenue.id,
                                          query="event('Order Completed').within(1 hours).max(property('revenue'))")
    store.clock.set(NOW + timedelta(hours=5))
    runs.run(store, revenue.id, reason="forced")
    with respx.mock:
        route = respx.post(HOOK).respond(200)
        assert await deliver(store) == {"delivered": 1}
    [sent] = bodies(route)
    assert sent["traits"]["total_revenue"] is None


async def test_a_computed_trait_activation_takes_only_the_trait_types(store, space_id, revenue):
    connection = connect(store, space_id, revenue.id, "webhooks-actions", {})
    with pytest.raises(InputValidation, match="computed trait must be one of: Audience Membership Changed, All Events"):
        activate(store, space_id, revenue.id, connection.id, "Audience Entered", mapping=webhook())


@pytest.fixture
def enterprise(store, space_id):
    """acme (ann and bob) is an enterprise account; globex (cat) is not; dan belongs to none."""
    for user in ("ann", "bob", "cat", "dan"):
        send(store, space_id, {"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com"}})
    send(store, space_id,
         {"type": "group", "userId": "ann", "groupId": "acme", "traits": {"plan": "enterprise"}},
         {"type": "group", "userId": "bob", "groupId": "acme"},
         {"type": "group", "userId": "cat", "groupId": "globex", "traits": {"plan": "free"}})
    audience = audiences.create_audience(store, space_id, name="Enterprise Accounts", audience_type="ACCOUNTS",
                                         query="trait('plan') = 'enterprise'")
    runs.run(store, audience.id, reason="initial")
    return audience


async def test_an_account_audience_sends_one_group_per_account_and_identify_per_user(store, space_id, enterprise):
    connect(store, space_id, enterprise.id, "segment-tracking-api", {"endpoint": PIPELINE, "writeKey": "wk"},
            connection_settings={"sendGroup": True})
    with respx.mock:
        route = respx.post(f"{PIPELINE}/v1/batch").respond(200)
        assert await deliver(store) == {"delivered": 1}
        send(store, space_id, {"type": "group", "userId": "ann", "groupId": "acme", "traits": {"plan": "free"}})
        assert runs.run(store, enterprise.id, reason="forced").exited == 1
        await deliver(store)
    entered, exited = [body["batch"] for body in bodies(route)]
    assert [(e["type"], e.get("groupId"), e.get("userId"), e["traits"]["enterprise_accounts"]) for e in entered] == [
        ("group", "acme", "ann", True), ("identify", None, "ann", True), ("identify", None, "bob", True)]
    assert [(e["type"], e.get("userId"), e["traits"]["enterprise_accounts"]) for e in exited] == [
        ("group", "ann", False), ("identify", "ann", False), ("identify", "bob", False)]
    assert len({e["messageId"] for e in entered + exited}) == 6
    assert "acc_" not in orjson.dumps(entered + exited).decode() and "use_" not in orjson.dumps(entered).decode(), \
        "no internal id is ever sent as an identifier"


async def test_an_account_audience_activation_tracks_each_user_of_the_account(store, space_id, enterprise):
    connection = connect(store, space_id, enterprise.id, "webhooks-actions", {})
    activate(store, space_id, enterprise.id, connection.id, "Audience Entered", mapping=webhook())
    with respx.mock:
        route = respx.post(HOOK).respond(200)
        await deliver(store)
    assert [(e["type"], e["event"], e["userId"], e["properties"]["enterprise_accounts"]) for e in bodies(route)] == [
        ("track", "Audience Entered", "ann", True), ("track", "Audience Entered", "bob", True)]


async def test_an_account_audience_reaches_moengage_per_user_since_moengage_takes_no_group(store, space_id, enterprise):
    with pytest.raises(InputValidation, match="Unknown setting 'sendGroup'"):
        connect(store, space_id, enterprise.id, "moengage", {"apiId": "APP", "apiKey": "k", "endpoint": MOE},
                connection_settings={"sendGroup": True})
    connect(store, space_id, enterprise.id, "moengage", {"apiId": "APP", "apiKey": "k", "endpoint": MOE})
    with respx.mock:
        route = respx.post(f"{MOE}/v1/customer/APP").respond(200)
        await deliver(store)
    assert [(b["customer_id"], b["attributes"]["enterprise_accounts"]) for b in bodies(route)] == [
        ("ann", True), ("bob", True)]


async def test_send_group_is_refused_for_a_users_audience(store, space_id):
    sign_up(store, space_id, "ann")
    users = audiences.create_audience(store, space_id, name="Users", audience_type="USERS",
                                      query="event('Signed Up').count() >= 1")
    with pytest.raises(InputValidation, match="sendGroup applies only to ACCOUNTS"):
        connect(store, space_id, users.id, "segment-tracking-api", {"endpoint": PIPELINE, "writeKey": "wk"},
                connection_settings={"sendGroup": True})


async def test_a_disabled_audience_is_not_computed_and_sends_nothing(store, space_id):
    sign_up(store, space_id, "ann")
    members = audiences.create_audience(store, space_id, name="Signed Up", audience_type="USERS",
                                        query="event('Signed Up').count() >= 1")
    runs.run(store, members.id, reason="initial")
    connect(store, space_id, members.id, "segment-tracking-api", {"endpoint": PIPELINE, "writeKey": "wk"})
    audiences.update_audience(store, space_id, members.id, enabled=False)
    sign_up(store, space_id, "bob")
    with pytest.raises(Conflict, match="disabled"):
        runs.force_audience_run(store, space_id, members.id)
    with respx.mock:
        route = respx.post(f"{PIPELINE}/v1/batch").respond(200)
        assert await deliver(store) == {}, "a disabled audience's queued rows wait"
        assert not route.called
        audiences.update_audience(store, space_id, members.id, enabled=True)
        assert runs.run(store, members.id, reason="cadence").entered == 1, "only bob is new"
        await deliver(store)
    sent = [e["userId"] for body in bodies(route) for e in body["batch"]]
    assert sorted(sent) == ["ann", "bob"], "ann's backfill waited while disabled; bob is the one difference"
    assert route.calls.last.request.headers["Authorization"] == "Basic " + base64.b64encode(b"wk:").decode()


async def test_history_is_all_stored_history_unless_a_backfill_limit_is_given(store, space_id):
    send(store, space_id, {"type": "identify", "userId": "ann", "traits": {"email": "ann@example.com"}},
         *[{"type": "track", "userId": "ann", "event": "Renewed", "timestamp": (NOW - timedelta(days=30)).isoformat()}
           for _ in range(2)])
    query = "event('Renewed').count() >= 2"
    store.clock.set(NOW + timedelta(minutes=1))
    everything = audiences.create_audience(store, space_id, name="Renewed Twice", audience_type="USERS", query=query)
    limited = audiences.create_audience(store, space_id, name="Renewed Lately", audience_type="USERS", query=query,
                                        options={"backfillEventDataDays": 7})
    assert runs.run(store, everything.id, reason="initial").size == 1
    assert runs.run(store, limited.id, reason="initial").size == 0


async def test_of_users_linked_to_an_account_by_one_batch_the_group_call_names_the_one_seen_first(store, space_id, monkeypatch):
    class Backwards:
        """A clock for ids that goes back a second at each id: profiles seen later get smaller ids."""
        ns = 2_000_000_000_000_000_000

        @classmethod
        def time_ns(cls):
            cls.ns -= 1_000_000_000
            return cls.ns

    monkeypatch.setattr("store.db.ids.time", Backwards)
    for user in ("zoe", "amy"):
        send(store, space_id, {"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com"}})
    send(store, space_id, {"type": "group", "userId": "amy", "groupId": "acme", "traits": {"plan": "enterprise"}},
         {"type": "group", "userId": "zoe", "groupId": "acme"})
    audience = audiences.create_audience(store, space_id, name="Enterprise Accounts", audience_type="ACCOUNTS",
                                         query="trait('plan') = 'enterprise'")
    runs.run(store, audience.id, reason="initial")
    connect(store, space_id, audience.id, "segment-tracking-api", {"endpoint": PIPELINE, "writeKey": "wk"},
            connection_settings={"sendGroup": True})
    with respx.mock:
        route = respx.post(f"{PIPELINE}/v1/batch").respond(200)
        await deliver(store)
    [entered] = [body["batch"] for body in bodies(route)]
    assert [(e["type"], e.get("userId")) for e in entered] == [("group", "zoe"), ("identify", "zoe"), ("identify", "amy")]
