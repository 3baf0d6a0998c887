"""Reading profiles through MCP: an agent checks what its definitions made of the data without the
Profile API's token. Profiles are found by each kind of identifier and by id, through merges."""

from datetime import timedelta

import pytest

from store.catalog import audiences
from store.compute import runs
from tests.conftest import NOW
from tests.ingest_helpers import profile_of, send

pytestmark = pytest.mark.anyio


@pytest.fixture
def shopper(store, space_id):
    """Ann, browsing anonymously then identified (the two profiles merge), with an order, in an
    account, and a member of an audience whose key is also one of her traits."""
    at = lambda minutes: (NOW - timedelta(minutes=minutes)).isoformat()  # noqa: E731
    send(store, space_id,
         {"type": "page", "anonymousId": "anon-1", "name": "Home", "timestamp": at(30)},
         {"type": "identify", "userId": "ann", "traits": {"email": "ann@example.com"}, "timestamp": at(20)},
         {"type": "identify", "userId": "ann", "anonymousId": "anon-1", "traits": {"plan": "pro"}, "timestamp": at(15)},
         {"type": "track", "userId": "ann", "event": "Order Completed", "properties": {"revenue": 42},
          "timestamp": at(10)},
         {"type": "group", "userId": "ann", "groupId": "acme", "traits": {"name": "Acme"}, "timestamp": at(5)})
    buyers = audiences.create_audience(store, space_id, name="Buyers", audience_type="USERS", options=None,
                                       query="event('Order Completed').count() >= 1")
    runs.run(store, buyers.id, reason="initial")
    return buyers


async def test_a_profile_is_found_by_each_identifier_and_by_id_through_its_merge(call, store, space_id, shopper):
    by_user = (await call.ok("get_profile", spaceId=space_id, identifier="user_id:ann"))["profile"]
    for reference in ("email:ann@example.com", "anonymous_id:anon-1", by_user["id"]):
        assert (await call.ok("get_profile", spaceId=space_id, identifier=reference))["profile"] == by_user
    assert by_user["id"] == profile_of(store, "user_id", "ann")
    assert {(i["type"], i["id"]) for i in by_user["externalIds"]} >= {
        ("user_id", "ann"), ("email", "ann@example.com"), ("anonymous_id", "anon-1")}


async def test_a_profile_shows_its_traits_with_their_classes_its_audiences_and_its_account(call, space_id, shopper):
    profile = (await call.ok("get_profile", spaceId=space_id, identifier="user_id:ann"))["profile"]

    traits = {trait["key"]: (trait["value"], trait["traitClass"]) for trait in profile["traits"]}
    assert traits["plan"] == ("pro", "custom") and traits["email"] == ("ann@example.com", "custom")
    assert traits[shopper.key] == (True, "audience")
    assert profile["audiences"] == [{"id": shopper.id, "key": shopper.key, "name": "Buyers"}]
    [account] = profile["links"]
    assert account["collection"] == "accounts" and ("group_id", "acme") in {
        (i["type"], i["id"]) for i in account["externalIds"]}
    got = (await call.ok("get_profile", spaceId=space_id, identifier="group_id:acme", collection="accounts"))["profile"]
    assert got["id"] == account["id"] and got["traits"][0]["key"] == "name"


async def test_a_profiles_events_come_newest_first_a_page_at_a_time(call, space_id, shopper):
    first = await call.ok("list_profile_events", spaceId=space_id, identifier="user_id:ann", count=2)
    rest = await call.ok("list_profile_events", spaceId=space_id, identifier="user_id:ann", count=2,
                         cursor=first["pagination"]["next"])

    seen = [event["type"] for event in first["events"] + rest["events"]]
    assert seen == ["group", "track", "identify", "identify"]
    assert first["events"][1]["event"] == "Order Completed" and first["events"][1]["properties"] == {"revenue": 42}
    orders = await call.ok("list_profile_events", spaceId=space_id, identifier="user_id:ann",
                           eventNames=["Order Completed"])
    assert [event["event"] for event in orders["events"]] == ["Order Completed"]
    assert "next" not in orders["pagination"]


async def test_an_unknown_profile_or_a_foreign_cursor_is_a_clear_error(call, space_id, shopper):
    missing = await call.error("get_profile", spaceId=space_id, identifier="user_id:nobody")
    assert missing["type"] == "not-found" and "user_id:u1" in missing["message"] and missing["field"] == "identifier"
    bad = await call.error("list_profile_events", spaceId=space_id, identifier="user_id:ann", cursor="bm90LWEtY3Vyc29y")
    assert bad["type"] == "input-validation" and bad["field"] == "cursor"
    space = await call.error("get_profile", spaceId="spa_nope", identifier="user_id:ann")
    assert space["type"] == "not-found" and "list_spaces" in space["message"]
