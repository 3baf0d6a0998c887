"""The seeds' walk-throughs end to end through MCP tool calls alone, once the space's write key is
known: destinations created, audiences and computed traits defined, connected and activated over MCP,
events sent with Segment's own Python library, and every entry, exit and value change arriving at a
real local receiver standing in for Pendula, MoEngage and a webhook; then members exported as CSV."""

import csv
import io
from datetime import datetime, timezone

import httpx

import pytest
from mcp import Client
from segment.analytics.client import Client as Analytics

from tests.conftest import tool_errors
from tests.receiver import Receiver
from tests.servers import processed, server_with_space
from tests.test_compute_end_to_end import call, eventually

pytestmark = pytest.mark.anyio


@pytest.fixture
def receiver():
    receiver = Receiver(failures={"/pendula": [503]})
    yield receiver
    receiver.close()


@pytest.fixture
def server(tmp_path):
    process = server_with_space(tmp_path, "Delivery")
    yield process
    process.stop()


async def create_destination(client, server, slug, **settings):
    created = await call(client, "create_destination", spaceId=server.space_id, metadataId=slug, name=slug,
                         settings=settings)
    return created["destination"]["id"]


def identify(analytics, user, plan):
    analytics.identify(user, {"plan": plan, "email": f"{user}@example.com"})
    analytics.flush()


async def test_members_entries_and_exits_reach_pendula_and_moengage(server, receiver):
    analytics = Analytics(server.write_key, host=server.base, on_error=lambda e, b: pytest.fail(str(e)))
    identify(analytics, "u1", "pro")
    identify(analytics, "u2", "free")
    processed(server)

    async with Client(f"{server.base}/mcp") as client:
        space = server.space_id
        pendula = await create_destination(client, server, "pendula", flowTriggerUrl=f"{receiver.url}/pendula/flow-1",
                                           apiToken="Bearer pendula-token")
        moengage = await create_destination(client, server, "moengage", apiId="APP1", apiKey="secret",
                                            endpoint=f"{receiver.url}/moe")
        audience = (await call(client, "create_audience", spaceId=space, audienceType="USERS", name="Pro Plan",
                               definition={"query": "trait('plan') = 'pro'"}))["audience"]

        async def live():
            got = (await call(client, "get_audience", spaceId=space, id=audience["id"]))["audience"]
            return got["status"] == "Live"

        await eventually(live)
        to_pendula = (await call(client, "add_destination_to_audience", spaceId=space, audienceId=audience["id"],
                                 destination={"id": pendula, "type": "destination"}))["connection"]["id"]
        activation = (await call(client, "add_activation_to_audience", spaceId=space, audienceId=audience["id"],
                                 connectionId=to_pendula, activationName="Trigger flow",
                                 activationType="Audience Membership Changed", performResync=True,
                                 personalization={"profile": {"properties": ["plan"]}}))["activation"]
        await call(client, "add_destination_to_audience", spaceId=space, audienceId=audience["id"],
                   destination={"id": moengage, "type": "destination"},
                   connectionSettings={"sendIdentify": True, "sendTrack": True})

        await eventually(lambda: len(receiver.at("/pendula")) == 1, seconds=30)
        await eventually(lambda: len(receiver.at("/moe")) == 2)
        [flow] = receiver.at("/pendula")
        assert flow.headers["Authorization"] == "Bearer pendula-token"
        assert flow.body["type"] == "identify" and flow.body["userId"] == "u1"
        assert flow.body["traits"] == {"plan": "pro", "email": "u1@example.com", "pro_plan": True}
        assert flow.body["context"]["personas"]["event_emitter_id"] == activation["id"]
        assert sorted(r.path for r in receiver.at("/moe")) == ["/moe/v1/customer/APP1", "/moe/v1/event/APP1"]

        identify(analytics, "u2", "pro")
        identify(analytics, "u1", "free")
        await eventually(lambda: len(receiver.at("/pendula")) == 3)
        changes = {(r.body["userId"], r.body["traits"]["pro_plan"]) for r in receiver.at("/pendula")[1:]}
        assert changes == {("u2", True), ("u1", False)}
        await eventually(lambda: len(receiver.at("/moe")) == 6)
        events = [r.body["actions"][0]["action"] for r in receiver.at("/moe/v1/event")]
        assert sorted(events) == ["Audience Entered", "Audience Entered", "Audience Exited"]

        async def recorded():
            got = (await call(client, "get_activation_from_audience", spaceId=space, audienceId=audience["id"],
                              id=activation["id"]))["activation"]
            return got["delivery"]["delivered"] == 3 and got

        got = await eventually(recorded)
        assert got["delivery"]["pending"] == got["delivery"]["retrying"] == 0
        assert got["delivery"]["lastError"].startswith("HTTP 503"), "the first attempt met a 503 and was retried"
        assert got["performResync"] is False
        async def both_delivered():
            listed = await call(client, "list_destinations_from_audience", spaceId=space, audienceId=audience["id"])
            return sorted(c["delivery"]["delivered"] for c in listed["connections"]) == [3, 3]

        assert await eventually(both_delivered)

        hour = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:00:00Z")
        download = await call(client, "create_download", collectionId=audience["id"], hour=hour, format="formatted")
    [url] = download["download"]["urls"]
    assert url.startswith(f"{server.base}/downloads/")
    fetched = httpx.get(url)
    assert fetched.status_code == 200 and fetched.headers["content-type"].startswith("text/csv")
    assert [row["user_id"] for row in csv.DictReader(io.StringIO(fetched.text))] == ["u2"]
    assert httpx.get(url.replace("/downloads/", "/downloads/x")).status_code == 404


