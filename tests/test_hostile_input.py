"""Hostile input, generated: messages, cursors and definitions built to break parsers, clocks and
stacks get a 400 (their valid batch-mates stored) or an `input-validation` error, never a 500 or an
`internal` error."""

import base64
import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.web import api_app
from store.catalog import spaces
from store.ingest.processor import process_all
from tests.conftest import tool_errors
from tests.ingest_helpers import rows

pytestmark = pytest.mark.anyio
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
VALID = {"type": "track", "userId": "kept", "event": "Kept"}


def nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for level in range(depth):
        value = {"a": value} if level % 2 else [value]
    return value


def stamp(year: int, offset: str) -> str:
    return f"{year:04d}-01-01T00:00:00{offset}"


TIMES = st.builds(stamp, st.sampled_from([1, 2, 1899, 1970, 2026, 2200, 2201, 9999]),
                  st.sampled_from(["Z", "+14:00", "-12:00", ""])) | st.sampled_from(["", "x", "9" * 40, "2026-13-45"])
HOSTILE = st.fixed_dictionaries(
    {"type": st.sampled_from(["track", "identify", "page", "group"]), "userId": st.sampled_from(["u1", "\x00", "x" * 300]),
     "event": st.just("E"), "groupId": st.just("g")},
    optional={"timestamp": TIMES, "originalTimestamp": TIMES, "sentAt": TIMES,
              "properties": st.one_of(st.integers(40, 300).map(nested), st.just({"n": 2**70}),
                                      st.just({"s": "\x00" * 10}), st.just({"k" * 200: None})),
              "context": st.integers(1, 200).map(lambda depth: {"traits": nested(depth)})},
)


@pytest.fixture
def keys(store):
    return spaces.create_space(store, "Hostile")


@FUZZ
@given(hostile=HOSTILE, sent_at=TIMES)
async def test_hostile_messages_are_refused_alone(store, keys, hostile, sent_at):
    before = rows(store, "select count(*) from event where event = 'Kept'")[0][0]
    body = json.dumps({"batch": [VALID, hostile], "sentAt": sent_at or None})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app(store)), base_url="http://t") as http:
        response = await http.post("/v1/batch", content=body, auth=(keys.write_key, ""))
    process_all(store)
    assert response.status_code in (200, 400), response.text
    answer = response.json()
    if response.status_code == 400 and "rejected" in answer:
        assert all(item["index"] == 1 for item in answer["rejected"]) or sent_at, answer
    if response.status_code == 200 or answer.get("accepted"):
        assert rows(store, "select count(*) from event where event = 'Kept'")[0][0] >= before


CURSORS = st.one_of(
    st.text(max_size=30),
    st.binary(max_size=30).map(lambda raw: base64.urlsafe_b64encode(raw).decode()),
    st.integers(-(2**80), 2**80).map(lambda n: base64.urlsafe_b64encode(str(n).encode()).decode()),
    st.tuples(st.integers(-(2**80), 2**80), st.integers(-(2**80), 2**80)).map(
        lambda pair: base64.urlsafe_b64encode(f"{pair[0]}::{pair[1]}".encode()).decode()),
)


@FUZZ
@given(cursor=CURSORS, endpoint=st.sampled_from(["traits", "events", "external_ids", "links", "metadata"]),
       limit=st.sampled_from(["", "0", "-1", "5", "99999999999999999999", "abc"]))
async def test_any_cursor_gets_an_answer(store, keys, cursor, endpoint, limit):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app(store)), base_url="http://t") as http:
        await http.post("/v1/track", json=VALID, auth=(keys.write_key, ""))
        process_all(store)
        response = await http.get(f"/v1/spaces/{keys.space.id}/collections/users/profiles/user_id:kept/{endpoint}",
                                  params={"next": cursor, "limit": limit}, auth=(keys.access_token, ""))
    assert response.status_code in (200, 400), (response.status_code, response.text)
    if response.status_code == 400:
        assert response.json()["error"]["code"] == "validation_error"


DEFINITIONS = st.one_of(
    st.integers(1, 5000).map(lambda n: "NOT " * n + "event('a').count() >= 1"),
    st.integers(1, 800).map(lambda n: "(" * n + "event('a').count() >= 1" + ")" * n),
    st.integers(1, 60).map(lambda n: "event('a').where(" * n + "property('x') = 1" + ").count() >= 1" * n),
    st.integers(50, 400).map(lambda p: f"event('a').count() >= {2 ** p}"),
    st.integers(50, 400).map(lambda p: f"event('a').within({2 ** p} days).count() >= 1"),
    st.sampled_from(["event('a').count() >= 1e999", "event('a').within(0 days).count() >= 1",
                     "trait('x') = " + "9" * 400, "event('a').count() >= -" + "9" * 30]),
)


