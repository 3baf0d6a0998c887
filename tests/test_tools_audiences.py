import pytest

from tests.conftest import tool_errors

pytestmark = pytest.mark.anyio
QUERY = "event('Order Completed').within(30 days).count() >= 3"


async def create(call, space_id, name="Big Spenders", query=QUERY, **extra):
    return (await call.ok("create_audience", spaceId=space_id, audienceType="USERS", name=name,
                          definition={"query": query}, **extra))["audience"]


async def test_spaces_are_listed_and_read(call, space_id):
    listed = await call.ok("list_spaces", pagination={"count": 1})
    assert listed["spaces"][0] == {"id": space_id, "slug": "test-space", "name": "Test Space"}
    assert listed["pagination"] == {"current": "MA==", "totalEntries": 1}
    assert (await call.ok("get_space", spaceId=space_id))["space"]["name"] == "Test Space"


async def test_unknown_space_is_not_found_and_names_the_listing_tool(call):
    error = await call.error("get_space", spaceId="spa_missing")
    assert error["type"] == "not-found" and error["field"] == "spaceId"
    assert "spa_missing" in error["message"] and "segment_audiences_list_spaces" in error["message"]


async def test_create_audience_returns_the_audience_summary(call, space_id):
    audience = await create(call, space_id, description="3+ orders")
    assert audience["id"].startswith("aud_") and audience["key"] == "big_spenders"
    assert audience["definition"] == {"query": QUERY}
    assert audience["status"] == "Preparing" and audience["enabled"] is True
    assert audience["createdBy"] == "tester" and audience["createdAt"].endswith("Z")
    assert audience["options"] == {"includeHistoricalData": True,
                                   "filterByExternalIds": ["user_id", "email", "android.idfa", "ios.idfa"]}, \
        "history means all history: no backfill limit unless one is given"


async def test_get_audience_reports_cadence_and_schedules(call, space_id):
    audience = await create(call, space_id)
    await call.ok("add_audience_schedule_to_audience", spaceId=space_id, id=audience["id"],
                  strategy="PERIODIC", config={"interval": "1h"})
    got = (await call.ok("get_audience", spaceId=space_id, id=audience["id"], include="schedules"))["audience"]
    assert got["computeCadence"] == {"type": "REALTIME"}
    assert got["schedules"][0]["config"] == {"interval": "1h"}
    assert "schedules" not in (await call.ok("get_audience", spaceId=space_id, id=audience["id"]))["audience"]


async def test_invalid_cql_is_rejected_with_position(call, space_id):
    error = await call.error("create_audience", spaceId=space_id, audienceType="USERS", name="Bad",
                             definition={"query": "event('x').count( >= 1"})
    assert error["type"] == "input-validation" and error["field"] == "definition.query"
    assert "line 1, column 19" in error["message"] and "')'" in error["message"]


async def test_missing_and_mistyped_arguments_name_the_field(call, space_id):
    error = await call.error("create_audience", spaceId=space_id, audienceType="PEOPLE", name="x",
                             definition={"query": QUERY})
    assert error == {"type": "input-validation", "field": "audienceType",
                     "message": "audienceType: Input should be 'USERS', 'ACCOUNTS' or 'LINKED'"}
    error = await call.error("create_audience", spaceId=space_id, audienceType="USERS", name="x", definition={})
    assert error["field"] == "definition.query" and "required" in error["message"]


async def test_list_audiences_pages_and_searches(call, space_id):
    for name in ("Alpha One", "Alpha Two", "Beta"):
        await create(call, space_id, name=name)
    first = await call.ok("list_audiences", spaceId=space_id, pagination={"count": 2})
    assert [a["name"] for a in first["audiences"]] == ["Alpha One", "Alpha Two"]
    assert first["pagination"]["totalEntries"] == 3
    second = await call.ok("list_audiences", spaceId=space_id, pagination={"count": 2, "cursor": first["pagination"]["next"]})
    assert [a["name"] for a in second["audiences"]] == ["Beta"] and "next" not in second["pagination"]
    found = await call.ok("list_audiences", spaceId=space_id, search={"type": "KEY", "query": "alpha_t"})
    assert [a["key"] for a in found["audiences"]] == ["alpha_two"]
    error = await call.error("list_audiences", spaceId=space_id, pagination={"count": 201})
    assert error["field"] == "pagination.count"
    error = await call.error("list_audiences", spaceId=space_id, pagination={"count": 2, "cursor": "garbage!"})
    assert error["field"] == "pagination.cursor"


