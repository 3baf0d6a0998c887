import pytest

from store.catalog import destination_instances

pytestmark = pytest.mark.anyio


@pytest.fixture
async def audience_id(call, space_id):
    created = await call.ok("create_audience", spaceId=space_id, audienceType="USERS", name="Buyers",
                            definition={"query": "event('Order Completed').count() >= 1"})
    return created["audience"]["id"]


@pytest.fixture
def webhook_id(store, space_id):
    return destination_instances.add_destination(store, space_id, "webhooks-actions", "Hook", {"sharedSecret": "s3cret"}).id


@pytest.fixture
def moengage_id(store, space_id):
    return destination_instances.add_destination(store, space_id, "moengage", "MoE", {"apiId": "A", "apiKey": "K"}).id


async def connect(call, space_id, audience_id, destination_id, **extra):
    return await call.ok("add_destination_to_audience", spaceId=space_id, audienceId=audience_id,
                         destination={"id": destination_id, "type": "destination"}, **extra)


async def test_supported_destinations_are_the_catalog_filtered(call, space_id):
    users = await call.ok("list_supported_destinations_from_audience", spaceId=space_id, audienceType="USERS")
    assert set(users["destinations"]) == {"webhooks-actions", "pendula", "moengage", "segment-tracking-api",
                                          "warehouse"}
    linked = await call.ok("list_supported_destinations_from_audience", spaceId=space_id, audienceType="LINKED")
    assert set(linked["destinations"]) == {"webhooks-actions", "pendula", "warehouse"}
    by_action = await call.ok("list_supported_destinations_from_audience", spaceId=space_id, audienceType="USERS",
                              actionId="pendula-trigger-flow")
    assert list(by_action["destinations"]) == ["pendula"]
    by_slug = await call.ok("list_supported_destinations_from_audience", spaceId=space_id, audienceType="USERS", slug="moengage")
    assert by_slug["destinations"]["moengage"]["connectionSettings"][0]["name"] == "sendIdentify"
    error = await call.error("list_supported_destinations_from_audience", spaceId=space_id, audienceType="PEOPLE")
    assert error["field"] == "audienceType"


async def test_connection_lifecycle(call, space_id, audience_id, webhook_id):
    added = await connect(call, space_id, audience_id, webhook_id,
                          idSyncConfiguration=[{"externalId": "email", "strategy": "last", "mapTo": "Email_c"}])
    connection_id = added["connection"]["id"]
    assert connection_id.startswith("ii_")
    assert added["idSyncConfiguration"] == [{"externalId": "email", "strategy": "last", "mapTo": "Email_c"}]
    listed = await call.ok("list_destinations_from_audience", spaceId=space_id, audienceId=audience_id)
    connection = listed["connections"][0]
    assert connection["destinationId"] == webhook_id and connection["metadata"]["slug"] == "webhooks-actions"
    assert connection["settings"] == {"sharedSecret": "********"}
    updated = await call.ok("update_destination_for_audience", spaceId=space_id, audienceId=audience_id,
                            destinationId=connection_id, idSyncConfiguration=[{"externalId": "user_id", "strategy": "first"}])
    assert updated["destination"] == {"id": connection_id}
    assert updated["idSyncConfiguration"] == [{"externalId": "user_id", "strategy": "first"}]
    assert await call.ok("remove_destination_from_audience", spaceId=space_id, audienceId=audience_id,
                         destinationId=connection_id) == {"status": "SUCCESS"}
    assert (await call.ok("list_destinations_from_audience", spaceId=space_id, audienceId=audience_id))["connections"] == []


