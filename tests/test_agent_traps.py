"""What an agent could get wrong without being told: a misspelt trait key or event name (at create,
update and preview), a name already taken, a personalization trait nobody has, and removing a
definition others still read."""

import pytest

from store.catalog import destination_instances
from tests.ingest_helpers import send

pytestmark = pytest.mark.anyio


@pytest.fixture
async def revenue(call, store, space_id):
    send(store, space_id, {"type": "identify", "userId": "ann", "traits": {"plan": "pro", "email": "a@x.com"}},
         {"type": "track", "userId": "ann", "event": "Order Completed", "properties": {"revenue": 120}})
    created = await call.ok("create_computed_trait", spaceId=space_id, name="Total Revenue",
                            definition={"query": "event('Order Completed').sum(property('revenue'))", "type": "USERS"})
    return created["computedTrait"]


async def test_a_misspelt_trait_key_is_accepted_with_a_warning_naming_the_closest_keys(call, space_id, revenue):
    created = await call.ok("create_audience", spaceId=space_id, audienceType="USERS", name="Big Spenders",
                            definition={"query": "trait('total_revenu') > 100"})
    [warning] = created["warnings"]
    assert "trait('total_revenu')" in warning and "'total_revenue'" in warning
    updated = await call.ok("update_audience_for_space", spaceId=space_id, id=created["audience"]["id"],
                            definition={"query": "trait('plann') = 'pro'"})
    assert "'plan'" in updated["warnings"][0]


async def test_known_keys_and_profile_traits_give_no_warning(call, space_id, revenue):
    created = await call.ok("create_audience", spaceId=space_id, audienceType="USERS", name="Pro Spenders",
                            definition={"query": "trait('total_revenue') > 100 and trait('plan') = 'pro'"})
    assert "warnings" not in created
    trait = await call.ok("create_computed_trait", spaceId=space_id, name="Orders",
                          definition={"query": "event('Order Completed').where(trait('plna') = 'pro').count()",
                                      "type": "USERS"})
    assert "'plan'" in trait["warnings"][0]


async def test_an_event_the_space_never_received_is_named_with_the_closest_stored_names(call, space_id, revenue):
    created = await call.ok("create_audience", spaceId=space_id, audienceType="USERS", name="Buyers",
                            definition={"query": "event('Order Complete').count() >= 1"})
    [warning] = created["warnings"]
    assert "event('Order Complete')" in warning and "'Order Completed'" in warning
    assert "segment_audiences_list_events" in warning
    updated = await call.ok("update_audience_for_space", spaceId=space_id, id=created["audience"]["id"],
                            definition={"query": "event('Order Completed').count() >= 1"})
    assert "warnings" not in updated


async def test_a_preview_warns_exactly_as_create_does(call, space_id, revenue):
    definition = {"query": "trait('total_revenu') > 100 and event('Order Complete').count() >= 1"}
    preview = await call.ok("create_audience_preview", spaceId=space_id, audienceType="USERS", definition=definition)
    created = await call.ok("create_audience", spaceId=space_id, audienceType="USERS", name="Typos", definition=definition)
    assert len(preview["warnings"]) == 2 and preview["warnings"] == created["warnings"]
    clean = await call.ok("create_audience_preview", spaceId=space_id, audienceType="USERS",
                          definition={"query": "trait('total_revenue') > 100"})
    assert "warnings" not in clean


async def test_a_name_already_taken_is_created_with_a_warning_naming_the_other_and_the_new_key(call, space_id, revenue):
    first = (await call.ok("create_audience", spaceId=space_id, audienceType="USERS", name="Purchasers",
                           definition={"query": "event('Order Completed').count() >= 1"}))["audience"]
    again = await call.ok("create_audience", spaceId=space_id, audienceType="USERS", name="Purchasers",
                          definition={"query": "event('Order Completed').count() >= 1"})
    [warning] = again["warnings"]
    assert first["id"] in warning and "'purchasers'" in warning and "'purchasers_2'" in warning
    assert again["audience"]["key"] == "purchasers_2"
    trait = await call.ok("create_computed_trait", spaceId=space_id, name="Total Revenue",
                          definition={"query": "event('Order Completed').sum(property('revenue'))", "type": "USERS"})
    assert revenue["id"] in trait["warnings"][0] and "'total_revenue_2'" in trait["warnings"][0]


async def test_a_connection_says_whether_members_go_out_now_or_only_with_an_activation(call, store, space_id, revenue):
    pros = (await call.ok("create_audience", spaceId=space_id, audienceType="USERS", name="Pros",
                          definition={"query": "trait('plan') = 'pro'"}))["audience"]
    hook = destination_instances.add_destination(store, space_id, "webhooks-actions", "Hook", {})
    moengage = destination_instances.add_destination(store, space_id, "moengage", "MoE", {"apiId": "A", "apiKey": "K"})
    silent = destination_instances.add_destination(store, space_id, "moengage", "Quiet", {"apiId": "A", "apiKey": "K"})

    async def connect(destination, **settings):
        return await call.ok("add_destination_to_audience", spaceId=space_id, audienceId=pros["id"],
                             destination={"id": destination.id, "type": "destination"}, **settings)

    assert "only through activations" in (await connect(hook))["sending"]
    assert "being sent now" in (await connect(moengage))["sending"]
    off = await connect(silent, connectionSettings={"sendIdentify": False, "sendTrack": False})
    assert off["sending"].startswith("Nothing is sent")


async def test_a_personalization_trait_no_profile_has_is_named_in_warnings(call, store, space_id, revenue):
    audience = (await call.ok("create_audience", spaceId=space_id, audienceType="USERS", name="Pros",
                              definition={"query": "trait('plan') = 'pro'"}))["audience"]
    destination = destination_instances.add_destination(store, space_id, "webhooks-actions", "Hook", {})
    connection = (await call.ok("add_destination_to_audience", spaceId=space_id, audienceId=audience["id"],
                                destination={"id": destination.id, "type": "destination"}))["connection"]
    activation = await call.ok("add_activation_to_audience", spaceId=space_id, audienceId=audience["id"],
                               connectionId=connection["id"], activationName="Sync", activationType="Audience Entered",
                               performResync=False, personalization={"profile": {"properties": ["plan", "emial"]}},
                               destinationMapping={"actionId": "webhooks-send", "settings": {"url": "https://h.example"}})
    [warning] = activation["warnings"]
    assert "'emial'" in warning and "'email'" in warning


async def test_a_definition_others_read_cannot_be_removed(call, space_id, revenue):
    reader = (await call.ok("create_audience", spaceId=space_id, audienceType="USERS", name="Big Spenders",
                            definition={"query": "trait('total_revenue') > 100"}))["audience"]
    outer = (await call.ok("create_audience", spaceId=space_id, audienceType="USERS", name="Big And Pro",
                           definition={"query": "trait('big_spenders') = true and trait('plan') = 'pro'"}))["audience"]
    error = await call.error("remove_computed_trait_from_space", spaceId=space_id, id=revenue["id"])
    assert error["type"] == "conflict" and reader["id"] in error["message"]
    error = await call.error("remove_audience_from_space", spaceId=space_id, id=reader["id"])
    assert error["type"] == "conflict" and outer["id"] in error["message"]
    await call.ok("remove_audience_from_space", spaceId=space_id, id=outer["id"])
    await call.ok("remove_audience_from_space", spaceId=space_id, id=reader["id"])
    await call.ok("remove_computed_trait_from_space", spaceId=space_id, id=revenue["id"])
