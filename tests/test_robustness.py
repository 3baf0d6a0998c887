"""Bad input never crashes a tool or changes stored data, and two processes can share one database."""

import random
import subprocess
import sys

import pytest
from sqlalchemy import text

from store.catalog import destination_instances
from store.db.models import SQLModel
from tests.conftest import tool_errors
from tests.databases import database_url

pytestmark = pytest.mark.anyio
JUNK = [None, "", " ", "x" * 300, -1, 0, 10**12, 3.5, True, [], [None], {}, {"a": {"b": []}}, "aud_" + "z" * 20,
        "event('a').count( >= 1", "'; DROP TABLE audience; --", "\u0000\uffff", "NaN", {"query": 1}]


def table_counts(store) -> dict[str, int]:
    with store.read() as session:
        return {t: session.execute(text(f'SELECT count(*) FROM "{t}"')).scalar() for t in SQLModel.metadata.tables}


def mutate(rng: random.Random, schema: dict, valid: dict) -> dict:
    arguments = dict(valid)
    names = sorted(schema.get("properties", {}))
    for name in rng.sample(names, k=min(len(names), rng.randint(1, 2))):
        if rng.random() < 0.2:
            arguments.pop(name, None)
        else:
            arguments[name] = rng.choice(JUNK)
    if rng.random() < 0.1:
        arguments["unexpected"] = rng.choice(JUNK)
    return arguments


async def test_random_and_adversarial_arguments_never_crash_or_write(client, store, space_id):
    created = await client.call_tool("segment_audiences_create_audience", {
        "spaceId": space_id, "audienceType": "USERS", "name": "Base", "definition": {"query": "event('a').count() >= 1"}})
    audience_id = created.structured_content["audience"]["id"]
    destination_id = destination_instances.add_destination(store, space_id, "webhooks-actions", "Hook", {}).id
    valid = {"spaceId": space_id, "id": audience_id, "audienceId": audience_id, "audienceType": "USERS",
             "name": "Fuzzed", "definition": {"query": "event('b').count() >= 1"}, "destination": {"id": destination_id},
             "strategy": "PERIODIC", "config": {"interval": "1h"}, "scheduleId": "sch_x", "connectionId": "ii_x",
             "destinationId": "ii_x", "activationName": "A", "activationType": "Audience Entered", "performResync": False,
             "personalization": {}, "subscriptions": [{"key": "a@b.co", "type": "EMAIL"}]}
    tools = (await client.list_tools()).tools
    rng = random.Random(20261122)
    for _ in range(600):
        tool = rng.choice(tools)
        before = table_counts(store)
        arguments = {k: v for k, v in mutate(rng, tool.input_schema, valid).items()
                     if k in tool.input_schema["properties"] or k == "unexpected"}
        result = await client.call_tool(tool.name, arguments)
        if result.is_error:
            errors = tool_errors(result)
            assert errors and all(e["type"] in ("input-validation", "not-found", "conflict") for e in errors), (tool.name, errors)
            assert table_counts(store) == before, (tool.name, arguments)


def test_two_processes_share_one_database_without_losing_writes(tmp_path):
    url = database_url(tmp_path, "shared")
    script = (
        "import sys\n"
        "from store.db.store import Store\n"
        "from store.catalog import spaces, audiences\n"
        "store = Store(sys.argv[1])\n"
        "spaces.ensure_default_space(store)\n"
        "space = spaces.list_spaces(store, spaces.PageRequest()).items[0]\n"
        "for i in range(40):\n"
        "    audiences.create_audience(store, space.id, name='Shared', audience_type='USERS',\n"
        "                              query=\"event('a').count() >= 1\")\n"
    )
    workers = [subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE) for _ in range(2)]
    for worker in workers:
        assert worker.wait(timeout=120) == 0, worker.stderr.read().decode()
    from store.catalog import audiences, spaces
    from store.db.store import Store

    store = Store(url)
    listed = spaces.list_spaces(store, spaces.PageRequest()).items
    assert [s.name for s in listed] == ["Default"]
    keys = [a.key for a in audiences.list_audiences(store, listed[0].id, None, spaces.PageRequest(count=200)).items]
    assert len(keys) == len(set(keys)) == 80
    if store.engine.dialect.name == "sqlite":
        with store.read() as session:
            assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert session.execute(text("PRAGMA integrity_check")).scalar() == "ok"