async def test_connection_rules(call, space_id, audience_id, webhook_id, moengage_id):
    error = await call.error("add_destination_to_audience", spaceId=space_id, audienceId=audience_id,
                             destination={"id": "dst_missing", "type": "destination"})
    assert error["type"] == "not-found" and "segment_audiences_list_destinations" in error["message"]
    too_many_all = [{"externalId": f"id{i}", "strategy": "all"} for i in range(4)]
    error = await call.error("add_destination_to_audience", spaceId=space_id, audienceId=audience_id,
                             destination={"id": webhook_id, "type": "destination"}, idSyncConfiguration=too_many_all)
    assert "at most 3" in error["message"].lower()
    six = [{"externalId": f"id{i}", "strategy": "last"} for i in range(6)]
    error = await call.error("add_destination_to_audience", spaceId=space_id, audienceId=audience_id,
                             destination={"id": webhook_id, "type": "destination"}, idSyncConfiguration=six)
    assert error["field"] == "idSyncConfiguration"
    error = await call.error("add_destination_to_audience", spaceId=space_id, audienceId=audience_id,
                             destination={"id": moengage_id, "type": "destination"}, connectionSettings={"sendFax": True})
    assert error["field"] == "connectionSettings.sendFax"
    await connect(call, space_id, audience_id, webhook_id)
    error = await call.error("add_destination_to_audience", spaceId=space_id, audienceId=audience_id,
                             destination={"id": webhook_id, "type": "destination"})
    assert error["type"] == "conflict"
    connection_id = (await call.ok("list_destinations_from_audience", spaceId=space_id, audienceId=audience_id))["connections"][0]["id"]
    error = await call.error("update_destination_for_audience", spaceId=space_id, audienceId=audience_id, destinationId=connection_id)
    assert error["type"] == "input-validation"


async def test_activation_lifecycle(call, space_id, audience_id, webhook_id):
    connection_id = (await connect(call, space_id, audience_id, webhook_id))["connection"]["id"]
    added = (await call.ok("add_activation_to_audience", spaceId=space_id, audienceId=audience_id,
                           connectionId=connection_id, activationName="To webhook", activationType="Audience Entered",
                           performResync=True,
                           personalization={"profile": {"properties": ["first_name"], "mapping": {"first_name": "fname"}}},
                           destinationMapping={"actionId": "webhooks-send", "settings": {"url": "http://127.0.0.1:9/hook"}}))["activation"]
    assert added["id"].startswith("act_") and added["connectionId"] == connection_id
    assert added["workspaceId"].startswith("wsp_") and added["enabled"] is True
    assert added["performResync"] is False, "an audience with no members yet has nothing to resend"
    assert added["delivery"] == {"pending": 0, "retrying": 0, "delivered": 0, "deadLettered": 0}
    assert added["personalization"] == {"profile": {"properties": ["first_name"], "mapping": {"first_name": "fname"}}}
    got = await call.ok("get_activation_from_audience", spaceId=space_id, audienceId=audience_id, id=added["id"])
    assert got["activation"] == added
    listed = await call.ok("list_activations_from_audience", spaceId=space_id, audienceId=audience_id)
    assert [a["id"] for a in listed["activations"]] == [added["id"]]
    updated = (await call.ok("update_activation_for_audience", spaceId=space_id, audienceId=audience_id, id=added["id"],
                             activationName="", displayName="Label", enabled=False,
                             destinationMapping={"actionId": "webhooks-send-batch", "settings": {"url": "http://127.0.0.1:9/b"}}))["activation"]
    assert updated["activationName"] == "To webhook" and updated["displayName"] == "Label" and updated["enabled"] is False
    assert updated["destinationMapping"] == {"actionId": "webhooks-send", "settings": {"url": "http://127.0.0.1:9/b"}}
    cleared = await call.ok("update_activation_for_audience", spaceId=space_id, audienceId=audience_id, id=added["id"], displayName="")
    assert "displayName" not in cleared["activation"]
    error = await call.error("remove_destination_from_audience", spaceId=space_id, audienceId=audience_id, destinationId=connection_id)
    assert error["type"] == "conflict" and added["id"] in error["message"]
    assert await call.ok("remove_activation_from_audience", spaceId=space_id, audienceId=audience_id, id=added["id"]) == {"status": "SUCCESS"}
    assert (await call.error("get_activation_from_audience", spaceId=space_id, audienceId=audience_id, id=added["id"]))["type"] == "not-found"


