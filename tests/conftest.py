import json
from datetime import datetime, timezone

import pytest
from mcp import Client

from backend.clock import FrozenClock
from server.app import build_server
from store.catalog import spaces
from store.db.store import Store
from tests.databases import database_url, drop_created

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=timezone.utc)


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(autouse=True)
def _drop_test_databases():
    """PostgreSQL databases made for a test go when it ends (SQLite files go with tmp_path)."""
    yield
    drop_created()


@pytest.fixture
def store(tmp_path):
    store = Store(database_url(tmp_path), clock=FrozenClock(NOW), actor="tester")
    yield store
    store.close()


@pytest.fixture
def two_servers(tmp_path):
    """Two stores on one database, as two processes (on two hosts) would have."""
    url = database_url(tmp_path)
    first, second = Store(url), Store(url)
    yield first, second
    first.close()
    second.close()


@pytest.fixture
def space_id(store):
    return spaces.create_space(store, "Test Space").space.id


@pytest.fixture
async def client(store):
    async with Client(build_server(store), mode="legacy") as client:
        yield client


def tool_errors(result) -> list[dict]:
    """The `{"errors": [...]}` envelope of a failed call, read from its text content as any client
    reads it; a failed call carries no structured content (it would have to match the output schema)."""
    assert result.is_error and result.structured_content is None, result
    return json.loads(result.content[0].text)["errors"]


class Caller:
    """Calls a tool and returns its structured content, asserting success or failure as asked."""

    def __init__(self, client):
        self.client = client

    async def ok(self, tool, **arguments):
        result = await self.client.call_tool(f"segment_audiences_{tool}", arguments)
        assert not result.is_error, result.content[0].text
        return result.structured_content

    async def error(self, tool, **arguments):
        result = await self.client.call_tool(f"segment_audiences_{tool}", arguments)
        return tool_errors(result)[0]


@pytest.fixture
def call(client):
    return Caller(client)
