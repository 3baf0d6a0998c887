"""The prompts: listed with their arguments, each expanded and its tool calls run exactly as the text
gives them, arguments checked (`-32602` with a message), and ids completed."""

import json
import re

import pytest
from mcp import MCPError
from mcp.types import INVALID_PARAMS, PromptReference

from server import prompts
from store.catalog import audiences, destination_instances, spaces
from tests.conftest import NOW
from tests.ingest_helpers import send

pytestmark = pytest.mark.anyio
STEP = re.compile(r"^Step (\d+)\. .* \((segment_audiences_\w+)\):$")
EARLIER = re.compile(r"^<([\w.]+) from step (\d+)>$")


@pytest.fixture
def shop(store, space_id):
    """A space with users who ordered and viewed dashboards, in accounts, and one destination of each kind."""
    send(store, space_id,
         {"type": "identify", "userId": "ann", "traits": {"email": "ann@example.com", "plan": "pro"}},
         {"type": "track", "userId": "ann", "event": "Order Completed", "properties": {"revenue": 40}},
         {"type": "group", "userId": "ann", "groupId": "acme", "traits": {"industry": "retail"}},
         {"type": "group", "userId": "bob", "groupId": "initech", "traits": {"industry": "media"}},
         {"type": "track", "userId": "bob", "event": "Dashboard Viewed"})
    return {
        "pendula": destination_instances.add_destination(
            store, space_id, "pendula", "Flow", {"flowTriggerUrl": "https://flows.example/t", "apiToken": "tok"}).id,
        "moengage": destination_instances.add_destination(
            store, space_id, "moengage", "MoE", {"apiId": "A", "apiKey": "K"}).id,
    }


async def run_prompt(client, name, arguments):
    """Expand a prompt and call each of its steps' tools with the arguments its text shows, earlier
    results put in; the results, in order."""
    text = (await client.get_prompt(name, arguments)).messages[0].content.text
    lines = text.splitlines()
    results = []
    for index, line in enumerate(lines):
        step = STEP.match(line)
        if not step:
            continue
        assert int(step.group(1)) == len(results) + 1
        call = _resolved(json.loads(lines[index + 1]), results)
        result = await client.call_tool(step.group(2), call)
        assert not result.is_error, f"step {step.group(1)} {step.group(2)}: {result.content[0].text}"
        results.append(result.structured_content)
    return results


def _resolved(value, results):
    if isinstance(value, dict):
        return {key: _resolved(item, results) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolved(item, results) for item in value]
    earlier = EARLIER.match(value) if isinstance(value, str) else None
    if earlier:
        found = results[int(earlier.group(2)) - 1]
        for part in earlier.group(1).split("."):
            found = found[part]
        return found
    return value


async def test_the_prompts_are_listed_with_their_arguments(client):
    listed = {prompt.name: prompt for prompt in (await client.list_prompts()).prompts}
    assert set(listed) == {recipe.name for recipe in prompts.RECIPES} and len(listed) >= 5
    pendula = listed["send-audience-to-pendula"]
    assert [(a.name, a.required) for a in pendula.arguments] == [
        ("spaceId", True), ("name", True), ("query", True), ("destinationId", True)]
    assert not {a.name: a for a in listed["account-audience"].arguments}["query"].required


async def test_send_an_audience_to_pendula_runs_to_an_activation(client, store, space_id, shop):
    results = await run_prompt(client, "send-audience-to-pendula", {
        "spaceId": space_id, "name": "Buyers", "query": "event('Order Completed').count() >= 1",
        "destinationId": shop["pendula"]})
    assert [sorted(result)[0] for result in results] == [
        "audiencePreview", "audiencePreview", "audience", "connection", "activation", "audience"]
    assert results[4]["activation"]["activationType"] == "Audience Entered"
    assert "warnings" not in results[0]


async def test_a_computed_trait_to_moengage_is_connected_and_sending(client, space_id, shop):
    results = await run_prompt(client, "computed-trait-to-moengage", {
        "spaceId": space_id, "name": "Orders", "query": "event('Order Completed').count()",
        "destinationId": shop["moengage"]})
    assert "being sent now" in results[1]["sending"]
    assert results[2]["computedTrait"]["key"] == "orders"