async def test_activation_rules(call, space_id, audience_id, webhook_id, moengage_id):
    webhook = (await connect(call, space_id, audience_id, webhook_id))["connection"]["id"]
    moengage = (await connect(call, space_id, audience_id, moengage_id))["connection"]["id"]
    base = {"spaceId": space_id, "audienceId": audience_id, "activationName": "A", "performResync": False}
    error = await call.error("add_activation_to_audience", **base, connectionId=webhook, activationType="Entity Added", personalization={})
    assert error["field"] == "activationType"
    error = await call.error("add_activation_to_audience", **base, connectionId=webhook, activationType="Audience Exited",
                             personalization={"entities": [{"properties": ["ID"], "relationshipSlug": "orders"}]})
    assert error["field"] == "personalization.entities"
    error = await call.error("add_activation_to_audience", **base, connectionId=moengage, activationType="Audience Exited",
                             personalization={}, destinationMapping={"actionId": "webhooks-send"})
    assert error["field"] == "destinationMapping"
    error = await call.error("add_activation_to_audience", **base, connectionId=webhook, activationType="Audience Exited",
                             personalization={}, destinationMapping={"actionId": "nope"})
    assert error["field"] == "destinationMapping.actionId"
    error = await call.error("add_activation_to_audience", **base, connectionId="ii_other", activationType="Audience Exited", personalization={})
    assert error["type"] == "not-found" and error["field"] == "connectionId"
    error = await call.error("add_activation_to_audience", **{**base, "performResync": None}, connectionId=webhook,
                             activationType="Audience Exited", personalization={})
    assert error["field"] == "performResync"


async def test_subscriptions_are_replaced_and_queried_per_key(call, space_id):
    replaced = await call.ok("replace_messaging_subscriptions_in_spaces", spaceId=space_id, subscriptions=[
        {"key": "jane@example.com", "type": "EMAIL", "status": "SUBSCRIBED", "groups": [{"name": "promotions", "status": "SUBSCRIBED"}]},
        {"key": "+12162226233", "type": "SMS", "status": "DID_NOT_SUBSCRIBE"},
        {"key": "pgibbonsexample.com", "type": "EMAIL", "status": "UNSUBSCRIBED"},
        {"key": "2162226233", "type": "WHATSAPP", "status": "SUBSCRIBED"},
        {"key": "joe@example.com", "type": "EMAIL", "status": "UNSUBSCRIBED", "groups": [{"name": "news", "status": "SUBSCRIBED"}]},
    ])
    assert [s["key"] for s in replaced["successes"]] == ["jane@example.com", "+12162226233"]
    assert replaced["successes"][0]["groups"][0]["name"] == "promotions"
    assert [(f["key"], f["errors"][0]["code"]) for f in replaced["failures"]] == [
        ("pgibbonsexample.com", "INVALID_EMAIL"), ("2162226233", "INVALID_PHONE_NUMBER"), ("joe@example.com", "GLOBAL_STATE_NOT_SUBSCRIBED")]
    queried = await call.ok("batch_query_messaging_subscriptions_for_space", spaceId=space_id, subscriptions=[
        {"key": "jane@example.com", "type": "EMAIL"}, {"key": "nobody@example.com", "type": "EMAIL"}, {"key": "bad", "type": "EMAIL"}])
    jane, nobody = queried["successes"]
    assert jane["status"] == "SUBSCRIBED" and jane["updatedAt"].endswith("Z")
    assert nobody == {"key": "nobody@example.com", "type": "EMAIL"}
    assert queried["failures"] == [{"key": "bad", "type": "EMAIL", "errors": [
        {"code": "INVALID_EMAIL", "message": queried["failures"][0]["errors"][0]["message"]}]}]
    assert queried["errors"] == []
    error = await call.error("replace_messaging_subscriptions_in_spaces", spaceId=space_id,
                             subscriptions=[{"key": "a@b.co", "type": "FAX", "status": "SUBSCRIBED"}])
    assert error["field"] == "subscriptions.0.type"
