"""Space filter tools through the MCP client: shapes, FQL checks, pagination, limits, updates."""

import pytest

pytestmark = pytest.mark.anyio


async def test_create_returns_the_public_api_filter_with_defaults(call, space_id, store):
    created = await call.ok("create_filter_for_space", integrationId=space_id, name="No tests",
                            **{"if": "event = 'Test Event'"})
    flt = created["filter"]
    assert flt["id"].startswith("flt_")
    assert (flt["integrationId"], flt["workspaceId"]) == (space_id, store.workspace_id)
    assert (flt["if"], flt["enabled"], flt["drop"], flt["droppedCount"]) == ("event = 'Test Event'", True, True, 0)
    assert flt["createdAt"].endswith("Z")
    assert (await call.ok("get_filter_by_id", id=flt["id"])) == created


async def test_an_invalid_if_is_refused_with_its_position(call, space_id):
    error = await call.error("create_filter_for_space", integrationId=space_id, name="Bad",
                             **{"if": "type = 'track' and\n  lenght(userId) < 1"})
    assert error["type"] == "input-validation" and error["field"] == "if"
    assert "line 2, column 3" in error["message"] and "unknown function 'lenght'" in error["message"]


async def test_unknown_space_and_filter_ids_are_not_found(call):
    error = await call.error("create_filter_for_space", integrationId="spa_nope", name="x", **{"if": "all"})
    assert error["type"] == "not-found" and "list_spaces" in error["message"]
    assert (await call.error("get_filter_by_id", id="flt_nope"))["type"] == "not-found"
    assert (await call.error("delete_filter_by_id", id="flt_nope"))["type"] == "not-found"


async def test_a_space_holds_at_most_ten_filters(call, space_id):
    for n in range(10):
        await call.ok("create_filter_for_space", integrationId=space_id, name=f"f{n}", **{"if": f"event = 'E{n}'"})
    error = await call.error("create_filter_for_space", integrationId=space_id, name="eleventh", **{"if": "all"})
    assert error["type"] == "conflict" and "10 filters" in error["message"]


async def test_listing_pages_by_offset(call, space_id):
    for n in range(7):
        await call.ok("create_filter_for_space", integrationId=space_id, name=f"f{n}", **{"if": "all"})
    first = await call.ok("list_filters_for_space", integrationId=space_id, pagination={"count": 3})
    assert [f["name"] for f in first["filters"]] == ["f0", "f1", "f2"]
    assert first["pagination"] == {"current": 0, "next": 3, "totalEntries": 7}
    last = await call.ok("list_filters_for_space", integrationId=space_id, pagination={"cursor": 6, "count": 3})
    assert [f["name"] for f in last["filters"]] == ["f6"]
    assert "next" not in last["pagination"]
    error = await call.error("list_filters_for_space", integrationId=space_id, pagination={"count": 11})
    assert error["type"] == "input-validation" and "pagination.count" in error["field"]


async def test_update_changes_only_the_given_fields_and_checks_the_if(call, space_id):
    flt = (await call.ok("create_filter_for_space", integrationId=space_id, name="Old", description="d",
                         **{"if": "type = 'track'"}))["filter"]
    updated = (await call.ok("update_filter_by_id", id=flt["id"], name="New", enabled=False,
                             **{"if": "!(type = \"track\")"}))["filter"]
    assert (updated["name"], updated["enabled"], updated["if"], updated["description"]) == ("New", False, '!(type = "track")', "d")
    error = await call.error("update_filter_by_id", id=flt["id"], **{"if": "type = = 1"})
    assert error["field"] == "if"
    moved = await call.error("update_filter_by_id", id=flt["id"], integrationId="spa_other")
    assert moved["type"] == "input-validation" and moved["field"] == "integrationId"
    assert (await call.ok("get_filter_by_id", id=flt["id"]))["filter"]["name"] == "New"


async def test_delete_removes_the_filter(call, space_id):
    flt = (await call.ok("create_filter_for_space", integrationId=space_id, name="x", **{"if": "all"}))["filter"]
    assert await call.ok("delete_filter_by_id", id=flt["id"]) == {"deleted": True}
    assert (await call.error("get_filter_by_id", id=flt["id"]))["type"] == "not-found"


async def test_drops_show_up_on_the_filter(call, space_id, store):
    from tests.ingest_helpers import send

    flt = (await call.ok("create_filter_for_space", integrationId=space_id, name="bots",
                         **{"if": "'bot' in properties.tags"}))["filter"]
    send(store, space_id, {"type": "track", "userId": "u", "event": "E", "properties": {"tags": ["bot", "x"]}},
         {"type": "track", "userId": "u", "event": "E", "properties": {"tags": ["human"]}})
    seen = (await call.ok("get_filter_by_id", id=flt["id"]))["filter"]
    assert seen["droppedCount"] == 1 and seen["lastDroppedAt"].endswith("Z")