async def test_update_changes_only_what_is_given_and_keeps_the_key(call, space_id):
    audience = await create(call, space_id)
    updated = (await call.ok("update_audience_for_space", spaceId=space_id, id=audience["id"], name="Whales",
                             enabled=False, definition={"query": "event('Order Completed').count() >= 10"}))["audience"]
    assert updated["key"] == "big_spenders" and updated["name"] == "Whales"
    assert updated["status"] == "Disabled" and updated["definition"]["query"].endswith(">= 10")


async def test_update_cannot_switch_realtime_to_batch(call, space_id):
    audience = await create(call, space_id)
    error = await call.error("update_audience_for_space", spaceId=space_id, id=audience["id"],
                             definition={"query": "event('a').between(1 days, 2 days).count() >= 1"})
    assert error["type"] == "conflict" and "Create a new audience" in error["message"]


async def test_remove_is_soft_and_the_key_is_never_reused(call, space_id):
    audience = await create(call, space_id)
    assert await call.ok("remove_audience_from_space", spaceId=space_id, id=audience["id"]) == {"status": "SUCCESS"}
    assert (await call.error("get_audience", spaceId=space_id, id=audience["id"]))["type"] == "not-found"
    assert (await call.error("remove_audience_from_space", spaceId=space_id, id=audience["id"]))["type"] == "not-found"
    assert (await create(call, space_id))["key"] == "big_spenders_2"


async def test_consumers_are_the_audiences_referencing_the_key(call, space_id):
    base = await create(call, space_id, name="Buyers")
    await create(call, space_id, name="Loyal Buyers", query="trait('buyers') = true AND trait('tenure') > 2")
    await create(call, space_id, name="Unrelated")
    consumers = await call.ok("list_audience_consumers_from_space_and_audience", spaceId=space_id, id=base["id"],
                              sort={"field": "NAME", "direction": "DESC"})
    assert [a["name"] for a in consumers["audiences"]] == ["Loyal Buyers"]


async def test_a_reference_cycle_is_rejected(call, space_id):
    await create(call, space_id, name="First", query="trait('second') = true")
    error = await call.error("create_audience", spaceId=space_id, audienceType="USERS", name="Second",
                             definition={"query": "trait('first') = true"})
    assert error["field"] == "definition.query" and "cycle" in error["message"]
    error = await call.error("create_audience", spaceId=space_id, audienceType="USERS", name="Self",
                             definition={"query": "trait('self') = true"})
    assert "cycle" in error["message"]


async def test_options_defaults_and_rules(call, space_id):
    batch = await create(call, space_id, name="Funnel",
                         query="event('a').where(event('b').within(parent: 1 days).count() = 0).within(14 days).count() >= 1",
                         options={"includeAnonymousUsers": True})
    assert batch["options"]["includeHistoricalData"] is True
    assert "backfillEventDataDays" not in batch["options"]
    assert batch["options"]["filterByExternalIds"][-1] == "anonymous_id"
    error = await call.error("create_audience", spaceId=space_id, audienceType="USERS", name="x",
                             definition={"query": QUERY},
                             options={"includeHistoricalData": False, "backfillEventDataDays": 3})
    assert error["field"] == "options.backfillEventDataDays"


async def test_account_and_linked_rules(call, space_id):
    accounts = (await call.ok("create_audience", spaceId=space_id, audienceType="ACCOUNTS", name="Active accounts",
                              definition={"query": "ANY event('Login').within(7 days).count() >= 1"}))["audience"]
    assert accounts["audienceType"] == "ACCOUNTS"
    linked = (await call.ok("create_audience", spaceId=space_id, audienceType="LINKED", name="VIPs",
                            definition={"query": "trait('vip') = true"}))["audience"]
    assert linked["definition"]["targetEntity"] == "profile"
    no_graph = await call.error("create_audience", spaceId=space_id, audienceType="LINKED", name="Owners",
                                definition={"query": "entity('owned-accounts').count() > 1"})
    assert no_graph["field"] == "definition.query" and "segment_audiences_update_data_graph" in no_graph["message"]
    entity_target = await call.error("create_audience", spaceId=space_id, audienceType="LINKED", name="Owners",
                                     definition={"query": "trait('vip') = true", "targetEntity": "owned-accounts"})
    assert entity_target["field"] == "definition.targetEntity" and "use one of 'profile'" in entity_target["message"]
    error = await call.error("create_audience", spaceId=space_id, audienceType="USERS", name="x",
                             definition={"query": QUERY, "targetEntity": "orders"})
    assert error["field"] == "definition.targetEntity"


