"""The advertised tool surface: names, hints, schemas (snapshot) and the bundle manifest."""

import json
import os
from pathlib import Path

import pytest
from mcp import Client

from server.app import build_server

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).parents[1]
SNAPSHOT = ROOT / "tests" / "snapshots" / "tools_list.json"
SEED_TOOLS = {
    "list_spaces", "get_space", "create_audience", "get_audience", "list_audiences", "update_audience_for_space",
    "remove_audience_from_space", "list_audience_consumers_from_space_and_audience",
    "add_audience_schedule_to_audience", "get_audience_schedule_from_space_and_audience",
    "list_audience_schedules_from_space_and_audience", "update_audience_schedule_for_audience",
    "remove_audience_schedule_from_audience", "create_computed_trait", "get_computed_trait", "list_computed_traits",
    "update_computed_trait_for_space", "remove_computed_trait_from_space", "list_supported_destinations_from_audience",
    "add_destination_to_audience", "list_destinations_from_audience", "update_destination_for_audience",
    "remove_destination_from_audience", "add_activation_to_audience", "get_activation_from_audience",
    "list_activations_from_audience", "update_activation_for_audience", "remove_activation_from_audience",
    "replace_messaging_subscriptions_in_spaces", "batch_query_messaging_subscriptions_for_space",
    "create_filter_for_space", "get_filter_by_id", "list_filters_for_space", "update_filter_by_id",
    "delete_filter_by_id", "create_audience_preview", "get_audience_preview", "force_execute_audience_run",
    "create_download",
}
ADDITIONS = {"create_destination", "list_destinations", "get_destination", "update_destination", "remove_destination",
             "get_profile", "list_profile_events", "update_data_graph", "get_data_graph"}
INSIGHTS = {"get_audience_size_history", "get_audience_overlap", "get_audience_breakdown", "backtest_audience",
            "create_audience_split", "get_audience_split", "update_audience_split", "remove_audience_split",
            "create_priority_list", "get_priority_list", "update_priority_list", "remove_priority_list",
            "create_alert", "list_alerts", "remove_alert"}
# Segment's Space Schema API (spec 73.2, alpha): in the Public API, but not among the seed's 39.
SPACE_SCHEMA = {"list_events", "list_properties_from_event", "list_sample_values_from_event_property", "list_traits",
                "list_sample_values_from_trait", "list_entity_paths", "list_properties_from_entity",
                "list_sample_values_from_entity_property"}


async def listed_tools(store, read_only=False):
    async with Client(build_server(store, read_only=read_only), mode="legacy") as client:
        return (await client.list_tools()).tools


async def test_the_thirty_nine_seed_tools_and_the_destination_additions_are_offered(store):
    names = [tool.name for tool in await listed_tools(store)]
    assert len(names) == len(set(names)) == 39 + len(ADDITIONS) + len(INSIGHTS) + len(SPACE_SCHEMA)
    assert {name.removeprefix("segment_audiences_") for name in names} == SEED_TOOLS | ADDITIONS | INSIGHTS | SPACE_SCHEMA


async def test_every_addition_says_it_is_one(store):
    for tool in await listed_tools(store):
        if tool.name.removeprefix("segment_audiences_") in ADDITIONS | INSIGHTS:
            assert tool.description.startswith("(Not in the Public API.)"), tool.name


async def test_every_tool_sets_all_four_hints_truthfully(store):
    for tool in await listed_tools(store):
        hints = tool.annotations
        assert None not in (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint, hints.open_world_hint)
        assert hints.open_world_hint is False
        is_read = tool.name.split("_")[2] in ("get", "list", "batch", "backtest")
        assert hints.read_only_hint is is_read, tool.name
        assert hints.destructive_hint is tool.name.startswith(("segment_audiences_remove_", "segment_audiences_delete_")), tool.name
        assert tool.output_schema is not None and tool.description


def wire_size(value) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


async def test_tools_list_stays_within_its_size_budget(store):
    """What a host puts in a model's context before it does anything: at most 103 KB in all, and at most
    54 KB of input schemas and descriptions (a host wanting less offers fewer `--toolsets`)."""
    tools = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in await listed_tools(store)]
    context = sum(wire_size(tool["inputSchema"]) + wire_size(tool["description"]) for tool in tools)
    assert wire_size(tools) <= 103_000, wire_size(tools)
    assert context <= 54_000, context


async def test_read_only_mode_registers_only_read_tools(store):
    tools = await listed_tools(store, read_only=True)
    assert tools and all(tool.annotations.read_only_hint for tool in tools)
    assert len(tools) == 37


async def test_seed_parameter_names_and_required_flags(store):
    tools = {tool.name: tool for tool in await listed_tools(store)}
    activation = tools["segment_audiences_add_activation_to_audience"].input_schema
    assert set(activation["required"]) == {"spaceId", "audienceId", "connectionId", "activationName", "activationType",
                                           "performResync", "personalization"}
    schedule = tools["segment_audiences_add_audience_schedule_to_audience"].input_schema
    assert set(schedule["required"]) == {"spaceId", "id", "config", "strategy"}
    assert set(tools["segment_audiences_list_audiences"].input_schema["properties"]) == {"spaceId", "search", "pagination", "include"}
    create_filter = tools["segment_audiences_create_filter_for_space"].input_schema
    assert set(create_filter["required"]) == {"integrationId", "name", "if"}
    assert set(create_filter["properties"]) == {"integrationId", "name", "if", "enabled", "description", "drop"}
    assert tools["segment_audiences_update_filter_by_id"].input_schema["required"] == ["id"]
    assert tools["segment_audiences_list_filters_for_space"].input_schema["required"] == ["integrationId"]


async def test_tools_list_matches_the_checked_in_snapshot(store):
    live = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in await listed_tools(store)]
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(live, indent=2, ensure_ascii=False) + "\n")
    assert live == json.loads(SNAPSHOT.read_text()), "tools/list changed; rerun with UPDATE_SNAPSHOTS=1 and review the diff"


async def test_manifest_lists_exactly_the_live_tools(store):
    manifest = json.loads((ROOT / "manifest.json").read_text())
    assert manifest["manifest_version"] == "0.3" and manifest["server"]["type"] == "python"
    assert {"name", "version", "description", "author", "server"} <= set(manifest)
    live = await listed_tools(store)
    assert [t["name"] for t in manifest["tools"]] == [tool.name for tool in live]
    for listed, tool in zip(manifest["tools"], live):
        assert tool.description.startswith(listed["description"]), tool.name
