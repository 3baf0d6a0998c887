"""Previews, forced runs, sizes and explanations through the MCP client."""

from datetime import timedelta

import pytest

from store.compute import previews, recompute
from tests.conftest import NOW, tool_errors
from tests.ingest_helpers import profile_of, rows, send

pytestmark = pytest.mark.anyio
QUERY = "event('Order Completed').where(property('total') >= 50).within(30 days).count() >= 1"


@pytest.fixture
def orders(store, space_id):
    def order(user, total, days_ago):
        return {"type": "track", "userId": user, "event": "Order Completed", "properties": {"total": total},
                "context": {"traits": {"email": f"{user}@example.com"}},
                "timestamp": (NOW - timedelta(days=days_ago)).isoformat()}

    send(store, space_id, order("ann", 80, 3), order("bob", 20, 3), order("cat", 90, 45))
    return space_id


async def test_a_preview_answers_at_once_and_completes_in_the_background(call, store, orders):
    created = await call.ok("create_audience_preview", spaceId=orders, audienceType="USERS",
                            definition={"query": QUERY})
    preview_id = created["audiencePreview"]["id"]
    assert preview_id.startswith("prv_")
    running = (await call.ok("get_audience_preview", spaceId=orders, id=preview_id))["audiencePreview"]
    assert running["status"] == "RUNNING" and "results" not in running
    assert previews.run_pending(store) == 1
    done = (await call.ok("get_audience_preview", spaceId=orders, id=preview_id))["audiencePreview"]
    assert done["status"] == "COMPLETED" and done["size"] == {"type": "USERS", "count": 1}
    [result] = done["results"]
    assert result["id"] == profile_of(store, "user_id", "ann")
    assert {"type": "email", "id": "ann@example.com"} in result["externalIds"]
    assert rows(store, "select count(*) from membership") == [(0,)]


async def test_a_preview_of_an_entity_definition_without_a_data_graph_is_refused_saying_what_to_do(call, orders):
    error = await call.error("create_audience_preview", spaceId=orders, audienceType="LINKED",
                             definition={"query": "entity('orders').count() >= 1"})
    assert error["type"] == "input-validation" and "no Data Graph" in error["message"]


async def test_a_preview_with_a_broken_definition_is_refused_at_once(call, orders):
    error = await call.error("create_audience_preview", spaceId=orders, audienceType="USERS",
                             definition={"query": "event('x').count( >= 1"})
    assert error["type"] == "input-validation" and error["field"] == "definition.query"


async def test_an_unknown_preview_is_not_found(call, orders):
    error = await call.error("get_audience_preview", spaceId=orders, id="prv_missing")
    assert error["type"] == "not-found"


async def test_a_forced_run_computes_now_and_get_audience_shows_size_and_status(call, store, orders):
    audience = (await call.ok("create_audience", spaceId=orders, audienceType="USERS", name="Big orders",
                              definition={"query": QUERY}))["audience"]
    before = (await call.ok("get_audience", spaceId=orders, id=audience["id"]))["audience"]
    assert before["status"] == "Preparing" and "size" not in before
    run = (await call.ok("force_execute_audience_run", spaceId=orders, audienceId=audience["id"]))["run"]
    assert run["id"].startswith("run_") and run["status"] == "COMPLETED" and run["entered"] == 1
    after = (await call.ok("get_audience", spaceId=orders, id=audience["id"]))["audience"]
    assert after["status"] == "Live" and after["size"] == {"type": "USERS", "count": 1}
    assert after["computeCadence"] == {"type": "REALTIME"}
    listed = (await call.ok("list_audiences", spaceId=orders))["audiences"]
    assert listed[0]["size"]["count"] == 1


async def test_enabling_a_live_audience_again_keeps_it_live(call, orders):
    audience = (await call.ok("create_audience", spaceId=orders, audienceType="USERS", name="Big orders",
                              definition={"query": QUERY}))["audience"]
    await call.ok("force_execute_audience_run", spaceId=orders, audienceId=audience["id"])
    updated = await call.ok("update_audience_for_space", spaceId=orders, id=audience["id"], enabled=True)
    assert updated["audience"]["status"] == "Live"


