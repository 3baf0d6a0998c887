"""Hostile input to the Tracking and Profile APIs: always a clear 4xx, never a server error, and
nothing half-stored."""

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from starlette.testclient import TestClient

from server.web import api_app
from store.catalog import spaces
from store.ingest.processor import process_all
from tests.ingest_helpers import rows

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
FIELDS = st.sampled_from(["type", "userId", "anonymousId", "event", "properties", "traits", "context", "timestamp",
                          "sentAt", "originalTimestamp", "messageId", "groupId", "previousId", "name", "integrations"])
MESSAGE = st.dictionaries(FIELDS, JSON | st.sampled_from(["track", "identify", "group", "page", "2026-11-22T10:00:00Z"]), max_size=8)


@pytest.fixture
def keys(store):
    return spaces.create_space(store, "Fuzz")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(MESSAGE, max_size=6), kind=st.sampled_from(["batch", "track", "identify", "group", "page"]))
def test_random_messages_get_an_answer_and_batches_store_only_valid_messages(store, keys, batch, kind):
    before = rows(store, "select count(*) from event")[0][0]
    body = {"batch": batch} if kind == "batch" else (batch[0] if batch else {})
    with TestClient(api_app(store)) as http:
        response = http.post(f"/v1/{kind}", content=json.dumps(body), auth=(keys.write_key, ""))
    process_all(store)
    assert response.status_code in (200, 400), response.text
    answer = response.json()
    stored = rows(store, "select count(*) from event")[0][0] - before
    if response.status_code == 200:
        assert answer == {"success": True}
    elif kind == "batch":
        assert stored <= answer["accepted"] and all("message" in r for r in answer["rejected"])
    else:
        assert stored == 0 and answer["message"]


@pytest.mark.anyio
@pytest.mark.parametrize("body", [b"", b"null", b"[]", b"\xff\xfe", b'{"batch": null}', b"1e999999", b'{"a":' * 5000])
async def test_hostile_bodies_are_client_errors(store, keys, body):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app(store)), base_url="http://t") as http:
        for path in ("/v1/batch", "/v1/track"):
            response = await http.post(path, content=body, auth=(keys.write_key, ""))
            assert 400 <= response.status_code < 500, (path, body[:20], response.status_code)
            assert response.json()["success"] is False


@pytest.mark.anyio
@pytest.mark.parametrize(
    "path",
    ["users/profiles/%2F/traits", "users/profiles/:/events", "users/profiles/user_id:/metadata",
     "users/profiles/user_id:u/traits?limit=abc", "users/profiles/user_id:u/friends", "things/profiles/user_id:u/traits",
     "users/profiles/user_id:u/events?next=!!!&start=yesterday"],
)
async def test_profile_api_never_fails_on_odd_paths(store, keys, path):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api_app(store)), base_url="http://t") as http:
        response = await http.get(f"/v1/spaces/{keys.space.id}/collections/{path}", auth=(keys.access_token, ""))
        assert 400 <= response.status_code < 500
        assert response.json()["error"]["code"] in ("not_found", "validation_error")