async def assert_no_internal(client, tool, **arguments):
    result = await client.call_tool(f"segment_audiences_{tool}", arguments)
    if result.is_error:
        errors = tool_errors(result)
        assert all(error["type"] in ("input-validation", "not-found", "conflict") for error in errors), errors
    return result


@FUZZ
@given(query=DEFINITIONS)
async def test_hostile_definitions_are_refused_when_saved(client, space_id, query):
    for tool, extra in (("create_audience", {"audienceType": "USERS", "definition": {"query": query}}),
                        ("create_computed_trait", {"definition": {"query": query.replace(" >= 1", ""), "type": "USERS"}}),
                        ("create_audience_preview", {"audienceType": "USERS", "definition": {"query": query}})):
        await assert_no_internal(client, tool, spaceId=space_id, name="Hostile", **extra)


@FUZZ
@given(condition=st.one_of(
    st.integers(1, 1000).map(lambda n: "(" * n + "type = 'track'" + ")" * n),
    st.integers(1, 1000).map(lambda n: "!" * n + "(type = 'track')"),
    st.integers(1, 3000).map(lambda n: " or ".join(["type = 'track'"] * n)),
    st.sampled_from(["match(event, '" + "*a" * 3000 + "')", "length(x) > 1e999", "[" * 500])))
async def test_hostile_filters_are_refused_when_saved(client, space_id, condition):
    await assert_no_internal(client, "create_filter_for_space", integrationId=space_id, name="Hostile",
                             **{"if": condition})


@pytest.mark.parametrize("hour", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:00:00Z",
                                  "9999-12-31T23:59:59-12:00", "2026-11-22T09:00:00+99:00"])
async def test_download_hours_out_of_range_are_input_errors(client, space_id, hour):
    created = await client.call_tool("segment_audiences_create_audience", {
        "spaceId": space_id, "audienceType": "USERS", "name": "A", "definition": {"query": "event('a').count() >= 1"}})
    result = await assert_no_internal(client, "create_download", collectionId=created.structured_content["audience"]["id"],
                                      hour=hour)
    assert tool_errors(result)[0]["field"] == "hour"


@pytest.mark.parametrize("options", [{"backfillEventDataDays": 2**70}, {"backfillEventDataDays": 36_501}])
async def test_history_options_beyond_a_century_are_refused(client, space_id, options):
    result = await assert_no_internal(client, "create_audience", spaceId=space_id, audienceType="USERS", name="A",
                                      definition={"query": "event('a').count() >= 1"}, options=options)
    assert result.is_error


@pytest.mark.parametrize("hostile", [
    {"type": "track", "userId": "u2", "event": "E", "properties": nested(1000)},
    {"type": "track", "userId": "u3", "event": "E", "originalTimestamp": "9999-12-31T00:00:00Z",
     "sentAt": "0001-01-01T00:00:00Z"},
    {"type": "track", "userId": "u4", "event": "E", "timestamp": "0001-01-01T00:00:00+14:00"},
])
async def test_the_reported_messages_are_rejected_by_index_and_their_batch_mates_kept(store, keys, hostile):
    body = '{"batch": [%s, %s]}' % (json.dumps(VALID), _dumps_deep(hostile))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app(store)), base_url="http://t") as http:
        response = await http.post("/v1/batch", content=body, auth=(keys.write_key, ""))
    assert response.status_code == 400
    assert response.json()["accepted"] == 1 and [r["index"] for r in response.json()["rejected"]] == [1]
    process_all(store)
    assert rows(store, "select count(*) from event where event = 'Kept'") == [(1,)]


def _dumps_deep(value: object) -> str:
    """JSON text of a message whose nesting (made by `nested`) is deeper than `json.dumps` can recurse."""
    if isinstance(value, dict) and set(value) != {"a"}:
        return "{" + ", ".join(f"{json.dumps(k)}: {_dumps_deep(v)}" for k, v in value.items()) + "}"
    opening, closing = [], []
    while isinstance(value, list) and len(value) == 1 or isinstance(value, dict) and set(value) == {"a"}:
        is_object = isinstance(value, dict)
        opening.append('{"a": ' if is_object else "[")
        closing.append("}" if is_object else "]")
        value = value["a"] if is_object else value[0]
    return "".join(opening) + json.dumps(value) + "".join(reversed(closing))


@pytest.mark.parametrize("cursor", [base64.b64encode(b"abc").decode(), base64.b64encode(str(10**30).encode()).decode()])
async def test_the_reported_cursors_are_validation_errors(store, keys, cursor):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app(store)), base_url="http://t") as http:
        await http.post("/v1/track", json=VALID, auth=(keys.write_key, ""))
        process_all(store)
        for endpoint in ("external_ids", "events"):
            response = await http.get(f"/v1/spaces/{keys.space.id}/collections/users/profiles/user_id:kept/{endpoint}",
                                      params={"next": cursor}, auth=(keys.access_token, ""))
            assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