async def test_an_account_audience_takes_the_walk_through_condition_by_default(client, store, space_id, shop):
    results = await run_prompt(client, "account-audience", {"spaceId": space_id, "name": "Quiet accounts"})
    created = results[2]["audience"]
    assert created["audienceType"] == "ACCOUNTS" and "Dashboard Viewed" in created["definition"]["query"]
    assert results[4]["run"]["status"] == "COMPLETED" and results[4]["run"]["size"] == 1


async def test_find_why_an_audience_is_empty_previews_its_own_definition(client, store, space_id, shop):
    typo = audiences.create_audience(store, space_id, name="Typo", audience_type="USERS",
                                     query="event('Order Complete').count() >= 1")
    results = await run_prompt(client, "find-why-an-audience-is-empty", {"spaceId": space_id, "audienceId": typo.id})
    assert "Order Completed" in [event["name"] for event in results[1]["events"]]
    assert any("'Order Completed'" in warning for warning in results[3]["warnings"])


async def test_export_members_links_the_csv(client, store, space_id, shop):
    buyers = audiences.create_audience(store, space_id, name="Buyers", audience_type="USERS",
                                       query="event('Order Completed').count() >= 1")
    [download] = await run_prompt(client, "export-audience-members", {
        "spaceId": space_id, "audienceId": buyers.id, "hour": NOW.strftime("%Y-%m-%dT%H:00:00Z")})
    assert download["download"]["urls"]


@pytest.mark.parametrize(("name", "arguments", "words"), [
    ("send-audience-to-pluto", {}, "Unknown prompt"),
    ("send-audience-to-pendula", {"spaceId": "{space}", "name": "B", "query": "event('X').count() >= 1"},
     "needs destinationId"),
    ("send-audience-to-pendula", {"spaceId": "{space}", "name": "B", "query": "event('X').count( >= 1",
                                  "destinationId": "{pendula}"}, "line 1, column"),
    ("send-audience-to-pendula", {"spaceId": "{space}", "name": "B", "query": "event('X').count() >= 1",
                                  "destinationId": "{moengage}"}, "needs a pendula one"),
    ("find-why-an-audience-is-empty", {"spaceId": "spa_nope", "audienceId": "aud_x"}, "segment_audiences_list_spaces"),
    ("find-why-an-audience-is-empty", {"spaceId": "{space}", "audienceId": "aud_x"}, "segment_audiences_list_audiences"),
    ("account-audience", {"spaceId": "{space}", "name": "A", "colour": "red"}, "not colour"),
])
async def test_an_unknown_prompt_or_a_bad_argument_is_invalid_params(client, space_id, shop, name, arguments, words):
    filled = {key: value.format(space=space_id, **shop) for key, value in arguments.items()}
    with pytest.raises(MCPError) as refused:
        await client.get_prompt(name, filled)
    assert refused.value.error.code == INVALID_PARAMS and words in refused.value.error.message


async def test_ids_are_completed_for_the_prompts_space_audience_and_destination(client, store, space_id, shop):
    other = spaces.create_space(store, "Other").space.id
    buyers = audiences.create_audience(store, space_id, name="Buyers", audience_type="USERS",
                                       query="event('Order Completed').count() >= 1")

    async def complete(prompt, argument, value, **context):
        result = await client.complete(PromptReference(type="ref/prompt", name=prompt),
                                       {"name": argument, "value": value}, context_arguments=context or None)
        return result.completion.values

    assert set(await complete("send-audience-to-pendula", "spaceId", "spa_")) == {space_id, other}
    assert await complete("send-audience-to-pendula", "spaceId", space_id[:-1]) == [space_id]
    assert await complete("send-audience-to-pendula", "destinationId", "", spaceId=space_id) == [shop["pendula"]]
    assert await complete("computed-trait-to-moengage", "destinationId", "dst", spaceId=space_id) == [shop["moengage"]]
    assert await complete("find-why-an-audience-is-empty", "audienceId", "aud_", spaceId=space_id) == [buyers.id]
    assert await complete("find-why-an-audience-is-empty", "audienceId", "", spaceId=other) == []
    assert await complete("find-why-an-audience-is-empty", "audienceId", "") == []
