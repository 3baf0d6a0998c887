"""A NUL character (U+0000) is refused at every edge, with an answer that names it, and nothing is
stored: PostgreSQL cannot keep one in text or jsonb, and SQLite's text functions stop at it."""

import json

import httpx
import pytest

from backend.tracking.messages import MAX_DEPTH, MessageError, check_structure, may_hold_nul
from server.web import api_app
from store.catalog import spaces
from store.ingest.processor import process_all
from tests.conftest import tool_errors
from tests.ingest_helpers import rows

pytestmark = pytest.mark.anyio
VALID = {"type": "track", "userId": "kept", "event": "Kept"}


@pytest.fixture
def keys(store):
    return spaces.create_space(store, "Nul")


@pytest.fixture
async def http(store):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app(store)), base_url="http://t") as client:
        yield client


@pytest.mark.parametrize("hostile", [
    {"type": "track", "userId": "a\x00b", "event": "E"},
    {"type": "track", "userId": "u", "event": "E\x00"},
    {"type": "track", "userId": "u", "event": "E", "properties": {"plan\x00": "pro"}},
    {"type": "identify", "userId": "u", "traits": {"deep": [{"er": "x\x00"}]}},
    {"type": "track", "userId": "u", "event": "E", "context": {"page": {"url": "/\x00"}}},
])
async def test_a_message_holding_nul_is_rejected_by_index_and_its_batch_mates_kept(store, keys, http, hostile):
    response = await http.post("/v1/batch", content=json.dumps({"batch": [VALID, hostile]}), auth=(keys.write_key, ""))
    assert response.status_code == 400
    answer = response.json()
    assert answer["accepted"] == 1 and [r["index"] for r in answer["rejected"]] == [1]
    assert "NUL" in answer["rejected"][0]["message"]
    process_all(store)
    assert rows(store, "select event from event") == [("Kept",)]


@pytest.mark.parametrize("hostile", [{"userId": "a\x00b"}, {"plan\x00": "pro"}, {"deep": [{"er": ["x\x00"]}]}])
def test_json_can_hold_a_nul_only_as_its_escape_so_json_without_it_is_not_searched(hostile):
    assert may_hold_nul(json.dumps(hostile).encode()) and may_hold_nul(json.dumps(hostile, ensure_ascii=False).encode())
    assert not may_hold_nul(json.dumps(VALID).encode())


def test_a_message_too_deep_is_refused_even_when_its_json_holds_no_nul():
    deep: object = "leaf"
    for _ in range(MAX_DEPTH):
        deep = {"next": deep}
    check_structure(deep, nul_possible=False)
    with pytest.raises(MessageError, match="nested deeper"):
        check_structure([deep], nul_possible=False)


async def test_a_batch_context_holding_nul_rejects_the_whole_batch(store, keys, http):
    body = json.dumps({"batch": [VALID], "context": {"ip": "\x00"}})
    response = await http.post("/v1/batch", content=body, auth=(keys.write_key, ""))
    assert response.status_code == 400 and "NUL" in response.text
    assert rows(store, "select count(*) from event") == [(0,)]


async def test_a_profile_api_path_or_query_holding_nul_is_a_400(store, keys, http):
    base = f"/v1/spaces/{keys.space.id}/collections/users/profiles"
    for url in (f"{base}/user_id:a%00b/traits", f"{base}/user_id:u/events?cursor=%00"):
        response = await http.get(url, auth=(keys.access_token, ""))
        assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error", url


async def test_a_tool_argument_holding_nul_is_an_input_error_naming_it(client, space_id):
    result = await client.call_tool("segment_audiences_create_audience", {
        "spaceId": space_id, "audienceType": "USERS", "name": "Bad\x00Name",
        "definition": {"query": "event('A').count() >= 1"}})
    [error] = tool_errors(result)
    assert error["type"] == "input-validation" and error["field"] == "name" and "NUL" in error["message"]
