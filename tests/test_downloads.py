"""CSV downloads: each format parsed back, past hours reconstructed from membership and value
history, and the errors that say which hour can be asked for."""

import csv
import hashlib
import json
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import anyio
import pytest
from mcp import MCPError
from mcp.types import INVALID_PARAMS

from server import resources
from server.app import build_server
from store.catalog import computed_traits, spaces
from store.compute import downloads, runs
from tests.conftest import NOW
from tests.delivery_helpers import audience
from tests.ingest_helpers import profile_of, send

pytestmark = pytest.mark.anyio
HOUR = "%Y-%m-%dT%H:00:00Z"


def at(store, **delta):
    store.clock.set(NOW + timedelta(**delta))


def plan(store, space_id, user, value, *emails):
    send(store, space_id, *[{"type": "identify", "userId": user, "traits": {"plan": value, **({"email": e} if e else {})}}
                            for e in (emails or (None,))])


def read_csv(url):
    path = url2pathname(urlparse(url).path)
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


@pytest.fixture
def timeline(store, space_id):
    """ann is a member from 09:30 to 11:30, bob from 10:30 on; now is 12:30."""
    plan(store, space_id, "ann", "pro", "ann@example.com", "ann@work.example")
    pros = audience(store, space_id, name="Pro", query="trait('plan') = 'pro'")
    at(store, hours=1)
    plan(store, space_id, "bob", "pro", "bob@example.com")
    runs.run(store, pros.id, reason="forced")
    at(store, hours=2)
    plan(store, space_id, "ann", "free")
    runs.run(store, pros.id, reason="forced")
    at(store, hours=3)
    return pros


def export(store, collection_id, hour, **options):
    return read_csv(downloads.create_download(store, collection_id, hour.strftime(HOUR), **options).urls[0])


def test_a_past_hour_is_the_membership_at_its_end(store, timeline):
    ann, bob = profile_of(store, "user_id", "ann"), profile_of(store, "user_id", "bob")
    assert [r["key"] for r in export(store, timeline.id, NOW)] == [ann]
    assert sorted(r["key"] for r in export(store, timeline.id, NOW + timedelta(hours=1))) == sorted([ann, bob])
    assert [r["key"] for r in export(store, timeline.id, NOW + timedelta(hours=2))] == [bob]


def test_unformatted_rows_carry_external_ids_as_json(store, timeline):
    [row] = export(store, timeline.id, NOW)
    assert list(row) == ["key", "external_ids"]
    assert json.loads(row["external_ids"]) == {"email": ["ann@example.com", "ann@work.example"], "user_id": ["ann"]}


def test_formatted_rows_spread_ids_over_indexed_columns(store, timeline):
    rows = export(store, timeline.id, NOW + timedelta(hours=1), fmt="formatted")
    assert list(rows[0]) == ["key", "external_ids", "email", "email_1", "user_id"]
    by_user = {row["user_id"]: row for row in rows}
    assert (by_user["ann"]["email"], by_user["ann"]["email_1"]) == ("ann@example.com", "ann@work.example")
    assert (by_user["bob"]["email"], by_user["bob"]["email_1"]) == ("bob@example.com", "")


def test_single_column_is_hashed_uppercase_sha256_or_raw(store, timeline):
    hashed = export(store, timeline.id, NOW, fmt="single_column")
    assert hashed == [{"email": hashlib.sha256(e.encode()).hexdigest().upper()}
                      for e in ("ann@example.com", "ann@work.example")]
    raw = export(store, timeline.id, NOW, fmt="single_column", id_type="user_id", hashed=False)
    assert raw == [{"user_id": "ann"}]


def test_a_computed_trait_exports_the_values_it_had_then(store, space_id):
    send(store, space_id, {"type": "track", "userId": "ann", "event": "Order Completed",
                           "timestamp": (NOW - timedelta(hours=1)).isoformat()})
    trait = computed_traits.create_computed_trait(store, space_id, name="Orders", query="event('Order Completed').count()",
                                                  definition_type="USERS")
    runs.run(store, trait.id, reason="initial")
    at(store, hours=1)
    send(store, space_id, {"type": "track", "userId": "ann", "event": "Order Completed"})
    runs.run(store, trait.id, reason="forced")
    at(store, hours=2)
    assert [(r["value"], json.loads(r["external_ids"])) for r in export(store, trait.id, NOW)] == [("1", {"user_id": ["ann"]})]
    assert [r["value"] for r in export(store, trait.id, NOW + timedelta(hours=1))] == ["2"]


