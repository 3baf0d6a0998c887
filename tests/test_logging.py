"""The logging capability: `logging/setLevel`, then runs, dead-lettered deliveries and refused
writes (Tracking API calls, write tools) sent to the session as `notifications/message` at their
level, with no secrets."""

import anyio
import httpx
import pytest
import respx
from mcp import Client

from server.app import build_server
from server.web import api_app
from store.catalog import destination_instances
from tests.delivery_helpers import audience, deliver
from tests.ingest_helpers import send

pytestmark = [pytest.mark.anyio,
              pytest.mark.filterwarnings("ignore:The logging capability is deprecated")]


class Messages:
    """The log notifications a client received, waited on with a deadline."""

    def __init__(self):
        self.received = []

    async def __call__(self, params):
        self.received.append(params)

    async def first(self, predicate, seconds=10):
        with anyio.fail_after(seconds):
            while True:
                found = [m for m in self.received if predicate(m)]
                if found:
                    return found[0]
                await anyio.sleep(0.01)


@pytest.fixture
async def logged(store):
    messages = Messages()
    async with Client(build_server(store), mode="legacy", logging_callback=messages) as client:
        yield client, messages


async def test_the_server_declares_logging_and_accepts_set_level(logged):
    client, _ = logged
    assert client.server_capabilities.logging is not None and client.server_capabilities.completions is not None
    await client.set_logging_level("info")


async def test_a_forced_run_is_sent_as_an_info_message_after_set_level(logged, store, space_id):
    client, messages = logged
    send(store, space_id, {"type": "identify", "userId": "ann", "traits": {"plan": "pro"}})
    pros = audience(store, space_id, name="Pros", query="trait('plan') = 'pro'")
    await client.set_logging_level("info")
    result = await client.call_tool("segment_audiences_force_execute_audience_run",
                                    {"spaceId": space_id, "audienceId": pros.id})
    assert not result.is_error
    message = await messages.first(lambda m: "forced run" in m.data["message"])
    assert message.level == "info" and pros.id in message.data["message"] and message.logger == "segment_audiences.runs"


async def test_a_session_that_asked_for_errors_only_gets_no_run_messages_but_dead_letters(logged, store, space_id):
    client, messages = logged
    await client.set_logging_level("error")
    send(store, space_id, {"type": "identify", "userId": "ann", "traits": {"plan": "pro"}})
    pros = audience(store, space_id, name="Pros", query="trait('plan') = 'pro'")
    hook = destination_instances.add_destination(store, space_id, "webhooks-actions", "Hook",
                                                 {"sharedSecret": "s3cret-value"})
    connection = (await client.call_tool("segment_audiences_add_destination_to_audience", {
        "spaceId": space_id, "audienceId": pros.id, "destination": {"id": hook.id, "type": "destination"}})).structured_content
    result = await client.call_tool("segment_audiences_add_activation_to_audience", {
        "spaceId": space_id, "audienceId": pros.id, "connectionId": connection["connection"]["id"],
        "activationName": "Sync", "activationType": "Audience Entered", "performResync": True,
        "personalization": {"profile": {"properties": ["plan"]}},
        "destinationMapping": {"actionId": "webhooks-send", "settings": {"url": "https://hooks.example/in"}}})
    assert not result.is_error, result.content[0].text
    await client.call_tool("segment_audiences_force_execute_audience_run", {"spaceId": space_id, "audienceId": pros.id})
    with respx.mock:
        respx.post("https://hooks.example/in").mock(return_value=httpx.Response(400, text="bad s3cret-value"))
        await deliver(store)
    message = await messages.first(lambda m: "dead-lettered" in m.data["message"])
    assert message.level == "error" and "s3cret-value" not in message.data["message"]
    assert not [m for m in messages.received if m.level == "info"]


async def test_a_refused_tracking_call_is_a_warning_without_the_write_key(logged, store):
    client, messages = logged
    await client.set_logging_level("warning")
    transport = httpx.ASGITransport(app=api_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        refused = await http.post("/v1/track", auth=("wk_not-a-real-key", ""), json={"event": "E", "userId": "u"})
    assert refused.status_code == 401
    message = await messages.first(lambda m: "unknown write key" in m.data["message"])
    assert message.level == "warning" and "wk_not-a-real-key" not in message.data["message"]


async def test_a_refused_tool_write_is_a_warning_naming_the_tool_and_why(logged, space_id):
    client, messages = logged
    await client.set_logging_level("warning")
    refused = await client.call_tool("segment_audiences_create_audience", {
        "spaceId": space_id, "audienceType": "USERS", "name": "Bad", "definition": {"query": "event('x').count( >= 1"}})
    assert refused.is_error
    message = await messages.first(lambda m: "segment_audiences_create_audience" in m.data["message"])
    assert message.level == "warning" and "input-validation" in message.data["message"]
    missing = await client.call_tool("segment_audiences_get_audience", {"spaceId": space_id, "id": "aud_nope"})
    await client.call_tool("segment_audiences_remove_audience_from_space", {"spaceId": space_id, "id": "aud_nope"})
    await messages.first(lambda m: "remove_audience_from_space" in m.data["message"])  # in order, after any of get's
    assert missing.is_error and not [m for m in messages.received if "get_audience" in m.data["message"]]