async def test_schedules_lifecycle(call, space_id):
    audience = await create(call, space_id)
    added = (await call.ok("add_audience_schedule_to_audience", spaceId=space_id, id=audience["id"],
                           strategy="SPECIFIC_DAYS",
                           config={"days": [1, 3], "hours": [9], "timezone": "America/New_York"}))["audienceSchedule"]
    assert added["id"].startswith("sch_") and added["nextExecution"] == "2026-11-23T14:00:00.000Z"
    listed = await call.ok("list_audience_schedules_from_space_and_audience", spaceId=space_id, id=audience["id"])
    assert [s["id"] for s in listed["audienceSchedules"]] == [added["id"]]
    got = await call.ok("get_audience_schedule_from_space_and_audience", spaceId=space_id, id=audience["id"], scheduleId=added["id"])
    assert got["audienceSchedule"] == added
    updated = await call.ok("update_audience_schedule_for_audience", spaceId=space_id, id=audience["id"],
                            scheduleId=added["id"], strategy="PERIODIC", config={"interval": "15m"})
    assert updated["audienceSchedule"]["nextExecution"] == "2026-11-22T09:45:00.000Z"
    assert await call.ok("remove_audience_schedule_from_audience", spaceId=space_id, id=audience["id"],
                         scheduleId=added["id"]) == {"status": "SUCCESS"}
    error = await call.error("get_audience_schedule_from_space_and_audience", spaceId=space_id, id=audience["id"], scheduleId=added["id"])
    assert error["type"] == "not-found" and error["field"] == "scheduleId"


async def test_schedule_validation(call, space_id):
    audience = await create(call, space_id)
    error = await call.error("add_audience_schedule_to_audience", spaceId=space_id, id=audience["id"],
                             strategy="SPECIFIC_DAYS", config={"days": [1], "hours": [9], "timezone": "Mars/Olympus"})
    assert error["field"] == "config.timezone"
    result = await call.client.call_tool("segment_audiences_add_audience_schedule_to_audience", {
        "spaceId": space_id, "id": audience["id"], "strategy": "PERIODIC", "config": {"interval": "7m"}})
    [error] = tool_errors(result)
    assert error["field"] == "config.interval" and "'15m'" in error["message"] and "Config" not in error["message"]
    result = await call.client.call_tool("segment_audiences_update_audience_schedule_for_audience", {
        "spaceId": space_id, "id": audience["id"], "scheduleId": "sch_x", "strategy": "SPECIFIC_DAYS",
        "config": {"days": [1], "hours": [9]}})
    assert [error["field"] for error in tool_errors(result)] == ["config.timezone"]
    error = await call.error("add_audience_schedule_to_audience", spaceId=space_id, id=audience["id"],
                             strategy="PERIODIC", config={"days": [1], "hours": [25], "timezone": "UTC"})
    assert error["type"] == "input-validation"


async def test_computed_traits_lifecycle(call, space_id):
    created = (await call.ok("create_computed_trait", spaceId=space_id, name="Orders 30d",
                             definition={"query": "event('Order Completed').within(30 days).count()", "type": "USERS"},
                             options={"includeHistoricalData": True}))["computedTrait"]
    assert created["id"].startswith("tra_") and created["key"] == "orders_30d"
    assert created["computeCadence"] == {"type": "BATCH"} and created["options"] == {"includeHistoricalData": True}
    assert created["status"] == "Computing", "a computed trait's statuses have no Preparing"
    got = await call.ok("get_computed_trait", spaceId=space_id, id=created["id"])
    assert got["computedTrait"]["name"] == "Orders 30d"
    listed = await call.ok("list_computed_traits", spaceId=space_id)
    assert [t["id"] for t in listed["computedTraits"]] == [created["id"]]
    updated = await call.ok("update_computed_trait_for_space", spaceId=space_id, id=created["id"], enabled=False)
    assert updated["computedTrait"]["status"] == "Disabled"
    error = await call.error("create_computed_trait", spaceId=space_id, name="Bad",
                             definition={"query": "event('a').count() >= 1", "type": "USERS"})
    assert error["field"] == "definition.query"
    assert await call.ok("remove_computed_trait_from_space", spaceId=space_id, id=created["id"]) == {"status": "SUCCESS"}
    assert (await call.error("get_computed_trait", spaceId=space_id, id=created["id"]))["type"] == "not-found"