async def test_a_target_entity_on_a_users_audience_is_refused(call, orders):
    audience = (await call.ok("create_audience", spaceId=orders, audienceType="USERS", name="Big orders",
                              definition={"query": QUERY}))["audience"]
    for entity in ("profile", "accounts"):
        error = await call.error("update_audience_for_space", spaceId=orders, id=audience["id"],
                                 definition={"query": QUERY, "targetEntity": entity})
        assert (error["type"], error["field"]) == ("input-validation", "definition.targetEntity")


async def test_a_forced_run_of_an_unknown_audience_is_not_found(call, orders):
    error = await call.error("force_execute_audience_run", spaceId=orders, audienceId="aud_missing")
    assert error["type"] == "not-found"


async def test_explain_shows_the_sql_cadence_and_references(call, store, orders):
    await call.ok("create_audience", spaceId=orders, audienceType="USERS", name="Big orders",
                  definition={"query": QUERY})
    funnel = (await call.ok("create_audience", spaceId=orders, audienceType="USERS", name="Big and loyal",
                            definition={"query": "trait('big_orders') = true AND event('Order Completed')"
                                                 ".where(event('Refund').within(parent: 7 days).count() = 0)"
                                                 ".count() >= 2"}))["audience"]
    explained = (await call.ok("get_audience", spaceId=orders, id=funnel["id"], explain=True))["audience"]["explain"]
    assert explained["computeCadence"] == {"type": "BATCH"} and "funnel" in explained["cadenceReason"]
    assert explained["referencedKeys"] == ["big_orders"]
    assert explained["eventNames"] == ["Order Completed", "Refund"]
    assert explained["sql"].startswith("SELECT profile.id") and "'Refund'" in explained["sql"]
    on_postgresql = store.engine.dialect.name == "postgresql"
    assert ("jsonb_typeof" in explained["sql"]) is on_postgresql and ("json_type(" in explained["sql"]) is not on_postgresql


async def test_realtime_audiences_follow_ingest_and_show_membership_as_a_trait(call, store, orders):
    audience = (await call.ok("create_audience", spaceId=orders, audienceType="USERS", name="Big orders",
                              definition={"query": QUERY}))["audience"]
    recompute.run_due(store)
    send(store, orders, {"type": "track", "userId": "bob", "event": "Order Completed", "properties": {"total": 75}})
    recompute.process_dirty(store)
    size = (await call.ok("get_audience", spaceId=orders, id=audience["id"]))["audience"]["size"]
    assert size["count"] == 2
    bob = profile_of(store, "user_id", "bob")
    assert rows(store, "select value, trait_class from trait where profile_id = :p and key = 'big_orders'", p=bob) == [
        ("true", "audience")]


async def test_a_forced_run_reports_progress_to_a_client_that_asks(client, call, space_id):
    created = await call.ok("create_audience", spaceId=space_id, audienceType="USERS", name="Buyers",
                            definition={"query": "event('Order Completed').count() >= 1"})
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    result = await client.call_tool("segment_audiences_force_execute_audience_run",
                                    {"spaceId": space_id, "audienceId": created["audience"]["id"]},
                                    progress_callback=on_progress)
    assert not result.is_error
    assert len(seen) >= 2 and all(total is None for _, total, _ in seen)
    assert [progress for progress, _, _ in seen] == sorted({progress for progress, _, _ in seen}), "increasing"
    assert created["audience"]["id"] in seen[0][2] and "done" in seen[-1][2]


async def test_a_waiting_tool_that_fails_still_answers_with_the_error_envelope(client, space_id):
    seen = []

    async def on_progress(progress, total, message):
        seen.append(message)

    result = await client.call_tool("segment_audiences_create_download", {"collectionId": "aud_missing"},
                                    progress_callback=on_progress)
    assert tool_errors(result)[0]["type"] == "input-validation"
    result = await client.call_tool("segment_audiences_force_execute_audience_run",
                                    {"spaceId": space_id, "audienceId": "aud_missing"}, progress_callback=on_progress)
    assert tool_errors(result)[0]["type"] == "not-found"
