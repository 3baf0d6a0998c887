"""The Tracking API over HTTP (in process): shapes, authentication, limits, timestamps, de-duplication."""

import gzip
import json

import httpx
import pytest

from server.web import api_app
from store.catalog import spaces
from store.ingest.processor import process_all
from tests.ingest_helpers import profile_of, reads_of, rows

pytestmark = pytest.mark.anyio


@pytest.fixture
def keys(store):
    return spaces.create_space(store, "Tracking")


@pytest.fixture
async def http(store):
    transport = httpx.ASGITransport(app=api_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def auth(keys):
    return (keys.write_key, "")


async def test_each_call_type_is_accepted_and_stored(http, keys, store):
    calls = {
        "identify": {"userId": "u1", "traits": {"name": "Ada"}},
        "track": {"userId": "u1", "event": "Signed Up", "properties": {"plan": "pro"}},
        "page": {"userId": "u1", "name": "Home", "category": "Docs", "properties": {"path": "/"}},
        "screen": {"userId": "u1", "name": "Settings"},
        "group": {"userId": "u1", "groupId": "acme", "traits": {"plan": "team"}},
        "alias": {"userId": "u1", "previousId": "old-1"},
    }
    for kind, body in calls.items():
        response = await http.post(f"/v1/{kind}", json=body, auth=auth(keys))
        assert (response.status_code, response.json()) == (200, {"success": True}), kind
    process_all(store)
    stored = rows(store, "select type, event, properties from event order by id")
    assert [(t, e) for t, e, _ in stored] == [
        ("identify", None), ("track", "Signed Up"), ("page", "Page Viewed"), ("screen", "Screen Viewed"),
        ("group", None), ("alias", None)]
    assert json.loads(stored[2][2]) == {"path": "/", "name": "Home", "category": "Docs"}
    assert json.loads(stored[3][2]) == {"name": "Settings"}


async def test_short_forms_and_write_key_in_the_body(http, keys, store):
    response = await http.post("/v1/t", json={"userId": "u1", "event": "E", "writeKey": keys.write_key})
    assert response.status_code == 200
    process_all(store)
    assert rows(store, "select event from event") == [("E",)]


async def test_a_batch_with_gzip_and_a_batch_level_sent_at(http, keys, store):
    body = {
        "batch": [
            {"type": "track", "userId": "u1", "event": "A", "timestamp": "2026-11-22T09:00:00Z"},
            {"type": "identify", "userId": "u1", "traits": {"x": 1}, "timestamp": "2026-11-22T09:00:00Z"},
        ],
        "sentAt": "2026-11-22T09:00:10Z",
    }
    response = await http.post("/v1/batch", content=gzip.compress(json.dumps(body).encode()), auth=auth(keys),
                               headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert response.json() == {"success": True}
    process_all(store)
    # received at 09:30:00 (the frozen clock), sent 10 s after the event: timestamp = 09:29:50
    from backend.clock import from_ms

    [(stamp,)] = rows(store, "select timestamp_ms from event where type = 'track'")
    assert from_ms(stamp).isoformat() == "2026-11-22T09:29:50+00:00"


async def test_a_wrong_write_key_is_401(http, keys):
    response = await http.post("/v1/track", json={"userId": "u", "event": "E"}, auth=("nope", ""))
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized" and "write key" in response.json()["message"]
    assert (await http.post("/v1/track", json={"userId": "u", "event": "E"})).status_code == 401


async def test_a_write_key_is_read_from_the_database_once_and_a_new_spaces_key_works_at_once(http, keys, store):
    with reads_of(store, "space") as space_reads:
        assert (await http.post("/v1/track", json={"userId": "u", "event": "E"}, auth=("unknown", ""))).status_code == 401
        later = spaces.create_space(store, "Later")
        for _ in range(3):
            for new in (keys, later):
                response = await http.post("/v1/track", json={"userId": "u", "event": "E"}, auth=auth(new))
                assert response.status_code == 200

    assert len([statement for statement in space_reads if "write_key" in statement]) == 3  # the unknown key and each space's
    process_all(store)
    assert rows(store, "select count(*) from event group by space_id") == [(3,), (3,)]


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/v1/track", {"event": "E"}, "userId or anonymousId is required"),
        ("/v1/track", {"userId": "u"}, "needs a non-empty event name"),
        ("/v1/track", {"userId": "u", "event": "E", "timestamp": "yesterday"}, "timestamp is not an ISO-8601 time"),
        ("/v1/track", {"userId": "u", "event": "E", "properties": [1, 2]}, "properties must be a JSON object"),
        ("/v1/identify", {"userId": "u", "traits": "tall"}, "traits must be a JSON object"),
        ("/v1/group", {"userId": "u"}, "needs a non-empty 'groupId'"),
        ("/v1/alias", {"userId": "u"}, "needs both 'previousId' and 'userId'"),
        ("/v1/track", {"userId": "u", "event": "E", "messageId": "x" * 101}, "messageId must be a string of at most 100"),
        ("/v1/track", {"userId": "u", "event": "E", "context": {"externalIds": [{"id": "1"}]}}, "needs all of id, type"),
    ],
)
async def test_malformed_messages_are_400_with_the_reason(http, keys, store, path, body, reason):
    response = await http.post(path, json=body, auth=auth(keys))
    assert response.status_code == 400
    assert reason in response.json()["message"]
    process_all(store)
    assert rows(store, "select count(*) from event") == [(0,)]