@pytest.mark.parametrize("hour, field, words", [
    ("yesterday", "hour", "ISO-8601"),
    ((NOW + timedelta(hours=5)).strftime(HOUR), "hour", "future"),
    ((NOW - timedelta(days=31)).strftime(HOUR), "hour", "30 days"),
    ((NOW - timedelta(hours=2)).strftime(HOUR), "hour", "was created at"),
])
async def test_hours_that_cannot_be_exported_are_explained(call, store, space_id, hour, field, words):
    pros = audience(store, space_id)
    error = await call.error("create_download", collectionId=pros.id, hour=hour)
    assert error["type"] == "input-validation" and error["field"] == field and words in error["message"]


async def test_the_tool_returns_a_url_to_the_csv(call, store, space_id):
    send(store, space_id, {"type": "track", "userId": "ann", "event": "Signed Up"})
    pros = audience(store, space_id)
    result = await call.ok("create_download", collectionId=pros.id, hour="2026-11-22T09:15:00.000Z")
    [url] = result["download"]["urls"]
    assert url.startswith("file://") and [r["key"] for r in read_csv(url)] == [profile_of(store, "user_id", "ann")]
    missing = await call.error("create_download", collectionId="aud_nope", hour="2026-11-22T09:00:00Z")
    assert missing["type"] == "not-found" and missing["field"] == "collectionId"


async def test_a_download_is_a_resource_linked_from_the_result_listed_and_read_while_it_lives(client, store, space_id):
    send(store, space_id, {"type": "track", "userId": "ann", "event": "Signed Up"})
    pros = audience(store, space_id)
    result = await client.call_tool("segment_audiences_create_download",
                                    {"collectionId": pros.id, "hour": NOW.strftime(HOUR)})
    [link] = [block for block in result.content if block.type == "resource_link"]
    assert str(link.uri).startswith(f"segment-audiences://spaces/{space_id}/downloads/") and link.mime_type == "text/csv"
    [url] = result.structured_content["download"]["urls"]
    assert link.size == Path(url2pathname(urlparse(url).path)).stat().st_size
    assert str(link.uri) in {str(resource.uri) for resource in (await client.list_resources()).resources}
    [content] = (await client.read_resource(str(link.uri))).contents
    assert list(csv.DictReader(content.text.splitlines())) == read_csv(url)
    assert [row["key"] for row in read_csv(url)] == [profile_of(store, "user_id", "ann")]

    at(store, hours=1)
    assert str(link.uri) not in {str(resource.uri) for resource in (await client.list_resources()).resources}
    with pytest.raises(MCPError) as expired:
        await client.read_resource(str(link.uri))
    assert expired.value.error.code == INVALID_PARAMS and "create_download again" in expired.value.error.message


async def test_a_download_is_read_only_under_its_own_space(client, store, space_id):
    pros = audience(store, space_id)
    written = downloads.create_download(store, pros.id, NOW.strftime(HOUR))
    other = spaces.create_space(store, "Other").space.id
    with pytest.raises(MCPError) as elsewhere:
        await client.read_resource(f"segment-audiences://spaces/{other}/downloads/{written.token}")
    assert elsewhere.value.error.code == INVALID_PARAMS


def test_a_large_download_is_read_as_a_blob(monkeypatch, store, space_id):
    plan(store, space_id, "ann", "pro", "ann@example.com")
    pros = audience(store, space_id, name="Pro", query="trait('plan') = 'pro'")
    runs.run(store, pros.id, reason="forced")
    written = downloads.create_download(store, pros.id, NOW.strftime(HOUR))
    monkeypatch.setattr(resources, "TEXT_LIMIT", written.size - 1)
    server = build_server(store)
    [blob] = anyio.run(server.read_resource, f"segment-audiences://spaces/{space_id}/downloads/{written.token}")
    assert isinstance(blob.content, bytes) and blob.content.decode() == Path(url2pathname(
        urlparse(written.urls[0]).path)).read_text()


def test_an_expired_link_finds_nothing_and_its_file_is_removed(store, space_id):
    pros = audience(store, space_id)
    [url] = downloads.create_download(store, pros.id, NOW.strftime(HOUR)).urls
    token = urlparse(url).path.rsplit("/", 1)[-1].removesuffix(".csv")
    assert downloads.find_file(store, token) is not None
    at(store, hours=1)
    assert downloads.find_file(store, token) is None
    downloads.create_download(store, pros.id, NOW.strftime(HOUR))
    assert not Path(url2pathname(urlparse(url).path)).exists()
