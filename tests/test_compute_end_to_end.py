"""The real server process: an audience created over MCP follows events sent by Segment's own Python
library, through the background loop, and membership shows in get_audience and the Profile API."""

import inspect
import time

import anyio
import httpx
import pytest
from mcp import Client
from segment.analytics.client import Client as Analytics

from tests.servers import processed, server_with_space

pytestmark = pytest.mark.anyio


@pytest.fixture
def server(tmp_path):
    process = server_with_space(tmp_path, "Compute")
    yield process
    process.stop()


async def call(client, tool, **arguments):
    result = await client.call_tool(f"segment_audiences_{tool}", arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def eventually(check, seconds=15):
    """Poll `check` (plain or async) until it returns a truthy value (tests do not assert on wall time)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        await anyio.sleep(0.05)
    raise AssertionError("condition not reached")


async def test_an_audience_follows_events_from_the_official_client(server):
    async with Client(f"{server.base}/mcp") as client:
        audience = (await call(client, "create_audience", spaceId=server.space_id, audienceType="USERS",
                               name="Pro Buyers",
                               definition={"query": "event('Order Completed').where(property('plan') = 'pro')"
                                                    ".within(30 days).count() >= 1"}))["audience"]

        async def size():
            got = (await call(client, "get_audience", spaceId=server.space_id, id=audience["id"]))["audience"]
            return got.get("size") and got["status"] == "Live" and got["size"]["count"]

        async def live():
            got = (await call(client, "get_audience", spaceId=server.space_id, id=audience["id"]))["audience"]
            return got["status"] == "Live"

        await eventually(live)
        errors = []
        analytics = Analytics(server.write_key, host=server.base, on_error=lambda e, b: errors.append(e))
        analytics.track("u1", "Order Completed", {"plan": "pro"})
        analytics.track("u2", "Order Completed", {"plan": "free"})
        analytics.flush()
        assert not errors
        processed(server)
        assert await eventually(size) == 1
        preview = (await call(client, "create_audience_preview", spaceId=server.space_id, audienceType="USERS",
                              definition={"query": "event('Order Completed').count() >= 1"}))["audiencePreview"]

        async def completed():
            got = (await call(client, "get_audience_preview", spaceId=server.space_id, id=preview["id"]))
            return got["audiencePreview"]["status"] == "COMPLETED" and got["audiencePreview"]

        assert (await eventually(completed))["size"]["count"] == 2

    traits = httpx.get(f"{server.base}/v1/spaces/{server.space_id}/collections/users/profiles/user_id:u1/traits",
                       auth=(server.access_token, "")).json()
    assert traits["traits"]["pro_buyers"] is True