async def test_computed_trait_values_reach_moengage_and_a_webhook(server, receiver):
    analytics = Analytics(server.write_key, host=server.base, on_error=lambda e, b: pytest.fail(str(e)))
    identify(analytics, "u1", "pro")
    analytics.track("u1", "Order Completed", {"revenue": 100})
    analytics.track("u1", "Order Completed", {"revenue": 60})
    analytics.flush()
    processed(server)
    async with Client(f"{server.base}/mcp") as client:
        space = server.space_id
        moengage = await create_destination(client, server, "moengage", apiId="APP1", apiKey="secret",
                                            endpoint=f"{receiver.url}/moe")
        hook = await create_destination(client, server, "webhooks-actions")
        trait = (await call(client, "create_computed_trait", spaceId=space, name="Total Revenue",
                            definition={"query": "event('Order Completed').sum(property('revenue'))",
                                        "type": "USERS"}))["computedTrait"]

        async def live():
            got = (await call(client, "get_computed_trait", spaceId=space, id=trait["id"]))["computedTrait"]
            return got["status"] == "Live"

        await eventually(live)
        await call(client, "add_destination_to_audience", spaceId=space, audienceId=trait["id"],
                   destination={"id": moengage, "type": "destination"},
                   connectionSettings={"sendIdentify": True, "sendTrack": True})
        connection = (await call(client, "add_destination_to_audience", spaceId=space, audienceId=trait["id"],
                                 destination={"id": hook, "type": "destination"}))["connection"]["id"]
        await call(client, "add_activation_to_audience", spaceId=space, audienceId=trait["id"], connectionId=connection,
                   activationName="Revenue", activationType="All Events", performResync=True,
                   personalization={"profile": {"properties": ["plan"]}},
                   destinationMapping={"actionId": "webhooks-send", "settings": {"url": f"{receiver.url}/hook"}})
        await eventually(lambda: len(receiver.at("/moe")) == 2 and len(receiver.at("/hook")) == 1)

        analytics.track("u1", "Order Completed", {"revenue": 300})
        analytics.flush()
        await eventually(lambda: len(receiver.at("/moe")) == 4 and len(receiver.at("/hook")) == 2)

    customers = [r.body for r in receiver.at("/moe/v1/customer")]
    assert [(c["customer_id"], c["attributes"]["total_revenue"]) for c in customers] == [("u1", 160), ("u1", 460)]
    assert [r.body["actions"][0] for r in receiver.at("/moe/v1/event")][-1]["attributes"] == {
        "trait_key": "total_revenue", "total_revenue": 460}
    computed = receiver.at("/hook")[-1].body
    assert computed["event"] == "Trait Computed" and computed["userId"] == "u1"
    assert computed["properties"] == {"plan": "pro", "trait_key": "total_revenue", "total_revenue": 460}
    assert computed["context"]["personas"]["computation_class"] == "trait"