async def test_a_batch_accepts_the_valid_messages_and_names_the_rejected(http, keys, store):
    body = {"batch": [{"type": "track", "userId": "u", "event": "Good"}, {"type": "shout", "userId": "u"},
                      {"type": "track", "event": "No id"}]}
    response = await http.post("/v1/batch", json=body, auth=auth(keys))
    assert response.status_code == 400
    answer = response.json()
    assert answer["accepted"] == 1
    assert [r["index"] for r in answer["rejected"]] == [1, 2]
    assert "unknown message type 'shout'" in answer["rejected"][0]["message"]
    process_all(store)
    assert rows(store, "select event from event") == [("Good",)]


async def test_bodies_that_are_not_json_objects_are_400(http, keys):
    assert (await http.post("/v1/track", content=b"{not json", auth=auth(keys))).status_code == 400
    assert (await http.post("/v1/track", json=[1], auth=auth(keys))).status_code == 400
    assert (await http.post("/v1/batch", json={"batch": "x"}, auth=auth(keys))).status_code == 400


async def test_oversize_bodies_are_413(http, keys, store):
    big = {"userId": "u", "event": "E", "properties": {"blob": "x" * 33_000}}
    assert (await http.post("/v1/track", json=big, auth=auth(keys))).status_code == 413
    batch = {"batch": [{"type": "track", "userId": "u", "event": "E", "properties": {"b": "x" * 20_000}}] * 30}
    assert (await http.post("/v1/batch", json=batch, auth=auth(keys))).status_code == 413
    bomb = gzip.compress(json.dumps({"batch": [], "pad": "0" * 2_000_000}).encode())
    response = await http.post("/v1/batch", content=bomb, auth=auth(keys), headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413
    process_all(store)
    assert rows(store, "select count(*) from event") == [(0,)]


async def test_an_oversize_message_inside_a_batch_is_rejected_alone(http, keys, store):
    batch = {"batch": [{"type": "track", "userId": "u", "event": "Big", "properties": {"b": "x" * 33_000}},
                       {"type": "track", "userId": "u", "event": "Small"}]}
    response = await http.post("/v1/batch", json=batch, auth=auth(keys))
    assert response.status_code == 400
    assert "larger than 32 KB" in response.json()["rejected"][0]["message"]
    process_all(store)
    assert rows(store, "select event from event") == [("Small",)]


async def test_message_ids_are_assigned_and_deduplicated(http, keys, store):
    await http.post("/v1/track", json={"userId": "u", "event": "E"}, auth=auth(keys))
    for _ in range(3):
        await http.post("/v1/track", json={"userId": "u", "event": "E", "messageId": "same"}, auth=auth(keys))
    process_all(store)
    ids = [r[0] for r in rows(store, "select message_id from event order by id")]
    assert len(ids) == 2 and ids[0].startswith("api-") and ids[1] == "same"


async def test_a_missing_time_is_the_time_of_receipt_and_a_lone_timestamp_is_kept(http, keys, store):
    await http.post("/v1/track", json={"userId": "u", "event": "Now"}, auth=auth(keys))
    await http.post("/v1/track", json={"userId": "u", "event": "Then", "timestamp": "2025-01-01T00:00:00+02:00"}, auth=auth(keys))
    process_all(store)
    from backend.clock import from_ms

    times = {e: from_ms(t).isoformat() for e, t in rows(store, "select event, timestamp_ms from event")}
    assert times == {"Now": "2026-11-22T09:30:00+00:00", "Then": "2024-12-31T22:00:00+00:00"}


async def test_filters_drop_matching_events_at_the_http_edge(http, keys, store):
    from store.catalog import filters

    filters.create_filter(store, keys.space.id, "bots", "match(context.userAgent, '*bot*')", enabled=True, description=None, drop=True)
    await http.post("/v1/track", json={"userId": "crawler", "event": "E", "context": {"userAgent": "googlebot/2"}}, auth=auth(keys))
    await http.post("/v1/track", json={"userId": "human", "event": "E", "context": {"userAgent": "Firefox"}}, auth=auth(keys))
    process_all(store)
    assert profile_of(store, "user_id", "crawler") is None
    assert profile_of(store, "user_id", "human") is not None


async def test_a_batch_with_a_malformed_sent_at_is_rejected_whole(http, keys, store):
    body = {"batch": [{"type": "track", "userId": "u", "event": "E"}], "sentAt": "soon"}
    response = await http.post("/v1/batch", json=body, auth=auth(keys))
    assert response.status_code == 400
    assert "sentAt is not an ISO-8601 time" in response.json()["rejected"][0]["message"]
    process_all(store)
    assert rows(store, "select count(*) from event") == [(0,)]


async def test_every_error_body_carries_success_code_and_message(http, keys):
    answers = [await http.post("/v1/track", content=b"{not json", auth=auth(keys)),
               await http.post("/v1/track", json={"userId": "u"}, auth=auth(keys)),
               await http.post("/v1/batch", json={"batch": [{"type": "shout"}]}, auth=auth(keys)),
               await http.post("/v1/track", json={"userId": "u", "event": "E", "p": "x" * 33_000}, auth=auth(keys)),
               await http.post("/v1/track", json={"userId": "u", "event": "E"}),
               await http.post("/v1/nowhere", json={}), await http.get("/v1/track")]
    for answer in answers:
        body = answer.json()
        assert body["success"] is False and body["code"] and body["message"], (answer.status_code, body)
    assert [answer.status_code for answer in answers] == [400, 400, 400, 413, 401, 404, 405]


ORIGIN = "https://shop.example"


async def test_a_browser_preflight_is_answered_for_the_tracking_api(http):
    response = await http.options("/v1/t", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = {name.strip().lower() for name in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed


async def test_a_cross_origin_text_plain_send_with_the_write_key_in_the_body_is_stored(http, keys, store):
    body = json.dumps({"userId": "u1", "event": "Viewed", "writeKey": keys.write_key})
    response = await http.post("/v1/t", content=body, headers={"Origin": ORIGIN, "Content-Type": "text/plain"})
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == "*"
    process_all(store)
    assert rows(store, "select event from event") == [("Viewed",)]


async def test_the_profile_api_stays_same_origin(http, keys):
    response = await http.options(f"/v1/spaces/{keys.space.id}/collections/users/profiles/user_id:u1/traits",
                                  headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in response.headers
    answer = await http.get(f"/v1/spaces/{keys.space.id}/collections/users/profiles/user_id:u1/traits",
                            headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in answer.headers
