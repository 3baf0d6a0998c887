"""What an agent could get wrong without being told: a misspelt trait key, a personalization trait
nobody has, and removing a definition others still read."""

import pytest

from store.catalog import destination_instances
from tests.ingest_helpers import send

pytestmark = pytest.mark.anyio


@pytest.fixture
async def revenue(call, store, space_id):
    send(store, space_id, {"type": "identify", "userId": "ann", "traits": {"plan": "pro", "email": "a@x.com"}})
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