async def test_an_account_audience_sends_group_per_account_and_identify_per_user(server, receiver):
    analytics = Analytics(server.write_key, host=server.base, on_error=lambda e, b: pytest.fail(str(e)))
    for user in ("ann", "bob", "cat"):
        identify(analytics, user, "pro")
    analytics.group("ann", "acme", {"plan": "enterprise"})
    analytics.group("bob", "acme", {})
    analytics.group("cat", "globex", {"plan": "free"})
    analytics.flush()
    processed(server)
    async with Client(f"{server.base}/mcp") as client:
        space = server.space_id
        hook = await create_destination(client, server, "webhooks-actions", sharedSecret="s3cret")
        audience = (await call(client, "create_audience", spaceId=space, audienceType="ACCOUNTS",
                               name="Enterprise Accounts",
                               definition={"query": "trait('plan') = 'enterprise'"}))["audience"]
        connection = (await call(client, "add_destination_to_audience", spaceId=space, audienceId=audience["id"],
                                 destination={"id": hook, "type": "destination"},
                                 connectionSettings={"sendGroup": True}))["connection"]["id"]
        await call(client, "add_activation_to_audience", spaceId=space, audienceId=audience["id"],
                   connectionId=connection, activationName="Accounts", activationType="Audience Membership Changed",
                   performResync=True, personalization={"profile": {"properties": []}},
                   destinationMapping={"actionId": "webhooks-send-batch",
                                       "settings": {"url": f"{receiver.url}/accounts"}})
        await eventually(lambda: len(receiver.at("/accounts")) == 1, seconds=30)

        analytics.group("ann", "acme", {"plan": "free"})
        analytics.flush()
        processed(server)

        run = await call(client, "force_execute_audience_run", spaceId=space, audienceId=audience["id"])
        assert run["run"]["exited"] == 1
        await eventually(lambda: len(receiver.at("/accounts")) == 2)

    entered, left = [r.body for r in receiver.at("/accounts")]
    assert [(e["type"], e.get("groupId"), e["userId"], e["traits"]["enterprise_accounts"]) for e in entered] == [
        ("group", "acme", "ann", True), ("identify", None, "ann", True), ("identify", None, "bob", True)]
    assert [(e["type"], e["traits"]["enterprise_accounts"]) for e in left] == [
        ("group", False), ("identify", False), ("identify", False)]


async def test_destination_lifecycle_over_mcp_with_the_removal_conflict(server, receiver):
    async with Client(f"{server.base}/mcp") as client:
        space = server.space_id
        pendula = await create_destination(client, server, "pendula", flowTriggerUrl=f"{receiver.url}/wrong",
                                           apiToken="Bearer old")
        fixed = await call(client, "update_destination", spaceId=space, destinationId=pendula,
                           settings={"flowTriggerUrl": f"{receiver.url}/pendula/flow-2", "apiToken": "Bearer new"})
        assert fixed["destination"]["settings"] == {"flowTriggerUrl": f"{receiver.url}/pendula/flow-2",
                                                    "apiToken": "********"}
        listed = await call(client, "list_destinations", spaceId=space)
        assert [d["id"] for d in listed["destinations"]] == [pendula]
        audience = (await call(client, "create_audience", spaceId=space, audienceType="USERS", name="Everyone",
                               definition={"query": "trait('plan') = 'pro'"}))["audience"]
        connection = (await call(client, "add_destination_to_audience", spaceId=space, audienceId=audience["id"],
                                 destination={"id": pendula, "type": "destination"}))["connection"]["id"]
        refused = await client.call_tool("segment_audiences_remove_destination",
                                         {"spaceId": space, "destinationId": pendula})
        [error] = tool_errors(refused)
        assert error["type"] == "conflict" and connection in error["message"]
        await call(client, "remove_destination_from_audience", spaceId=space, audienceId=audience["id"],
                   destinationId=connection)
        assert await call(client, "remove_destination", spaceId=space, destinationId=pendula) == {"status": "SUCCESS"}
        assert (await call(client, "list_destinations", spaceId=space))["destinations"] == []
