"""The Pendula and MoEngage walk-throughs end to end: destinations added with the CLI, connected and
activated over MCP, events sent with Segment's own Python library, and every entry and exit arriving
at a real local receiver standing in for both services; then the members exported as CSV over HTTP."""

import csv
import io
import subprocess
import sys
from datetime import datetime, timezone

import httpx

import pytest
from mcp import Client
from segment.analytics.client import Client as Analytics

from tests.receiver import Receiver
from tests.servers import server_with_space
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


def add_destination(server, slug, *settings):
    added = subprocess.run([sys.executable, "-m", "server", "destinations", "add", "--space", server.space_id,
                            "--type", slug, "--name", slug, *[f"--setting={s}" for s in settings]],
                           env=server.env, capture_output=True, text=True, check=True)
    return added.stdout.strip()


def identify(analytics, user, plan):
    analytics.identify(user, {"plan": plan, "email": f"{user}@example.com"})
    analytics.flush()


async def test_members_entries_and_exits_reach_pendula_and_moengage(server, receiver):
    analytics = Analytics(server.write_key, host=server.base, on_error=lambda e, b: pytest.fail(str(e)))
    identify(analytics, "u1", "pro")
    identify(analytics, "u2", "free")
    pendula = add_destination(server, "pendula", f"flowTriggerUrl={receiver.url}/pendula/flow-1",
                              "apiToken=Bearer pendula-token")
    moengage = add_destination(server, "moengage", "apiId=APP1", "apiKey=secret", f"endpoint={receiver.url}/moe")

    async with Client(f"{server.base}/mcp") as client:
        space = server.space_id
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
