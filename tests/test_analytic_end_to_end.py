"""An audience created over MCP computes on DuckDB (the default analytic store) and gives the same
members as on the operational database (`--analytics none`), on the same events sent by Segment's own
Python library, merges included."""

from datetime import datetime, timezone

import httpx
import pytest
from mcp import Client
from segment.analytics.client import Client as Analytics

from tests.servers import processed, server_with_space
from tests.test_compute_end_to_end import call, eventually

pytestmark = pytest.mark.anyio
USERS = [f"u{n}" for n in range(12)]
QUERY = ("event('Product Added').where(event('Order Completed').within(parent: 2 days).count() = 0).count() >= 1 "
         "OR (trait('plan') = 'pro' AND NOT event('Login').count() >= 2)")


def send_the_same_events(server) -> None:
    errors = []
    analytics = Analytics(server.write_key, host=server.base, on_error=lambda error, batch: errors.append(error))
    for n, user in enumerate(USERS):
        analytics.identify(user, {"plan": "pro" if n % 3 == 0 else "free"}, anonymous_id=f"anon-{user}")
        analytics.track(anonymous_id=f"device-{n}", event="Product Added", properties={"sku": n},
                        timestamp=datetime(2026, 11, 20 + n % 4, 10, tzinfo=timezone.utc))
        if n % 2:
            analytics.track(user, "Order Completed", timestamp=datetime(2026, 11, 20 + n % 4, 12, tzinfo=timezone.utc))
        for _ in range(n % 3):
            analytics.track(user, "Login")
        if n % 4 == 0:  # the device's events join the user's profile
            analytics.alias(previous_id=f"device-{n}", user_id=user)
    analytics.flush()
    assert not errors
    processed(server)


async def members(server) -> tuple[str, dict[str, bool]]:
    """Where the audience computes, and whether each user is a member after a forced run."""
    async with Client(f"{server.base}/mcp") as client:
        audience = (await call(client, "create_audience", spaceId=server.space_id, audienceType="USERS",
                               name="Abandoners", definition={"query": QUERY},
                               options={"includeHistoricalData": True}))["audience"]

        async def explained():
            got = (await call(client, "get_audience", spaceId=server.space_id, id=audience["id"], explain=True))
            return got["audience"]["status"] == "Live" and got["audience"]["explain"]

        explanation = await eventually(explained, seconds=60)

        async def forced():
            run = (await call(client, "force_execute_audience_run", spaceId=server.space_id,
                              audienceId=audience["id"]))["run"]
            return run["engine"] == explanation["engine"] and run

        run = await eventually(forced, seconds=60)
        assert run["status"] == "COMPLETED"
    found = {}
    for user in USERS:
        traits = httpx.get(f"{server.base}/v1/spaces/{server.space_id}/collections/users/profiles/user_id:{user}/traits",
                           auth=(server.access_token, "")).json()["traits"]
        found[user] = traits.get("abandoners")
    return run["engine"], found


async def test_an_audience_computed_on_duckdb_has_the_members_it_has_on_the_operational_database(tmp_path):
    answers = {}
    for option in ("duckdb", "none"):
        (tmp_path / option).mkdir()
        # the file named outright: on PostgreSQL `duckdb` alone means none
        analytics = f"duckdb:{tmp_path / 'analytic.duckdb'}" if option == "duckdb" else "none"
        server = server_with_space(tmp_path / option, "Analytics", "--analytics", analytics)
        try:
            send_the_same_events(server)
            answers[option] = await members(server)
        finally:
            server.stop()
    assert answers["duckdb"][0] == "duckdb" and answers["none"][0] in ("sqlite", "postgresql")
    assert answers["duckdb"][1] == answers["none"][1]
    assert set(answers["none"][1].values()) == {True, None}, "some users are members, some never were"
